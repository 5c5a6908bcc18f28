"""PrefetchingDataLayer: what Data and ImageData share (Caffe's BasePrefetchingDataLayer).

A subclass opens a *record source* in `open_source()`:
    source.description     for messages, e.g. "LMDB 'runs/digits/train_lmdb'"
    source.size()          how many records it holds
    source.peek()          (key, item) of the next record, without advancing
    source.next()          (key, item), advancing (and cycling at the end)
    source.decode(item, transformer) -> (CxHxW image, label)
Batches are read, decoded and transformed by a background thread (nvcaffe_py.prefetch) a few
batches ahead; a record that cannot be read is an error naming the layer, source and key.
Each batch takes its shape from its first image (so batch_size 1 allows images of any size).
In a data-parallel run a TRAIN-phase layer reads only its rank's share of the records
(nvcaffe_py.scaleout.dealing). In GPU mode the batch is built in page-locked memory and the GPU
half (base_data_gpu.py) uploads it asynchronously into a double buffer.
"""
import weakref

import numpy as np

from nvcaffe_py import mode
from nvcaffe_py.backends.cuda.pinned import PinnedArrays
from nvcaffe_py.data_transformer import DataTransformer
from nvcaffe_py.errors import CaffeError
from nvcaffe_py.layer import Layer
from nvcaffe_py.prefetch import Prefetcher
from nvcaffe_py.scaleout import dealing

from .base_data_gpu import PrefetchedBatchGPU


class HostArrays:
    """Where the prefetch thread builds a batch: page-locked arrays in GPU mode (their upload
    needs no staging copy), NumPy's otherwise."""

    def __init__(self):
        self.pinned = PinnedArrays()

    def __call__(self, shape, dtype):
        return self.pinned.empty(shape, dtype) if mode.gpu_mode() else np.empty(shape, dtype)


class BatchLoader:
    """Reads and transforms one batch; runs in the prefetch thread. Holds no reference to the
    layer, so that a layer dropped by its net can stop its thread."""

    def __init__(self, source, transformer, batch_size, dtype, where, allocate):
        self.source, self.transformer = source, transformer
        self.batch_size, self.dtype, self.where = batch_size, dtype, where
        self.allocate = allocate  # (shape, dtype) -> the array to fill

    def __call__(self):
        data = None
        labels = self.allocate((self.batch_size,), self.dtype)
        for i in range(self.batch_size):
            key, item = self.source.next()
            try:
                image, labels[i] = self.source.decode(item, self.transformer)
                if data is None:
                    first = image.shape
                    data = self.allocate((self.batch_size,) + self.transformer.output_shape(first), self.dtype)
                elif image.shape != first:
                    raise CaffeError(f"image shape {image.shape} differs from {first} of the batch's first image "
                                     f"(images of different sizes need batch_size 1, or resizing)")
                self.transformer.transform(image, data[i])
            except CaffeError as exc:
                raise CaffeError(f"{self.where}: record '{key}' of {self.source.description}: {exc}") from None
        return data, labels


class PrefetchingDataLayer(Layer):
    exact_num_bottom = 0
    min_top = 1
    max_top = 2

    def open_source(self):
        raise NotImplementedError

    def batch_size(self) -> int:
        raise NotImplementedError

    def prefetch_depth(self) -> int:
        return 4

    def setup(self, bottom, top):
        where = f"layer '{self.name}' ({self.type})"
        batch_size = self.batch_size()
        if batch_size <= 0:
            raise self.error("batch_size must be positive")
        try:
            self.transformer = DataTransformer(self.layer_param.transform_param, self.phase, self.dtype)
            self.source = self.open_source()
            if dealing.applies(self.phase):
                self.source = dealing.DealtSource(self.source, self.source.size())
        except CaffeError as exc:
            raise self.error(str(exc)) from None
        key, item = self.source.peek()
        try:
            image, _ = self.source.decode(item, self.transformer)
            shape = self.transformer.output_shape(image.shape)
        except CaffeError as exc:
            raise CaffeError(f"{where}: record '{key}' of {self.source.description}: {exc}") from None
        top[0].reshape((batch_size,) + shape)
        if len(top) > 1:
            top[1].reshape((batch_size,))
        self.host_arrays = HostArrays()
        self.start_prefetching(BatchLoader(self.source, self.transformer, batch_size, self.dtype, where,
                                           self.host_arrays), where)

    def start_prefetching(self, loader, where):
        """Batches from loader() by a background thread, which starts on the first forward (so that
        merely building a net reads nothing) and stops when the layer goes."""
        self.prefetcher = Prefetcher(loader, depth=self.prefetch_depth(), name=f"{where} prefetch")
        weakref.finalize(self, self.prefetcher.close)

    def reshape(self, bottom, top):
        pass  # each batch sets the shape in forward

    def forward_cpu(self, bottom, top):
        ahead = self._gpu_half.take_ahead() if self._gpu_half is not None else None
        (data, labels), log_notes = ahead or self.prefetcher.take()
        log_notes()
        top[0].reshape(data.shape)
        top[0].data[...] = data
        if len(top) > 1:
            top[1].reshape(labels.shape)
            top[1].data[...] = labels

    def make_gpu(self):
        return PrefetchedBatchGPU(take=self.prefetcher.take, pinned=self.host_arrays.pinned)

    def close(self):
        """Stop the prefetch thread now (it also stops when the layer is garbage collected)."""
        self.prefetcher.close()
