"""WindowData: R-CNN-style training windows, as Caffe's WindowDataLayer.

`window_data_param { source batch_size fg_threshold bg_threshold fg_fraction context_pad
crop_mode scale cache_images root_folder }` with `transform_param { crop_size mirror mean_file |
mean_value }`. The window file lists, for every image, boxes with a class and their overlap with
a ground-truth object:

    # 0                      (image index: 0, 1, 2, ... in order)
    /path/to/image.jpg       (read as root_folder + path, in colour)
    3                        (channels, height, width)
    500
    375
    2                        (number of windows)
    15 0.82 10 20 200 300    (label overlap x1 y1 x2 y2: inclusive pixel corners)
    0 0.10 40 40 90 120

A window with overlap >= fg_threshold is foreground (its label must be > 0); one with overlap
< bg_threshold is background (label 0); others are unused. Every batch samples, with
replacement, `batch_size - int(batch_size * fg_fraction)` background windows and then the
foreground ones. Each window is cut out with `context_pad` pixels of context around it at the
output scale ("warp": stretched to crop_size x crop_size; "square": its longer side first made
the shorter's), the part beyond the image left 0, resized (bilinear), mirrored at random,
its mean subtracted and multiplied by window_data_param.scale (Caffe reads the scale there, not
from transform_param). As our other data layers, it mirrors only in the TRAIN phase.

In a data-parallel run the sampled batches are dealt whole (rank r of N keeps every N-th from its
r-th on; every rank samples the same stream), so each batch keeps its fg_fraction and one
iteration's batches are those of one process with iter_size N.
"""
import math

import numpy as np

from nvcaffe_py import files, mode, rng
from nvcaffe_py.conformance import Exempt
from nvcaffe_py.data_transformer import DataTransformer
from nvcaffe_py.errors import CaffeError
from nvcaffe_py.lazy_import import cv2
from nvcaffe_py.log import logger
from nvcaffe_py.proto import caffe_pb2
from nvcaffe_py.registry import register_layer
from nvcaffe_py.scaleout import dealing

from .base_data import HostArrays, PrefetchingDataLayer


class WindowFile:
    """The images and windows of a window file: `images` [(path, (channels, height, width), line)],
    `foreground` and `background` [(image index, label, x1, y1, x2, y2, line)]."""

    def __init__(self, path, root_folder, fg_threshold, bg_threshold):
        self.path = path
        self.images, self.foreground, self.background = [], [], []
        try:
            lines = files.read_regular(path).decode("utf-8").splitlines()
        except (CaffeError, UnicodeDecodeError) as exc:
            raise CaffeError(f"cannot read window file: {exc}") from None
        tokens = [(word, number) for number, line in enumerate(lines, 1) for word in line.split()]
        if not tokens:
            raise CaffeError(f"{path}: the window file is empty")
        position = 0

        def take(kind, what):
            nonlocal position
            if position == len(tokens):
                raise CaffeError(f"{path}:{tokens[-1][1]}: the file ends where {what} should follow")
            word, number = tokens[position]
            position += 1
            try:
                return kind(word), number
            except ValueError:
                raise CaffeError(f"{path}:{number}: expected {what}, found '{word}'") from None

        while position < len(tokens):
            hashtag, number = take(str, "'#'")
            if hashtag != "#":
                raise CaffeError(f"{path}:{number}: expected '#' and an image index, found '{hashtag}'")
            index, number = take(int, "an image index")
            if index != len(self.images):
                raise CaffeError(f"{path}:{number}: image index {index} where {len(self.images)} was due "
                                 "(images are numbered 0, 1, 2, ... in order)")
            image_path, line = take(str, "an image path")
            size = tuple(take(int, what)[0] for what in ("the channel count", "the height", "the width"))
            if size[0] != 3:
                raise CaffeError(f"{path}:{line}: image '{image_path}' has {size[0]} channels; WindowData "
                                 "reads every image in colour, so the file must say 3")
            self.images.append((root_folder + image_path, size, line))
            count, _ = take(int, "the number of windows")
            for _ in range(count):
                label, line = take(int, "a window's label")
                overlap = take(float, "a window's overlap")[0]
                x1, y1, x2, y2 = (take(int, "a window corner")[0] for _ in range(4))
                if not (0 <= x1 <= x2 < size[2] and 0 <= y1 <= y2 < size[1]):
                    raise CaffeError(f"{path}:{line}: window ({x1}, {y1}, {x2}, {y2}) does not lie inside "
                                     f"the {size[2]}x{size[1]} image '{image_path}'")
                if overlap >= fg_threshold:
                    if label <= 0:
                        raise CaffeError(f"{path}:{line}: a foreground window (overlap {overlap:g} >= "
                                         f"{fg_threshold:g}) needs a label > 0, not {label}")
                    self.foreground.append((index, label, x1, y1, x2, y2, line))
                elif overlap < bg_threshold:
                    self.background.append((index, 0, x1, y1, x2, y2, line))


def round_half_away(value):
    """C's round(): halves away from zero (Python's round() rounds halves to even)."""
    return int(math.copysign(math.floor(abs(value) + 0.5), value))


