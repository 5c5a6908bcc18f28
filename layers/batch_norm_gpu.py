"""The GPU half of BatchNorm (batch_norm.cu + math_functions' channel sums), step for step as
batch_norm.py: batch or stored statistics, running averages, and the normalised output kept for
backward."""
import numpy as np

from nvcaffe_py.backends.cuda import kernels, memory
from nvcaffe_py.backends.cuda import math_functions as mf

_kernels = kernels.Source(__file__, "batch_norm.cu")


def _dims(layer, blob):
    """(outer, channels, pixels) of the (N, C, spatial) view."""
    return blob.shape[0], layer.channels, blob.count() // (blob.shape[0] * layer.channels)


def _buffer(layer, name, size, dtype):
    array = getattr(layer, name, None)
    if array is None or array.size != size:
        array = memory.empty(size, dtype)
        setattr(layer, name, array)
    return array


def forward(layer, bottom, top):
    N, C, S = _dims(layer, bottom[0])
    n, m = bottom[0].count(), N * S
    x, y = bottom[0].gpu_data_readonly(), top[0].gpu_data
    mean = memory.empty(C, x.dtype)
    variance = memory.empty(C, x.dtype)
    if layer.use_global_stats:
        factor = float(layer.blobs[2].data[0])
        factor = 0.0 if factor == 0 else 1.0 / factor
        mf.scale(factor, layer.blobs[0].gpu_data_readonly(), mean)
        mf.scale(factor, layer.blobs[1].gpu_data_readonly(), variance)
    else:
        mf.channel_reduce(x, N, C, S, mean)
        mf.scale(1.0 / m, mean)
    _kernels.get("bn_center", x.dtype).launch(n, n, C, S, x, mean, y)  # elementwise: fine in place
    if not layer.use_global_stats:
        mf.channel_reduce(y, N, C, S, variance, b=y)
        mf.scale(1.0 / m, variance)
        f = layer.moving_average_fraction
        layer.blobs[2].data[...] = layer.blobs[2].data * f + 1
        mf.axpby(1.0, mean, f, layer.blobs[0].gpu_data)
        mf.axpby(m / (m - 1) if m > 1 else 1.0, variance, f, layer.blobs[1].gpu_data)
    inv_std = _buffer(layer, "_gpu_inv_std", C, x.dtype)
    _kernels.get("bn_inv_std", x.dtype).launch(C, C, variance, layer.eps, inv_std)
    mf.channel_affine(y, C, S, scale=inv_std)
    # Backward needs the normalised values; a later in-place layer (usually Scale) overwrites top.
    memory.copy(_buffer(layer, "_gpu_x_norm", n, x.dtype), y)


def backward(layer, top, propagate_down, bottom):
    if not propagate_down[0]:
        return
    N, C, S = _dims(layer, bottom[0])
    n = bottom[0].count()
    dy, dx = top[0].gpu_diff_readonly(), bottom[0].gpu_diff
    if layer.use_global_stats:
        mf.channel_affine(dy, C, S, scale=layer._gpu_inv_std, out=dx)
        return
    sum_dy = memory.empty(C, dy.dtype)
    sum_dy_y = memory.empty(C, dy.dtype)
    mf.channel_reduce(dy, N, C, S, sum_dy)
    mf.channel_reduce(dy, N, C, S, sum_dy_y, b=layer._gpu_x_norm)
    _kernels.get("bn_backward", dy.dtype).launch(n, n, C, S, dy, layer._gpu_x_norm, sum_dy, sum_dy_y, 1.0 / (N * S),
                                                 layer._gpu_inv_std, dx)
