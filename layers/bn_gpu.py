"""The GPU half of SegNet's BN (bn.py), on BatchNorm's kernels (batch_norm.cu) and the device
primitives: batch statistics, the normalised values kept for backward, the affine part."""
from nvcaffe_py.backends.cuda import kernels, memory
from nvcaffe_py.backends.cuda import math_functions as mf
from nvcaffe_py.backends.cuda.gpu_half import DeviceBuffer, GPUHalf

_kernels = kernels.Source(__file__, "batch_norm.cu")
EPS = 1e-9


class SegNetBNGPU(GPUHalf):
    def __init__(self, *, layer, channels, learn):
        self.layer, self.channels, self.learn = layer, channels, learn  # layer.blobs: scale, shift
        self.x_norm, self.inv_std = DeviceBuffer(layer.dtype), DeviceBuffer(layer.dtype)

    def _dims(self, blob):
        return blob.shape[0], self.channels, blob.count(2)

    def forward(self, bottom, top):
        N, C, S = self._dims(bottom[0])
        x, y, n = bottom[0].gpu_data_readonly(), top[0].gpu_data, bottom[0].count()
        scale, shift = (b.gpu_data_readonly() for b in self.layer.blobs)
        if not self.learn:
            mf.channel_affine(x, C, S, scale=scale, bias=shift, out=y)
            return
        mean, variance, inv_std = memory.empty(C, x.dtype), memory.empty(C, x.dtype), self.inv_std.get(C)
        x_norm = self.x_norm.get(n)
        mf.channel_reduce(x, N, C, S, mean)
        mf.scale(1.0 / (N * S), mean)
        _kernels.get("bn_center", x.dtype).launch(n, n, C, S, x, mean, x_norm)
        mf.channel_reduce(x_norm, N, C, S, variance, b=x_norm)
        mf.scale(1.0 / (N * S), variance)
        _kernels.get("bn_inv_std", x.dtype).launch(C, C, variance, EPS, inv_std)
        mf.channel_affine(x_norm, C, S, scale=inv_std)
        mf.channel_affine(x_norm, C, S, scale=scale, bias=shift, out=y)
        for t, statistic in zip(top[1:], (mean, variance)):
            memory.copy(t.gpu_data, statistic)

    def backward(self, top, propagate_down, bottom):
        N, C, S = self._dims(bottom[0])
        dy, n = top[0].gpu_diff_readonly(), bottom[0].count()
        scale, shift = self.layer.blobs
        normalised = self.x_norm.get(n) if self.learn else bottom[0].gpu_data_readonly()
        if self.layer.param_gradient_wanted(0):
            mf.channel_reduce(dy, N, C, S, scale.gpu_diff, b=normalised, beta=1.0)
        if self.layer.param_gradient_wanted(1):
            mf.channel_reduce(dy, N, C, S, shift.gpu_diff, beta=1.0)
        if not propagate_down[0]:
            return
        dx = bottom[0].gpu_diff
        mf.channel_affine(dy, C, S, scale=scale.gpu_data_readonly(), out=dx)
        if self.learn:  # dx holds g = dy * scale; BatchNorm's gradient of the normalisation follows
            sum_g, sum_gy = memory.empty(C, dx.dtype), memory.empty(C, dx.dtype)
            mf.channel_reduce(dx, N, C, S, sum_g)
            mf.channel_reduce(dx, N, C, S, sum_gy, b=normalised)
            _kernels.get("bn_backward", dx.dtype).launch(n, n, C, S, dx, normalised, sum_g, sum_gy, 1.0 / (N * S),
                                                         self.inv_std.get(C), dx)