def window_geometry(box, image_size, crop_size, context_pad, square, mirror, dtype):
    """Caffe's cut of one window: ((x1, y1, x2, y2) clipped to the image, (width, height) to
    resize it to, (pad_w, pad_h) where it goes in the crop_size x crop_size output). Computed in
    the layer's float type, as Caffe computes in Dtype."""
    x1, y1, x2, y2 = box
    height, width = image_size
    if not (context_pad > 0 or square):
        return (x1, y1, x2, y2), (crop_size, crop_size), (0, 0)
    real = np.dtype(dtype).type
    context_scale = real(crop_size) / real(crop_size - 2 * context_pad)
    half_height, half_width = real(y2 - y1 + 1) / real(2), real(x2 - x1 + 1) / real(2)
    center_x, center_y = real(x1) + half_width, real(y1) + half_height
    if square:
        half_height = half_width = max(half_height, half_width)
    x1 = round_half_away(center_x - half_width * context_scale)
    x2 = round_half_away(center_x + half_width * context_scale)
    y1 = round_half_away(center_y - half_height * context_scale)
    y2 = round_half_away(center_y + half_height * context_scale)
    unclipped_height, unclipped_width = y2 - y1 + 1, x2 - x1 + 1
    pad_x1, pad_y1 = max(0, -x1), max(0, -y1)
    pad_x2, pad_y2 = max(0, x2 - width + 1), max(0, y2 - height + 1)
    x1, x2, y1, y2 = x1 + pad_x1, x2 - pad_x2, y1 + pad_y1, y2 - pad_y2
    scale_x, scale_y = real(crop_size) / real(unclipped_width), real(crop_size) / real(unclipped_height)
    out_width = round_half_away(real(x2 - x1 + 1) * scale_x)
    out_height = round_half_away(real(y2 - y1 + 1) * scale_y)
    pad_x1, pad_x2 = round_half_away(real(pad_x1) * scale_x), round_half_away(real(pad_x2) * scale_x)
    pad_h = round_half_away(real(pad_y1) * scale_y)
    pad_w = pad_x2 if mirror else pad_x1  # the padding mirrors with the window
    # The warped region plus its padding may overshoot crop_size by rounding.
    out_height = min(out_height, crop_size - pad_h)
    out_width = min(out_width, crop_size - pad_w)
    return (x1, y1, x2, y2), (out_width, out_height), (pad_w, pad_h)


class WindowBatchLoader:
    """Samples and cuts one batch; runs in the prefetch thread (holds no reference to the layer)."""

    def __init__(self, windows, settings, mean, mean_values, dtype, where, allocate, rank=0, ranks=1):
        self.windows, self.mean, self.mean_values = windows, mean, mean_values
        self.allocate = allocate  # (shape, dtype) -> the array to fill (base_data.HostArrays)
        self.dtype, self.where = dtype, where
        self.rank, self.ranks = rank, ranks
        (self.batch_size, self.crop_size, self.context_pad, self.square, self.mirror,
         self.scale, self.fg_fraction, cache_images) = settings
        self.random = np.random.default_rng(int(rng.generator().integers(2 ** 63)))
        # cache_images: each file's encoded bytes kept in memory and decoded per use, as Caffe.
        self.cache = {} if cache_images else None
        if cache_images:
            for path, _, line in windows.images:
                try:
                    self.cache[path] = np.frombuffer(files.read_regular(path), np.uint8)
                except CaffeError as exc:
                    raise CaffeError(f"{windows.path}:{line}: cannot read image: {exc}") from None

    def _image(self, path, line):
        if self.cache is not None:
            image = cv2.imdecode(self.cache[path], cv2.IMREAD_COLOR)
        else:
            image = cv2.imread(path, cv2.IMREAD_COLOR)
        if image is None:
            raise CaffeError(f"{self.where}: {self.windows.path}:{line}: could not open or decode image '{path}'")
        return image

    def _sample(self):
        """One batch's [(window, mirror)]: background windows, then foreground ones."""
        num_fg = int(np.float32(self.batch_size) * np.float32(self.fg_fraction))
        return [(windows[self.random.integers(len(windows))], bool(self.mirror and self.random.integers(2)))
                for windows, count in ((self.windows.background, self.batch_size - num_fg),
                                       (self.windows.foreground, num_fg))
                for _ in range(count)]

    def __call__(self):
        samples = [self._sample() for _ in range(self.ranks)][self.rank]
        crop = self.crop_size
        data = self.allocate((self.batch_size, 3, crop, crop), self.dtype)
        data[...] = 0
        labels = self.allocate((self.batch_size,), self.dtype)
        for item, ((image_index, label, *box, window_line), mirror) in enumerate(samples):
            path, _, line = self.windows.images[image_index]
            image = self._image(path, line)
            if box[2] >= image.shape[1] or box[3] >= image.shape[0]:
                raise CaffeError(f"{self.where}: {self.windows.path}:{window_line}: window {tuple(box)} "
                                 f"lies outside image '{path}', which is {image.shape[1]}x{image.shape[0]}")
            (x1, y1, x2, y2), size, (pad_w, pad_h) = window_geometry(
                box, image.shape[:2], crop, self.context_pad, self.square, mirror, self.dtype)
            if min(size) <= 0:
                raise CaffeError(f"{self.where}: {self.windows.path}:{window_line}: window {tuple(box)} "
                                 f"warps to nothing ({size[0]}x{size[1]} pixels)")
            warped = cv2.resize(image[y1:y2 + 1, x1:x2 + 1], size, interpolation=cv2.INTER_LINEAR)
            if mirror:
                warped = warped[:, ::-1]
            rows, cols = slice(pad_h, pad_h + size[1]), slice(pad_w, pad_w + size[0])
            values = warped.transpose(2, 0, 1).astype(self.dtype)
            if self.mean is not None:
                offset = (self.mean.shape[2] - crop) // 2
                values -= self.mean[:, offset + pad_h:offset + pad_h + size[1],
                                    offset + pad_w:offset + pad_w + size[0]]
            elif self.mean_values is not None:
                values -= self.mean_values
            data[item, :, rows, cols] = values * self.dtype.type(self.scale)
            labels[item] = label
        return data, labels


