"""The GPU half of BatchNorm (batch_norm.cu + math_functions' channel sums), step for step as
batch_norm.py: batch or stored statistics, running averages updated on the device, and the
normalised output kept for backward."""
from nvcaffe_py.backends.cuda import kernels, memory
from nvcaffe_py.backends.cuda import math_functions as mf
from nvcaffe_py.backends.cuda.gpu_half import DeviceBuffer, GPUHalf

_kernels = kernels.Source(__file__, "batch_norm.cu")


class BatchNormGPU(GPUHalf):
    def __init__(self, *, layer, channels, eps, use_global_stats, moving_average_fraction, scale_bias):
        # the layer's blobs: the running sums of means and variances, their scale factor, and with
        # scale_bias the learned scale and bias
        self.layer, self.scale_bias = layer, scale_bias
        self.channels, self.eps = channels, eps
        self.use_global_stats, self.moving_average_fraction = use_global_stats, moving_average_fraction
        self.inv_std = DeviceBuffer(layer.dtype)
        # Backward needs the normalised values; a later in-place layer (usually Scale) overwrites top.
        self.x_norm = DeviceBuffer(layer.dtype)

    def _dims(self, blob):
        """(outer, channels, pixels) of the (N, C, spatial) view."""
        return blob.shape[0], self.channels, blob.count() // (blob.shape[0] * self.channels)

    def forward(self, bottom, top):
        N, C, S = self._dims(bottom[0])
        n, m = bottom[0].count(), N * S
        x, y = bottom[0].gpu_data_readonly(), top[0].gpu_data
        mean = memory.empty(C, x.dtype)
        variance = memory.empty(C, x.dtype)
        mean_sum, variance_sum, scale_factor = self.layer.blobs[:3]
        if self.use_global_stats:
            _kernels.get("bn_stored_statistics", x.dtype).launch(
                C, C, mean_sum.gpu_data_readonly(), variance_sum.gpu_data_readonly(), scale_factor.gpu_data_readonly(),
                mean, variance)
        else:
            mf.channel_reduce(x, N, C, S, mean)
            mf.scale(1.0 / m, mean)
        _kernels.get("bn_center", x.dtype).launch(n, n, C, S, x, mean, y)  # elementwise: fine in place
        if not self.use_global_stats:
            mf.channel_reduce(y, N, C, S, variance, b=y)
            mf.scale(1.0 / m, variance)
            f = self.moving_average_fraction
            mf.scale(f, scale_factor.gpu_data)
            mf.add_scalar(1.0, scale_factor.gpu_data)
            mf.axpby(1.0, mean, f, mean_sum.gpu_data)
            mf.axpby(self.layer.variance_correction(m), variance, f, variance_sum.gpu_data)
        inv_std = self.inv_std.get(C)
        _kernels.get("bn_inv_std", x.dtype).launch(C, C, variance, self.eps, inv_std)
        mf.channel_affine(y, C, S, scale=inv_std)
        memory.copy(self.x_norm.get(n), y)
        if self.scale_bias:
            scale, bias = (b.gpu_data_readonly() for b in self.layer.blobs[3:])
            mf.channel_affine(y, C, S, scale=scale, bias=bias)

    def backward(self, top, propagate_down, bottom):
        N, C, S = self._dims(bottom[0])
        n = bottom[0].count()
        dy = top[0].gpu_diff_readonly()
        if self.scale_bias:
            dy = self._affine_backward(dy, N, C, S)
        if not propagate_down[0]:
            return
        dx = bottom[0].gpu_diff
        inv_std = self.inv_std.get(C)
        if self.use_global_stats:
            mf.channel_affine(dy, C, S, scale=inv_std, out=dx)
            return
        x_norm = self.x_norm.get(n)
        sum_dy = memory.empty(C, dy.dtype)
        sum_dy_y = memory.empty(C, dy.dtype)
        mf.channel_reduce(dy, N, C, S, sum_dy)
        mf.channel_reduce(dy, N, C, S, sum_dy_y, b=x_norm)
        _kernels.get("bn_backward", dy.dtype).launch(n, n, C, S, dy, x_norm, sum_dy, sum_dy_y, 1.0 / (N * S), inv_std,
                                                     dx)

    def _affine_backward(self, dy, N, C, S):
        """The learned scale's and bias's gradients; returns the gradient at the normalised values."""
        scale, bias = self.layer.blobs[3:]
        if self.layer.param_gradient_wanted(3):
            mf.channel_reduce(dy, N, C, S, scale.gpu_diff, b=self.x_norm.get(dy.size), beta=1.0)
        if self.layer.param_gradient_wanted(4):
            mf.channel_reduce(dy, N, C, S, bias.gpu_diff, beta=1.0)
        g = memory.empty(dy.size, dy.dtype)
        mf.channel_affine(dy, C, S, scale=scale.gpu_data_readonly(), out=g)
        return g
