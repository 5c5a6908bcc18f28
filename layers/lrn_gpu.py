"""The GPU half of LRN across channels (lrn.cu). WITHIN_CHANNEL has no kernel and runs its CPU code."""
from nvcaffe_py.backends.cuda import kernels, memory
from nvcaffe_py.backends.cuda import math_functions as mf

_kernels = kernels.Source(__file__, "lrn.cu")


def _shape(bottom):
    return bottom[0].shape[1], bottom[0].count(2), bottom[0].count()


def forward(layer, bottom, top):
    if not layer.across:
        return layer.forward_cpu(bottom, top)
    C, S, n = _shape(bottom)
    x = bottom[0].gpu_data_readonly()
    if getattr(layer, "_gpu_scale", None) is None or layer._gpu_scale.size != n:
        layer._gpu_scale = memory.empty(n, x.dtype)
    squares = memory.empty(n, x.dtype)
    mf.multiply(x, x, squares)
    _kernels.get("lrn_forward", x.dtype).launch(n, n, x, squares, C, S, layer.size, layer.alpha / layer.size,
                                                layer.k, -layer.beta, layer._gpu_scale, top[0].gpu_data)


def backward(layer, top, propagate_down, bottom):
    if not layer.across:
        return layer.backward_cpu(top, propagate_down, bottom)
    if not propagate_down[0]:
        return
    C, S, n = _shape(bottom)
    x, dy = bottom[0].gpu_data_readonly(), top[0].gpu_diff_readonly()
    ratio = memory.empty(n, x.dtype)
    _kernels.get("lrn_ratio", x.dtype).launch(n, n, x, layer._gpu_scale, dy, -layer.beta, ratio)
    _kernels.get("lrn_backward", x.dtype).launch(n, n, x, layer._gpu_scale, ratio, dy, C, S, layer.size, -layer.beta,
                                                 2.0 * layer.alpha * layer.beta / layer.size, bottom[0].gpu_diff)