@register_layer("WindowData")
class WindowDataLayer(PrefetchingDataLayer):
    """Its own setup and batch loader; forward, close and the rest as the other data layers."""
    min_top = None
    max_top = None
    exact_num_top = 2
    cases = Exempt("reads a window file and images: tests/test_window_data.py")

    def setup(self, bottom, top):
        p = self.layer_param.window_data_param
        t = self.layer_param.transform_param
        where = f"layer '{self.name}' (WindowData)"
        if p.batch_size <= 0:
            raise self.error("window_data_param.batch_size must be positive")
        if t.crop_size <= 0:
            hint = (" (window_data_param.crop_size is the old spelling; Caffe reads transform_param)"
                    if p.crop_size else "")
            raise self.error(f"transform_param.crop_size must be set{hint}")
        if p.crop_mode not in ("warp", "square"):
            raise self.error(f"crop_mode must be \"warp\" or \"square\", not \"{p.crop_mode}\"")
        if 2 * p.context_pad >= t.crop_size:
            raise self.error(f"context_pad {p.context_pad} leaves no room in crop_size {t.crop_size}")
        if t.scale != 1:
            logger.warning("%s: WindowData scales by window_data_param.scale, as Caffe; "
                           "transform_param.scale is not used", where)
        if not p.source:
            raise self.error("window_data_param.source is not set")
        try:
            windows = WindowFile(p.source, p.root_folder, p.fg_threshold, p.bg_threshold)
        except CaffeError as exc:
            raise self.error(str(exc)) from None
        num_fg = int(np.float32(p.batch_size) * np.float32(p.fg_fraction))
        for kind, count, listed in (("foreground", num_fg, windows.foreground),
                                    ("background", p.batch_size - num_fg, windows.background)):
            if count and not listed:
                raise self.error(f"{p.source}: a batch takes {count} {kind} windows but the file has none")
        mean, mean_values = self._mean(t)
        logger.info("%s: %d images, %d foreground and %d background windows, context_pad %d, crop_mode %s",
                    where, len(windows.images), len(windows.foreground), len(windows.background),
                    p.context_pad, p.crop_mode)
        mirror = t.mirror and self.phase == caffe_pb2.TRAIN
        settings = (p.batch_size, t.crop_size, p.context_pad, p.crop_mode == "square", mirror, p.scale,
                    p.fg_fraction, p.cache_images)
        top[0].reshape(p.batch_size, 3, t.crop_size, t.crop_size)
        top[1].reshape(p.batch_size)
        try:
            dealt = (mode.solver_rank(), mode.solver_count()) if dealing.applies(self.phase) else (0, 1)
            self.host_arrays = HostArrays()
            loader = WindowBatchLoader(windows, settings, mean, mean_values, self.dtype, where, self.host_arrays,
                                       *dealt)
        except CaffeError as exc:
            raise self.error(str(exc)) from None
        self.start_prefetching(loader, where)

    def _mean(self, t):
        """(mean image (3, H, W) or None, per-channel mean values (3, 1, 1) or None), read as
        the DataTransformer reads them, then checked against what a window needs."""
        try:
            transformer = DataTransformer(t, self.phase, self.dtype)
        except CaffeError as exc:
            raise self.error(str(exc)) from None
        mean, values = transformer.mean, transformer.mean_values
        if mean is not None:
            if mean.shape[0] != 3 or min(mean.shape[1:]) < t.crop_size:
                raise self.error(f"mean_file '{t.mean_file}' has shape {mean.shape}; WindowData needs "
                                 f"(3, H, W) with H and W at least crop_size {t.crop_size}")
            return mean, None
        if len(values):
            if len(values) not in (1, 3):
                raise self.error(f"give 1 mean_value or 3 (one per channel), not {len(values)}")
            return None, np.resize(values, 3).reshape(3, 1, 1)
        return None, None
