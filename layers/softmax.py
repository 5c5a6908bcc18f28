"""Softmax over one axis, and log_softmax, its numerically stable logarithm (which the softmax
losses of softmax_loss.py build on)."""
import numpy as np

from nvcaffe_py.conformance import Case, normal
from nvcaffe_py.layer import Layer
from nvcaffe_py.registry import register_layer

from .softmax_gpu import SoftmaxGPU


def log_softmax(x: np.ndarray, axis: int) -> np.ndarray:
    """log(softmax(x)) along `axis`; shifting by the maximum first keeps exp from overflowing and
    the log finite where the probability underflows."""
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


@register_layer("Softmax")
class SoftmaxLayer(Layer):
    """exp(x) / sum exp(x) along `softmax_param.axis` (default 1, the channels)."""

    exact_num_bottom = 1
    exact_num_top = 1
    cases = [Case("", [normal((5, 7), scale=3)]),
             Case("", [normal((2, 4, 3, 2), scale=3)]),
             Case("", [normal((2, 4, 3, 2), scale=3)], in_place=True),
             Case("softmax_param { axis: -1 }", [normal((3, 40), scale=3)]),
             Case("softmax_param { axis: 2 }", [normal((2, 3, 4), scale=3)]),
             Case("softmax_param { axis: 0 }", [normal((3, 2, 4), scale=3)])]

    def reshape(self, bottom, top):
        self.axis = self.canonical_axis(bottom[0], self.layer_param.softmax_param.axis)
        top[0].reshape_like(bottom[0])

    def forward_cpu(self, bottom, top):
        x, y = bottom[0].data_readonly(), top[0].data
        np.subtract(x, x.max(axis=self.axis, keepdims=True), out=y)  # exp cannot overflow then
        np.exp(y, out=y)
        y /= y.sum(axis=self.axis, keepdims=True)

    def backward_cpu(self, top, propagate_down, bottom):
        if propagate_down[0]:
            y, dy = top[0].data_readonly(), top[0].diff_readonly()
            bottom[0].diff[...] = (dy - np.sum(dy * y, axis=self.axis, keepdims=True)) * y

    def make_gpu(self):
        return SoftmaxGPU(axis=self.layer_param.softmax_param.axis)
