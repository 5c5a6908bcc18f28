"""Axpy (SENet, hujie-frank/SENet): top = a * x + y, a per-(image, channel) scale.

Bottoms a (N, C) or (N, C, 1, 1) (the squeeze-and-excitation weights), x and y of one shape
(N, C, ...). Gradients: da = sum over each plane of x * dtop, dx = a * dtop, dy = dtop. The GPU
half (axpy_gpu.py) is the device's per-channel affine map and reduction.
"""
import numpy as np

from nvcaffe_py.conformance import Case
from nvcaffe_py.layer import Layer
from nvcaffe_py.registry import register_layer

from .axpy_gpu import AxpyGPU


@register_layer("Axpy")
class AxpyLayer(Layer):
    exact_num_bottom = 3
    exact_num_top = 1
    cases = [Case("", [(2, 3, 1, 1), (2, 3, 4, 5), (2, 3, 4, 5)]),
             Case("", [(2, 4), (2, 4, 3), (2, 4, 3)])]

    def reshape(self, bottom, top):
        a, x, y = (b.shape for b in bottom)
        if len(x) < 2 or a[:2] != x[:2] or (len(a) == 4 and a[2:] != (1, 1)) or len(a) not in (2, 4):
            raise self.error(f"the scale must be (N, C) or (N, C, 1, 1) for x {x}, got {a}")
        if x != y:
            raise self.error(f"x {x} and y {y} must have one shape")
        top[0].reshape(x)

    def _planes(self, blob):
        return blob.reshape(blob.shape[0] * blob.shape[1], -1)

    def forward_cpu(self, bottom, top):
        a = bottom[0].data_readonly().reshape(-1, 1)
        np.add(a * self._planes(bottom[1].data_readonly()), self._planes(bottom[2].data_readonly()),
               out=self._planes(top[0].data))

    def backward_cpu(self, top, propagate_down, bottom):
        dtop = self._planes(top[0].diff_readonly())
        if propagate_down[0]:
            bottom[0].diff.reshape(-1)[...] = (dtop * self._planes(bottom[1].data_readonly())).sum(axis=1)
        if propagate_down[1]:
            np.multiply(dtop, bottom[0].data_readonly().reshape(-1, 1), out=self._planes(bottom[1].diff))
        if propagate_down[2]:
            self._planes(bottom[2].diff)[...] = dtop

    def make_gpu(self):
        return AxpyGPU()
