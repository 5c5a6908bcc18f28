"""ImageData: batches of image files named in a list file (`image_data_param { source batch_size
root_folder new_height new_width is_color shuffle rand_skip }`), transformed and prefetched.

The list holds `path label` lines (nvcaffe_py.datum.read_image_list); each path is read as
`root_folder + path` (plain concatenation, as Caffe: give root_folder its trailing slash).
`shuffle` shuffles the list at setup and again at every pass; `rand_skip` starts at a random
line among the first `rand_skip`. Both tops (data, label) are required, as in Caffe.
"""
import numpy as np

from nvcaffe_py import rng
from nvcaffe_py.conformance import Exempt
from nvcaffe_py.datum import image_to_chw, read_image, read_image_list
from nvcaffe_py.errors import CaffeError
from nvcaffe_py.registry import register_layer

from .base_data import PrefetchingDataLayer


class ImageListSource:
    def __init__(self, param):
        self.param = param
        self.description = f"image list '{param.source}'"
        self.entries = read_image_list(param.source)
        if not self.entries:
            raise CaffeError(f"image list '{param.source}' names no images")
        self._random = np.random.default_rng(int(rng.generator().integers(2 ** 63)))
        self._order = np.arange(len(self.entries))
        if param.shuffle:
            self._random.shuffle(self._order)
        self._position = 0
        if param.rand_skip:
            self._position = int(rng.generator().integers(param.rand_skip))
            if self._position >= len(self.entries):
                raise CaffeError(f"rand_skip chose to skip {self._position} images, but '{param.source}' "
                                 f"lists only {len(self.entries)}")

    def size(self) -> int:
        return len(self.entries)

    def _item(self):
        number, path, label = self.entries[self._order[self._position]]
        return f"line {number}: {path}", (self.param.root_folder + path, label)

    def peek(self):
        return self._item()

    def next(self):
        item = self._item()
        self._position += 1
        if self._position == len(self.entries):
            self._position = 0
            if self.param.shuffle:
                self._random.shuffle(self._order)
        return item

    def decode(self, item, transformer):
        path, label = item
        p = self.param
        return image_to_chw(read_image(path, p.new_height, p.new_width, p.is_color)), label


@register_layer("ImageData")
class ImageDataLayer(PrefetchingDataLayer):
    min_top = None
    max_top = None
    exact_num_top = 2
    cases = Exempt("reads image files: tests/test_image_data.py")

    def batch_size(self) -> int:
        return self.layer_param.image_data_param.batch_size

    def open_source(self):
        p = self.layer_param.image_data_param
        if (p.new_height > 0) != (p.new_width > 0):
            raise CaffeError("image_data_param: set new_height and new_width together (or neither)")
        if not p.source:
            raise CaffeError("image_data_param.source is not set")
        return ImageListSource(p)
