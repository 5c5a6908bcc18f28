"""LRN: local response normalization, as Caffe's LRNLayer.

    top = x * scale^-beta, with
    ACROSS_CHANNELS: scale = k + alpha / n * (sum of x^2 over n channels centred on this one)
    WITHIN_CHANNEL:  scale = 1 + alpha * (AVE pooling of x^2 over n x n, pad (n-1)/2)

Within a channel Caffe builds the scale from Power and Pooling layers whose shift is 1, so `k`
is not used there, and the pooling's divisor counts the padding (always n^2). The GPU half
(across channels; within a channel the CPU code runs) is lrn_gpu.py with lrn.cu.
"""
import numpy as np

from nvcaffe_py.backends.cpu import onednn
from nvcaffe_py.backends.cpu.pooling import AVE, Pool2D
from nvcaffe_py.conformance import Case
from nvcaffe_py.layer import Layer
from nvcaffe_py.proto import caffe_pb2
from nvcaffe_py.registry import register_layer

from .lrn_gpu import LRNGPU

ACROSS_CHANNELS = caffe_pb2.LRNParameter.ACROSS_CHANNELS


@register_layer("LRN")
class LRNLayer(Layer):
    exact_num_bottom = 1
    exact_num_top = 1
    cases = [
        Case("lrn_param { local_size: 3 alpha: 0.5 beta: 0.75 k: 2 }", [(2, 7, 3, 4)]),
        Case("lrn_param { local_size: 5 alpha: 0.5 beta: 0.75 k: 2 }", [(2, 7, 3, 4)]),
        Case("lrn_param { local_size: 9 }", [(2, 3, 2, 2)]),  # the window is wider than the channels
        Case("lrn_param { local_size: 3 alpha: 0.5 beta: 0.75 norm_region: WITHIN_CHANNEL }", [(2, 3, 5, 4)]),
        Case("lrn_param { local_size: 5 alpha: 2 norm_region: WITHIN_CHANNEL }", [(2, 2, 6, 5)]),
    ]

    def setup(self, bottom, top):
        p = self.layer_param.lrn_param
        self.size = p.local_size
        if self.size % 2 != 1:
            raise self.error(f"local_size must be odd, got {self.size}")
        self.pre_pad = (self.size - 1) // 2
        self.alpha, self.beta, self.k = p.alpha, p.beta, p.k
        self.across = p.norm_region == ACROSS_CHANNELS
        self.pool = None

    def reshape(self, bottom, top):
        if bottom[0].num_axes != 4:
            raise self.error(f"input must have 4 axes (num, channels, height, width), got shape {bottom[0].shape}")
        height, width = bottom[0].shape[2:]
        if not self.across and (self.pool is None or (self.pool.height, self.pool.width) != (height, width)):
            pad = (self.pre_pad, self.pre_pad)
            self.pool = Pool2D(height, width, (self.size, self.size), (1, 1), pad, AVE)
        top[0].reshape(bottom[0].shape)

    _onednn = None  # oneDNN's primitives by input layout, once forward_only allowed them

    def onednn_operation(self, source, dims, negative_slope):
        """oneDNN's LRN across channels of `source` (a layout of the bottom's `dims`), into the same
        layout; None with a ReLU after it (oneDNN's LRN takes no post-ops)."""
        if self._onednn is None or negative_slope is not None:
            return None
        return onednn.cached(self._onednn, onednn.library().layout(source), onednn.LRN, source, dims, self.size,
                             self.alpha, self.beta, self.k)

    def _channel_window_sum(self, x):
        """Sum over the `size` channels centred on each channel (zeros beyond the edges). The
        window is symmetric, so this is also its own adjoint, which backward uses."""
        out = x.copy()
        channels = x.shape[1]
        for shift in range(1, self.pre_pad + 1):
            if shift < channels:
                out[:, shift:] += x[:, :-shift]
                out[:, :-shift] += x[:, shift:]
        return out

    def forward_cpu(self, bottom, top):
        x = bottom[0].data_readonly()
        # Forward-only, the top holds the squares until the result overwrites them: one
        # temporary the size of the input fewer.
        spare = self._forward_only and not top[0].shares_data_with(bottom[0])
        squares = np.multiply(x, x, out=top[0].data if spare else None)
        if self.across:
            scale = self._channel_window_sum(squares)
            scale *= self.alpha / self.size
            scale += self.k
        else:
            scale = np.empty_like(x)
            self.pool.forward(squares, scale)
            scale *= self.alpha
            scale += 1
        if self._forward_only:
            np.power(scale, -self.beta, out=scale)
            np.multiply(x, scale, out=top[0].data)
            return
        # Kept for backward: it needs both scale and scale^-beta, and recomputing the power costs
        # more than storing it.
        self.scale = scale
        self.scale_power = np.power(scale, -self.beta, dtype=x.dtype)
        np.multiply(x, self.scale_power, out=top[0].data)

    _forward_only = False

    def forward_only(self):
        """No backward follows: the scales are not kept beyond the forward, and oneDNN may run the
        forward across channels (onednn_operation), unless an engine says CAFFE."""
        self._forward_only = True
        if self._onednn is None and self.across and onednn.chosen_for(self, self.layer_param.lrn_param.engine):
            self._onednn = {}

    def backward_cpu(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        x, top_diff = bottom[0].data_readonly(), top[0].diff_readonly()
        # d(top_j)/d(scale_j) * top_diff_j = -beta * top_diff_j * top_j / scale_j, with top_j
        # recomputed from x so that a later in-place layer may change top's data.
        ratio = top_diff * x * self.scale_power / self.scale
        if self.across:
            spread = self._channel_window_sum(ratio)
            spread *= 2 * self.alpha * self.beta / self.size
        else:
            spread = np.zeros_like(x)
            self.pool.backward(None, ratio, spread)
            spread *= 2 * self.alpha * self.beta
        spread *= x
        np.multiply(top_diff, self.scale_power, out=bottom[0].diff)
        bottom[0].diff[...] -= spread

    def make_gpu(self):
        if not self.across:
            return None  # within a channel: no kernel, the CPU code runs
        return LRNGPU(size=self.size, alpha=self.alpha, beta=self.beta, k=self.k, dtype=self.dtype)
