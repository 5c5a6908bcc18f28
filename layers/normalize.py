"""Normalize (SSD, weiliu89/caffe): L2-normalize each image, or each pixel's channel vector, and
scale the result by a learned factor, one shared or one per channel (SSD's conv4_3_norm).

  y = scale * x / norm,  norm = sqrt(sum of x^2 + eps)

the sum over an image's channels and pixels (across_spatial, the default) or over the channels
of each pixel. The scale blob is 0-axis when channel_shared (the fork's vector<int>(0)), else (C,);
scale_filler defaults to the constant 1.

The gradient here is the exact derivative of that forward. The fork's backward leaves the scale
out of the dot product it subtracts (dx = scale * (dy - x <x, dy> / norm^2) / norm), which is the
derivative only when the scale is the same for every channel; with channel_shared: false it
differs. The GPU half is normalize_gpu.py with normalize.cu.
"""
import numpy as np

from nvcaffe_py.conformance import Case
from nvcaffe_py.layer import Layer
from nvcaffe_py.proto import caffe_pb2
from nvcaffe_py.registry import register_layer

from .normalize_gpu import NormalizeGPU

_SCALES = 'scale_filler { type: "uniform" min: 0.5 max: 3 }'


@register_layer("Normalize")
class NormalizeLayer(Layer):
    exact_num_bottom = 1
    exact_num_top = 1
    cases = [Case("", [(2, 3, 4, 5)]),
             Case(f"norm_param {{ channel_shared: false {_SCALES} }}", [(2, 3, 4, 5)]),
             Case(f"norm_param {{ across_spatial: false {_SCALES} }}", [(2, 3, 4, 5)]),
             Case(f"norm_param {{ across_spatial: false channel_shared: false eps: 0.01 {_SCALES} }}",
                  [(2, 4, 3, 2)]),
             Case("norm_param { across_spatial: false channel_shared: false }", [(3, 5)])]

    def setup(self, bottom, top):
        p = self.layer_param.norm_param
        if bottom[0].num_axes < 2:
            raise self.error(f"input must have at least 2 axes (num, channels, ...), got shape {bottom[0].shape}")
        self.across_spatial, self.channel_shared, self.eps = p.across_spatial, p.channel_shared, p.eps
        self.channels = bottom[0].shape[1]
        filler = p.scale_filler if p.HasField("scale_filler") else caffe_pb2.FillerParameter(type="constant", value=1)
        self.init_param_blobs([("scale", () if self.channel_shared else (self.channels,), filler)])

    def reshape(self, bottom, top):
        if bottom[0].num_axes < 2 or bottom[0].shape[1] != self.channels:
            raise self.error(f"input shape {bottom[0].shape}; the layer was set up for {self.channels} channels")
        top[0].reshape_like(bottom[0])

    def _view(self, array):
        return array.reshape(array.shape[0], self.channels, -1)

    def _sum(self, a):
        """Per image (across_spatial) or per pixel, kept broadcastable against (N, C, S)."""
        return a.sum(axis=(1, 2), keepdims=True) if self.across_spatial else a.sum(axis=1, keepdims=True)

    def _scale(self):
        scale = self.blobs[0].data_readonly()
        return scale if self.channel_shared else scale.reshape(self.channels, 1)

    def forward_cpu(self, bottom, top):
        x = self._view(bottom[0].data_readonly())
        self.norm = np.sqrt(self._sum(np.square(x, dtype=np.float64)) + self.eps).astype(x.dtype)
        np.multiply(x / self.norm, self._scale(), out=self._view(top[0].data))

    def backward_cpu(self, top, propagate_down, bottom):
        x, dy = self._view(bottom[0].data_readonly()), self._view(top[0].diff_readonly())
        if self.param_gradient_wanted(0):
            products = x / self.norm * dy
            self.blobs[0].diff[...] += products.sum() if self.channel_shared else products.sum(axis=(0, 2))
        if propagate_down[0]:
            g = dy * self._scale()
            self._view(bottom[0].diff)[...] = g / self.norm - x * (self._sum(x * g) / self.norm ** 3)

    def make_gpu(self):
        return NormalizeGPU(layer=self, channels=self.channels, across_spatial=self.across_spatial,
                            channel_shared=self.channel_shared, eps=self.eps)
