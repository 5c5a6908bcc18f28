"""The GPU half of LRN across channels (lrn.cu); WITHIN_CHANNEL has no kernel (make_gpu gives None)."""
from nvcaffe_py.backends.cuda import kernels, memory
from nvcaffe_py.backends.cuda import math_functions as mf
from nvcaffe_py.backends.cuda.gpu_half import DeviceBuffer, GPUHalf

_kernels = kernels.Source(__file__, "lrn.cu")


def _shape(bottom):
    return bottom[0].shape[1], bottom[0].count(2), bottom[0].count()


class LRNGPU(GPUHalf):
    def __init__(self, *, size, alpha, beta, k, dtype):
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k
        self.scale = DeviceBuffer(dtype)  # k + alpha / size * (window sum of x^2), which backward reuses

    def forward(self, bottom, top):
        C, S, n = _shape(bottom)
        x = bottom[0].gpu_data_readonly()
        squares = memory.empty(n, x.dtype)
        mf.multiply(x, x, squares)
        _kernels.get("lrn_forward", x.dtype).launch(n, n, x, squares, C, S, self.size, self.alpha / self.size, self.k,
                                                    -self.beta, self.scale.get(n), top[0].gpu_data)

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        C, S, n = _shape(bottom)
        x, dy = bottom[0].gpu_data_readonly(), top[0].gpu_diff_readonly()
        scale = self.scale.get(n)
        ratio = memory.empty(n, x.dtype)
        _kernels.get("lrn_ratio", x.dtype).launch(n, n, x, scale, dy, -self.beta, ratio)
        _kernels.get("lrn_backward", x.dtype).launch(n, n, x, scale, ratio, dy, C, S, self.size, -self.beta,
                                                     2.0 * self.alpha * self.beta / self.size, bottom[0].gpu_diff)
