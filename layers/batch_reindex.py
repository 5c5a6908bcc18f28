"""BatchReindex: top[i] = bottom[0][index[i]] along axis 0, with the indices in bottom[1] (1-D;
repeats allowed); backward adds each top item's gradient to the item it came from."""
import numpy as np

from nvcaffe_py.conformance import Case, fixed
from nvcaffe_py.layer import Layer
from nvcaffe_py.registry import register_layer


@register_layer("BatchReindex")
class BatchReindexLayer(Layer):
    exact_num_bottom = 2
    exact_num_top = 1
    cases = [Case("", [(4, 2, 3), fixed([3, 0, 3, 1, 3])]),
             Case("", [(5,), fixed([4, 2])])]

    def allow_force_backward(self, bottom_index):
        return bottom_index == 0  # indices have no gradient

    def reshape(self, bottom, top):
        if bottom[1].num_axes != 1:
            raise self.error(f"the index bottom must be 1-D, got shape {bottom[1].shape}")
        if bottom[0].num_axes == 0:
            raise self.error("bottom[0] must have a batch axis, got a scalar")
        top[0].reshape((bottom[1].shape[0],) + bottom[0].shape[1:])

    def _indices(self, bottom):
        values = bottom[1].data_readonly()
        indices = values.astype(np.int64)  # truncated, as Caffe's cast to int
        bad = (indices < 0) | (indices >= bottom[0].shape[0])
        if bad.any():
            raise self.error(f"index {values[bad][0]:g} is outside the batch [0, {bottom[0].shape[0]})")
        return indices

    def forward_cpu(self, bottom, top):
        np.take(bottom[0].data_readonly(), self._indices(bottom), axis=0, out=top[0].data)

    def backward_cpu(self, top, propagate_down, bottom):
        if propagate_down[1]:
            raise self.error("cannot backpropagate to the indices (bottom[1]); set propagate_down: false for it")
        if propagate_down[0]:
            diff = bottom[0].diff
            diff[...] = 0
            np.add.at(diff, self._indices(bottom), top[0].diff_readonly())
