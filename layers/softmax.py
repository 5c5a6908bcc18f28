"""Softmax over one axis, and log_softmax, its numerically stable logarithm (which the softmax
losses of softmax_loss.py build on)."""
import numpy as np

from nvcaffe_py.layer import Layer
from nvcaffe_py.registry import register_layer


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

    def reshape(self, bottom, top):
        self.axis = self.canonical_axis(bottom[0], self.layer_param.softmax_param.axis)
        top[0].reshape_like(bottom[0])

    def forward_cpu(self, bottom, top):
        top[0].data[...] = np.exp(log_softmax(bottom[0].data, self.axis))

    def backward_cpu(self, top, propagate_down, bottom):
        if propagate_down[0]:
            y, dy = top[0].data, top[0].diff
            bottom[0].diff[...] = (dy - np.sum(dy * y, axis=self.axis, keepdims=True)) * y

    def forward_gpu(self, bottom, top):
        from . import softmax_gpu

        softmax_gpu.softmax_forward(self, bottom, top)

    def backward_gpu(self, top, propagate_down, bottom):
        from . import softmax_gpu

        softmax_gpu.softmax_backward(self, top, propagate_down, bottom)
