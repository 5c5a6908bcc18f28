"""The GPU halves of Eltwise, one per operation (the layer's make_gpu picks): PROD and SUM from
math_functions' primitives, MAX with eltwise.cu's argmax bookkeeping, as eltwise.py."""
import numpy as np

from nvcaffe_py.backends.cuda import kernels, memory
from nvcaffe_py.backends.cuda import math_functions as mf
from nvcaffe_py.backends.cuda.gpu_half import DeviceBuffer, GPUHalf

_kernels = kernels.Source(__file__, "eltwise.cu")


def _wanted(bottom, propagate_down):
    """(index, blob) of each input whose gradient backward computes."""
    return [(i, b) for i, (b, need) in enumerate(zip(bottom, propagate_down)) if need]


class EltwiseProdGPU(GPUHalf):
    def __init__(self, *, stable_gradient):
        self.stable_gradient = stable_gradient

    def forward(self, bottom, top):
        y = top[0].gpu_data
        mf.multiply(bottom[0].gpu_data_readonly(), bottom[1].gpu_data_readonly(), y)
        for b in bottom[2:]:
            mf.multiply(y, b.gpu_data_readonly(), y)

    def backward(self, top, propagate_down, bottom):
        dy = top[0].gpu_diff_readonly()
        for i, b in _wanted(bottom, propagate_down):
            dx = b.gpu_diff
            if self.stable_gradient:  # product of the other inputs: no division by a zero input
                memory.copy(dx, dy)
                for j, other in enumerate(bottom):
                    if j != i:
                        mf.multiply(dx, other.gpu_data_readonly(), dx)
            else:
                mf.divide(top[0].gpu_data_readonly(), b.gpu_data_readonly(), dx)
                mf.multiply(dx, dy, dx)


class EltwiseSumGPU(GPUHalf):
    def __init__(self, *, coeffs):
        self.coeffs = coeffs

    def forward(self, bottom, top):
        y = top[0].gpu_data
        mf.scale(self.coeffs[0], bottom[0].gpu_data_readonly(), y)
        for b, c in zip(bottom[1:], self.coeffs[1:]):
            mf.axpy(c, b.gpu_data_readonly(), y)

    def backward(self, top, propagate_down, bottom):
        dy = top[0].gpu_diff_readonly()
        for i, b in _wanted(bottom, propagate_down):
            mf.scale(self.coeffs[i], dy, b.gpu_diff)


class EltwiseMaxGPU(GPUHalf):
    def __init__(self):
        self.argmax = DeviceBuffer(np.int32)  # which input gave each maximum

    def forward(self, bottom, top):
        y = top[0].gpu_data
        n = y.size
        argmax = self.argmax.get(n)
        kernel = _kernels.get("eltwise_max_forward", y.dtype)
        kernel.launch(n, n, bottom[0].gpu_data_readonly(), bottom[1].gpu_data_readonly(), 0, y, argmax)
        for k, b in enumerate(bottom[2:], 1):
            kernel.launch(n, n, y, b.gpu_data_readonly(), k, y, argmax)

    def backward(self, top, propagate_down, bottom):
        dy = top[0].gpu_diff_readonly()
        n = dy.size
        for i, b in _wanted(bottom, propagate_down):
            dx = b.gpu_diff
            _kernels.get("eltwise_max_backward", dx.dtype).launch(n, n, dy, self.argmax.get(n), i, dx)
