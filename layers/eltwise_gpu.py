"""The GPU half of Eltwise: PROD and SUM from math_functions' primitives, MAX with eltwise.cu's
argmax bookkeeping, as eltwise.py."""
import numpy as np

from nvcaffe_py.backends.cuda import kernels, memory
from nvcaffe_py.backends.cuda import math_functions as mf

from .eltwise import MAX, PROD, SUM

_kernels = kernels.Source(__file__, "eltwise.cu")


def forward(layer, bottom, top):
    y = top[0].gpu_data
    n = y.size
    if layer.op == PROD:
        mf.multiply(bottom[0].gpu_data_readonly(), bottom[1].gpu_data_readonly(), y)
        for b in bottom[2:]:
            mf.multiply(y, b.gpu_data_readonly(), y)
    elif layer.op == SUM:
        mf.scale(layer.coeffs[0], bottom[0].gpu_data_readonly(), y)
        for b, c in zip(bottom[1:], layer.coeffs[1:]):
            mf.axpy(c, b.gpu_data_readonly(), y)
    else:
        if getattr(layer, "_gpu_max_idx", None) is None or layer._gpu_max_idx.size != n:
            layer._gpu_max_idx = memory.empty(n, np.int32)
        kernel = _kernels.get("eltwise_max_forward", y.dtype)
        kernel.launch(n, n, bottom[0].gpu_data_readonly(), bottom[1].gpu_data_readonly(), 0, y, layer._gpu_max_idx)
        for k, b in enumerate(bottom[2:], 1):
            kernel.launch(n, n, y, b.gpu_data_readonly(), k, y, layer._gpu_max_idx)


def backward(layer, top, propagate_down, bottom):
    dy = top[0].gpu_diff_readonly()
    n = dy.size
    for i, b in enumerate(bottom):
        if not propagate_down[i]:
            continue
        dx = b.gpu_diff
        if layer.op == PROD:
            if layer.stable_prod_grad:  # product of the other inputs: no division by a zero input
                memory.copy(dx, dy)
                for j, other in enumerate(bottom):
                    if j != i:
                        mf.multiply(dx, other.gpu_data_readonly(), dx)
            else:
                mf.divide(top[0].gpu_data_readonly(), b.gpu_data_readonly(), dx)
                mf.multiply(dx, dy, dx)
        elif layer.op == SUM:
            mf.scale(layer.coeffs[i], dy, dx)
        elif layer.op == MAX:
            _kernels.get("eltwise_max_backward", dx.dtype).launch(n, n, dy, layer._gpu_max_idx, i, dx)
