"""SegNet's BN (alexgkendall/caffe-segnet): its own batch normalization with a learned affine part.

Blobs scale and shift, (1, C, 1, 1). LEARN normalizes with the batch's mean and variance (the fork
takes E[x^2] - E[x]^2; the centred form here is the same value, computed stably), eps 1e-9, then
y = x_norm * scale + shift, and gives the batch mean and variance as the optional tops 1 and 2;
INFERENCE is y = x * scale + shift (SegNet's compute_bn_statistics.py folds the statistics into
scale and shift for it). The GPU half is bn_gpu.py, on BatchNorm's kernels.
"""
import numpy as np

from nvcaffe_py.conformance import Case
from nvcaffe_py.layer import Layer
from nvcaffe_py.registry import register_layer

from .bn_gpu import SegNetBNGPU

EPS = 1e-9


@register_layer("BN")
class SegNetBNLayer(Layer):
    exact_num_bottom = 1
    min_top, max_top = 1, 3
    _FILLERS = 'bn_param { scale_filler { type: "uniform" min: 0.5 max: 2 } shift_filler { type: "gaussian" std: 1 } '
    cases = [Case(_FILLERS + "}", [(3, 2, 4, 3)]),
             Case(_FILLERS + "}", [(4, 3, 2, 2)], tops=3,
                  no_gradient="the statistics tops pass no gradient back, as in the fork"),
             Case(_FILLERS + "bn_mode: INFERENCE }", [(2, 3, 4, 3)])]

    def setup(self, bottom, top):
        p = self.layer_param.bn_param
        self.channels = bottom[0].shape[1]
        shape = (1, self.channels, 1, 1)
        self.init_param_blobs([("scale", shape, p.scale_filler), ("shift", shape, p.shift_filler)])
        self.learn = p.bn_mode == p.LEARN

    def reshape(self, bottom, top):
        if bottom[0].num_axes != 4 or bottom[0].shape[1] != self.channels:
            raise self.error(f"input {bottom[0].shape}; the layer was set up for (N, {self.channels}, H, W)")
        top[0].reshape_like(bottom[0])
        for t in top[1:]:
            t.reshape(1, self.channels, 1, 1)

    def forward_cpu(self, bottom, top):
        x = bottom[0].data_readonly()
        scale, shift = self.blobs[0].data_readonly(), self.blobs[1].data_readonly()
        if not self.learn:
            np.add(x * scale, shift, out=top[0].data)
            return
        mean = x.mean(axis=(0, 2, 3), keepdims=True, dtype=x.dtype)
        centred = x - mean
        variance = np.square(centred).mean(axis=(0, 2, 3), keepdims=True, dtype=x.dtype)
        self.inv_std = 1 / np.sqrt(variance + x.dtype.type(EPS))
        self.x_norm = centred * self.inv_std
        np.add(self.x_norm * scale, shift, out=top[0].data)
        for t, statistic in zip(top[1:], (mean, variance)):
            t.data[...] = statistic

    def backward_cpu(self, top, propagate_down, bottom):
        dy = top[0].diff_readonly()
        scale = self.blobs[0].data_readonly()
        if self.param_gradient_wanted(0):
            x_norm = self.x_norm if self.learn else bottom[0].data_readonly()
            self.blobs[0].diff[...] += (dy * x_norm).sum(axis=(0, 2, 3), keepdims=True)
        if self.param_gradient_wanted(1):
            self.blobs[1].diff[...] += dy.sum(axis=(0, 2, 3), keepdims=True)
        if not propagate_down[0]:
            return
        g = dy * scale
        if not self.learn:
            bottom[0].diff[...] = g
            return
        y = self.x_norm
        mean_g = g.mean(axis=(0, 2, 3), keepdims=True)
        mean_gy = (g * y).mean(axis=(0, 2, 3), keepdims=True)
        bottom[0].diff[...] = (g - mean_g - y * mean_gy) * self.inv_std

    def make_gpu(self):
        return SegNetBNGPU(layer=self, channels=self.channels, learn=self.learn)
