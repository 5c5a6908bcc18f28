"""The GPU half of Pooling (pooling.cu): MAX, its argmax kept on the device (or written to the
optional second top, Caffe's mask), and AVE; global pooling is the whole-image window.
STOCHASTIC has no kernel and runs its CPU code."""
import numpy as np

from nvcaffe_py.backends.cuda import kernels, memory

from .pooling import AVE, MAX

_kernels = kernels.Source(__file__, "pooling.cu")


def _shape_args(layer, bottom, top):
    _, channels, height, width = bottom[0].shape
    return (channels, height, width, *top[0].shape[2:], *layer.pool.kernel, *layer.stride, *layer.pad)


def forward(layer, bottom, top):
    if layer.method not in (MAX, AVE):
        return layer.forward_cpu(bottom, top)
    x, y = bottom[0].gpu_data_readonly(), top[0].gpu_data
    n, args = top[0].count(), _shape_args(layer, bottom, top)
    if layer.method == MAX:
        if len(top) > 1:
            mask, top_mask = None, top[1].gpu_data
        else:
            if getattr(layer, "_gpu_mask", None) is None or layer._gpu_mask.size < n:
                layer._gpu_mask = memory.empty(n, np.int32)
            mask, top_mask = layer._gpu_mask, None
        _kernels.get("max_pool_forward", y.dtype).launch(n, n, x, *args, y, mask, top_mask)
    else:
        _kernels.get("ave_pool_forward", y.dtype).launch(n, n, x, *args, y)


def backward(layer, top, propagate_down, bottom):
    if layer.method not in (MAX, AVE):
        return layer.backward_cpu(top, propagate_down, bottom)
    if not propagate_down[0]:
        return
    dy, dx = top[0].gpu_diff_readonly(), bottom[0].gpu_diff
    n, args = bottom[0].count(), _shape_args(layer, bottom, top)
    if layer.method == MAX:
        mask, top_mask = (None, top[1].gpu_data_readonly()) if len(top) > 1 else (layer._gpu_mask, None)
        _kernels.get("max_pool_backward", dx.dtype).launch(n, n, dy, mask, top_mask, *args, dx)
    else:
        _kernels.get("ave_pool_backward", dx.dtype).launch(n, n, dy, *args, dx)
