"""Vector and per-channel primitives on device arrays (math_functions.cu), as Caffe's
caffe_gpu_* functions: the building blocks of layers' and solvers' GPU code.

Arrays are GPUArrays; `n` defaults to the size of the array written. Reductions return Python
floats (summed in double on the device, in a fixed order); `total_into` leaves its sum on the
device, for code that must not wait for it.
"""
import numpy as np

from . import kernels, memory

_kernels = kernels.Source(__file__, "math_functions.cu")
_SUM, _ASUM, _SUMSQ, _DOT = 0, 1, 2, 3


def set_value(y, alpha, n=None):
    n = y.size if n is None else n
    _kernels.get("set_value", y.dtype).launch(n, n, alpha, y)


def axpy(alpha, x, y, n=None):
    """y += alpha * x"""
    n = y.size if n is None else n
    _kernels.get("axpy", y.dtype).launch(n, n, alpha, x, y)


def axpby(alpha, x, beta, y, n=None):
    """y = alpha * x + beta * y (y is not read when beta is 0)"""
    n = y.size if n is None else n
    _kernels.get("axpby", y.dtype).launch(n, n, alpha, x, beta, y)


def scale(alpha, x, y=None, n=None):
    """y = alpha * x (in place when y is None)"""
    axpby(alpha, x, 0.0, x if y is None else y, n)


def add_scalar(alpha, y, n=None):
    n = y.size if n is None else n
    _kernels.get("add_scalar", y.dtype).launch(n, n, alpha, y)


def add_device_scalar(alpha, y, n=None):
    """y += alpha[0], a float64 device scalar (total_into's), never read on the host."""
    n = y.size if n is None else n
    _kernels.get("add_device_scalar", y.dtype).launch(n, n, alpha, y)


def multiply(a, b, y, n=None):
    n = y.size if n is None else n
    _kernels.get("multiply", y.dtype).launch(n, n, a, b, y)


def divide(a, b, y, n=None):
    n = y.size if n is None else n
    _kernels.get("divide", y.dtype).launch(n, n, a, b, y)


def copy(dst, src, n=None):
    memory.copy(dst, src, n)


def _reduce_into(op, x, y, n, out):
    """out[0] (a float64 device array) = the reduction of n elements of x (and y)."""
    n = x.size if n is None else int(n)
    if n == 0:
        memory.fill_zero(out)
        return
    blocks = kernels.grid_blocks(n)
    kernels.check_32bit_loop("reduce_partial", n, blocks)
    partial = memory.empty(blocks, np.float64)
    _kernels.get("reduce_partial", x.dtype)((blocks, 1, 1), (kernels.BLOCK, 1, 1), n, op, x, y, partial)
    _kernels.get("reduce_final", x.dtype)((1, 1, 1), (kernels.BLOCK, 1, 1), blocks, partial, out)


def _reduce(op, x, y=None, n=None) -> float:
    total = memory.empty(1, np.float64)
    _reduce_into(op, x, y, n, total)
    return float(memory.to_host(total)[0])


def total(x, n=None) -> float:
    return _reduce(_SUM, x, None, n)


def total_into(x, out, n=None):
    """out[0] (float64, on the device) = the sum of x, as total() computes it."""
    _reduce_into(_SUM, x, None, n, out)


def asum(x, n=None) -> float:
    return _reduce(_ASUM, x, None, n)


def sumsq(x, n=None) -> float:
    return _reduce(_SUMSQ, x, None, n)


def dot(x, y, n=None) -> float:
    return _reduce(_DOT, x, y, n)


def channel_affine(x, channels, inner, scale=None, bias=None, out=None):
    """out[o, c, i] = x[o, c, i] * scale[c] + bias[c] (either may be None; in place by default)."""
    out = x if out is None else out
    _kernels.get("channel_affine", out.dtype).launch(x.size, x.size, channels, inner, x, scale, bias, out)


def channel_reduce(a, outer, channels, inner, out, b=None, beta=0.0):
    """out[c] = beta * out[c] + sum over o, i of a[o, c, i] (times b[o, c, i] when given)."""
    if channels == 0:
        return
    blocks = min(channels, kernels.grid_blocks(channels * kernels.BLOCK))
    _kernels.get("channel_reduce", out.dtype)((blocks, 1, 1), (kernels.BLOCK, 1, 1), outer, channels, inner,
                                              a, b, beta, out)


def swap_axes01(x, A, B, inner, y, bias=None):
    """y[b, a, i] = x[a, b, i] (+ bias[a]): x is A x B x inner, y is B x A x inner."""
    n = A * B * inner
    _kernels.get("swap_axes01", y.dtype).launch(n, n, A, B, inner, x, bias, y)
