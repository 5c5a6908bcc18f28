"""MVN: mean-variance normalization of each (n, c) plane, or of each n across channels, as Caffe.

    top = x - mean                      (normalize_variance: false)
    top = (x - mean) / (std + eps)      (normalize_variance: true; eps is added after the root, as Caffe)

Backward follows Caffe's formula, dx = (dy - mean(dy) - y * mean(y * dy)) / (std + eps), using
the output y; it is the exact gradient up to terms of order eps / std.
"""
import numpy as np

from nvcaffe_py.conformance import Case
from nvcaffe_py.layer import Layer
from nvcaffe_py.registry import register_layer


@register_layer("MVN")
class MVNLayer(Layer):
    exact_num_bottom = 1
    exact_num_top = 1
    cases = [Case("", [(2, 3, 3, 4)]),
             Case("mvn_param { across_channels: true }", [(2, 3, 3, 4)]),
             Case("mvn_param { normalize_variance: false }", [(2, 3, 3, 4)]),
             Case("mvn_param { normalize_variance: false across_channels: true }", [(2, 3, 4)]),
             Case("mvn_param { across_channels: true }", [(3, 7)]),
             Case("", [(2, 3, 4)], in_place=True)]

    def setup(self, bottom, top):
        p = self.layer_param.mvn_param
        self.normalize_variance = p.normalize_variance
        self.across_channels = p.across_channels
        self.eps = p.eps

    def reshape(self, bottom, top):
        top[0].reshape(bottom[0].shape)
        # A group is one (n, c) plane, or one n across channels.
        self.groups = bottom[0].num if self.across_channels else bottom[0].num * bottom[0].channels

    def _rows(self, array):
        """(groups, elements per group) view."""
        return array.reshape(self.groups, -1)

    def forward_cpu(self, bottom, top):
        x, y = self._rows(bottom[0].data_readonly()), self._rows(top[0].data)
        np.subtract(x, x.mean(axis=1, dtype=x.dtype, keepdims=True), out=y)
        if self.normalize_variance:
            variance = np.square(y).mean(axis=1, dtype=y.dtype, keepdims=True)
            self.std = np.sqrt(variance) + y.dtype.type(self.eps)
            y /= self.std

    def backward_cpu(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        y, dy = self._rows(top[0].data_readonly()), self._rows(top[0].diff_readonly())
        dx = self._rows(bottom[0].diff)
        mean_dy = dy.mean(axis=1, dtype=dy.dtype, keepdims=True)
        if not self.normalize_variance:
            np.subtract(dy, mean_dy, out=dx)
            return
        mean_y_dy = np.einsum("ij,ij->i", y, dy)[:, None] / y.shape[1]
        correction = y * mean_y_dy  # computed before dx is written: in place, dx is dy
        np.subtract(dy, mean_dy, out=dx)
        dx -= correction
        dx /= self.std
