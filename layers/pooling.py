"""Pooling: MAX, AVE and STOCHASTIC over spatial windows, as Caffe's PoolingLayer.

Caffe's rules: windows start at -pad; the output length rounds up (CEIL, the default) or down,
and, with padding, drops a last window that would start in the padding; MAX keeps the first
maximum in scan order (its index h * W + w is the optional second top, Caffe's mask) and starts
from -FLT_MAX; AVE divides by the window clipped to the padded image; STOCHASTIC samples in
proportion to the activations in TRAIN and takes their self-weighted average in TEST. The CPU
engine is backends/cpu/pooling.py; the GPU half (MAX and AVE) is pooling_gpu.py with pooling.cu.
"""
import numpy as np

from nvcaffe_py.backends.cpu import onednn
from nvcaffe_py.backends.cpu.pooling import AVE, MAX, STOCHASTIC, Pool2D
from nvcaffe_py.conformance import Case, uniform
from nvcaffe_py.layer import Layer
from nvcaffe_py.proto import caffe_pb2
from nvcaffe_py.registry import register_layer

from .pooling_gpu import PoolingGPU


@register_layer("Pooling")
class PoolingLayer(Layer):
    exact_num_bottom = 1
    min_top = 1
    max_top = 1
    cases = [
        Case("pooling_param { pool: MAX kernel_size: 3 stride: 2 }", [(2, 3, 7, 9)]),
        Case("pooling_param { pool: MAX kernel_size: 2 stride: 2 pad: 1 }", [(2, 3, 7, 9)]),
        Case("pooling_param { pool: MAX kernel_size: 3 stride: 2 }", [(2, 2, 7, 7)], tops=2),
        Case("pooling_param { pool: MAX kernel_h: 3 kernel_w: 2 stride_h: 2 stride_w: 1 pad_h: 2 pad_w: 1 }",
             [(2, 2, 7, 5)]),
        Case("pooling_param { pool: MAX global_pooling: true }", [(2, 3, 7, 9)]),
        Case("pooling_param { pool: AVE kernel_size: 3 stride: 2 pad: 1 }", [(2, 3, 7, 9)]),
        Case("pooling_param { pool: AVE kernel_h: 2 kernel_w: 3 stride_h: 1 stride_w: 2 }", [(2, 3, 7, 9)]),
        Case("pooling_param { pool: AVE kernel_size: 3 stride: 3 pad: 1 round_mode: FLOOR }", [(2, 2, 7, 8)]),
        Case("pooling_param { pool: AVE global_pooling: true }", [(2, 3, 7, 9)]),
        Case("pooling_param { pool: STOCHASTIC kernel_size: 3 stride: 2 }", [uniform((2, 2, 7, 6), 0.1, 1.0)]),
        Case("pooling_param { pool: STOCHASTIC kernel_size: 3 stride: 2 }", [uniform((2, 2, 7, 6), 0.1, 1.0)],
             phase=caffe_pb2.TEST),
    ]

    def __init__(self, layer_param, phase=None, dtype=np.float32):
        super().__init__(layer_param, phase, dtype)
        # MAX may write its mask to a second top (Caffe's MaxTopBlobs).
        if layer_param.pooling_param.pool == MAX:
            self.max_top = 2

    def setup(self, bottom, top):
        p = self.layer_param.pooling_param
        has = p.HasField
        self.method = p.pool
        self.global_pooling = p.global_pooling
        if self.global_pooling:
            if has("kernel_size") or has("kernel_h") or has("kernel_w"):
                raise self.error("with global_pooling the kernel size cannot be given")
        elif has("kernel_size") == (has("kernel_h") and has("kernel_w")):
            raise self.error("give the kernel as kernel_size or as kernel_h and kernel_w, not both or neither")
        for name, what in (("pad", "padding"), ("stride", "stride")):
            pair = (has(f"{name}_h"), has(f"{name}_w"))
            if pair != (False, False) and (pair != (True, True) or has(name)):
                raise self.error(f"give the {what} as {name} or as {name}_h and {name}_w")
        self.kernel = (p.kernel_size, p.kernel_size) if has("kernel_size") else (p.kernel_h, p.kernel_w)
        self.pad = (p.pad_h, p.pad_w) if has("pad_h") else (p.pad, p.pad)
        self.stride = (p.stride_h, p.stride_w) if has("stride_h") else (p.stride, p.stride)
        if self.global_pooling and (self.pad != (0, 0) or self.stride != (1, 1)):
            raise self.error("with global_pooling only pad = 0 and stride = 1 are allowed")
        if not self.global_pooling and min(self.kernel) <= 0:
            raise self.error(f"kernel size must be positive, got {self.kernel[0]}x{self.kernel[1]}")
        if min(self.stride) <= 0:
            raise self.error(f"stride must be positive, got {self.stride[0]}x{self.stride[1]}")
        if self.pad != (0, 0):
            if self.method == STOCHASTIC:
                raise self.error("padding is implemented only for MAX and AVE pooling")
            if self.pad[0] >= self.kernel[0] or self.pad[1] >= self.kernel[1]:
                raise self.error(f"pad {self.pad} must be smaller than the kernel {self.kernel}")
        self.ceil_mode = p.round_mode == caffe_pb2.PoolingParameter.CEIL
        self.pool = None

    def reshape(self, bottom, top):
        if bottom[0].num_axes != 4:
            raise self.error(f"input must have 4 axes (num, channels, height, width), got shape {bottom[0].shape}")
        num, channels, height, width = bottom[0].shape
        kernel = (height, width) if self.global_pooling else self.kernel
        if self.pool is None or (self.pool.height, self.pool.width) != (height, width):
            self.pool = Pool2D(height, width, kernel, self.stride, self.pad, self.method, self.ceil_mode,
                               train=self.phase == caffe_pb2.TRAIN)
        if min(self.pool.pooled) <= 0:
            raise self.error(f"kernel {kernel} is larger than the padded {height}x{width} input")
        top[0].reshape(num, channels, *self.pool.pooled)
        if len(top) > 1:
            top[1].reshape(top[0].shape)

    def forward_only(self):
        """No backward follows: MAX keeps no argmax beyond the forward (unless it is the mask top),
        and oneDNN may run it (onednn_operation)."""
        self._keep_index = False
        if self._onednn is None and onednn.chosen_for(self, self.layer_param.pooling_param.engine):
            self._onednn = {}

    _keep_index = True
    _onednn = None  # oneDNN's primitives by input layout, once forward_only allowed them

    def onednn_operation(self, source, dims, negative_slope):
        """oneDNN's pooling of `source` (a layout of the bottom's `dims`) with a ReLU after it, where
        it computes Caffe's windows: MAX where every window holds a pixel of the image, AVE where
        no window reaches past the padded image (so the divisor is the whole window, as Caffe's);
        else None."""
        if self._onednn is None or self.method not in (MAX, AVE) or tuple(dims[2:]) != (self.pool.height,
                                                                                    self.pool.width):
            return None
        kernel = dims[2:] if self.global_pooling else self.kernel
        for out, stride, size, length, pad in zip(self.pool.pooled, self.stride, kernel, dims[2:], self.pad):
            last_start = (out - 1) * stride - pad
            if last_start >= length if self.method == MAX else last_start + size > length + pad:
                return None
        key = (onednn.library().layout(source), negative_slope)
        return onednn.cached(self._onednn, key, onednn.Pooling, source, dims, self.pool.pooled, kernel, self.stride,
                             self.pad, self.method == AVE, negative_slope)

    def forward_cpu(self, bottom, top):
        self.pool.forward(bottom[0].data_readonly(), top[0].data, keep_index=self._keep_index or len(top) > 1)
        if len(top) > 1:
            top[1].data[...] = self.pool.index

    def backward_cpu(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        bottom[0].diff[...] = 0
        mask = top[1].data_readonly().astype(np.intp) if len(top) > 1 else None
        self.pool.backward(bottom[0].data_readonly(), top[0].diff_readonly(), bottom[0].diff, mask)

    def make_gpu(self):
        if self.method not in (MAX, AVE):
            return None  # STOCHASTIC has no kernel
        return PoolingGPU(max_pool=self.method == MAX, global_pooling=self.global_pooling, kernel=self.kernel,
                          stride=self.stride, pad=self.pad)
