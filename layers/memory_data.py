"""MemoryData: batches from arrays held in memory (`memory_data_param { batch_size channels
height width }`), handed over by pycaffe's `net.set_input_arrays(data, labels)`.

`data` is N x channels x height x width, `labels` has N values (pycaffe's N x 1 x 1 x 1 or a
flat vector); N must be a multiple of batch_size. Each forward takes the next batch_size rows,
cycling. As in Caffe, the arrays are used as given: `transform_param` does not apply to them.
Unlike pycaffe, arrays of another dtype or memory order are converted instead of refused.
"""
import numpy as np

from nvcaffe_py.conformance import Case
from nvcaffe_py.layer import Layer
from nvcaffe_py.registry import register_layer


def feed_numbered_rows(layer, bottoms):
    """The conformance cases' arrays (their `prepare`): two batches whose values count up."""
    rows = 2 * layer.batch
    data = np.arange(rows * int(np.prod(layer.item_shape))).reshape((rows,) + layer.item_shape)
    layer.reset(data, np.arange(rows))


@register_layer("MemoryData")
class MemoryDataLayer(Layer):
    exact_num_bottom = 0
    exact_num_top = 2
    cases = [Case("memory_data_param { batch_size: 2 channels: 3 height: 2 width: 4 }", [], tops=2,
                  prepare=feed_numbered_rows)]

    def setup(self, bottom, top):
        p = self.layer_param.memory_data_param
        self.batch = p.batch_size
        self.item_shape = (p.channels, p.height, p.width)
        if min((self.batch,) + self.item_shape) <= 0:
            raise self.error("batch_size, channels, height and width must be specified and positive "
                             "in memory_data_param")
        self._data = self._labels = None
        self._position = 0

    def reshape(self, bottom, top):
        top[0].reshape((self.batch,) + self.item_shape)
        top[1].reshape((self.batch,))

    def reset(self, data, labels):
        """Use these arrays from now on, starting at their first row (Caffe's Reset)."""
        data = np.ascontiguousarray(data, dtype=self.dtype)
        labels = np.ascontiguousarray(labels, dtype=self.dtype)
        if data.ndim != 4 or data.shape[1:] != self.item_shape:
            raise self.error(f"data array must have shape (N, {', '.join(map(str, self.item_shape))}), "
                             f"got {data.shape}")
        if labels.size != len(labels) or len(labels) != len(data):
            raise self.error(f"labels must hold one value per data row ({len(data)}), got shape {labels.shape}")
        if len(data) == 0 or len(data) % self.batch:
            raise self.error(f"the number of rows ({len(data)}) must be a positive multiple of "
                             f"batch_size ({self.batch})")
        self._data, self._labels = data, labels.reshape(-1)
        self._position = 0

    def forward_cpu(self, bottom, top):
        if self._data is None:
            raise self.error("no data: call net.set_input_arrays(data, labels) first")
        rows = slice(self._position, self._position + self.batch)
        top[0].data[...] = self._data[rows]
        top[1].data[...] = self._labels[rows]
        self._position = (self._position + self.batch) % len(self._data)
