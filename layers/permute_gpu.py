"""The GPU half of Permute and ShuffleChannel (permute.cu): a gather of the bottom's elements in
the order of a transposed view, and back for the gradient."""
import numpy as np

from nvcaffe_py.backends.cuda import kernels
from nvcaffe_py.backends.cuda.gpu_half import GPUHalf

_kernels = kernels.Source(__file__, "permute.cu")
MAX_AXES = 6


def _gather(x, shape, order, y):
    """y = x (of `shape`) with its axes in `order`, as np.transpose."""
    strides = np.cumprod((1,) + tuple(shape[:0:-1]))[::-1]
    pad = MAX_AXES - len(shape)
    dims = (1,) * pad + tuple(shape[k] for k in order)
    steps = (0,) * pad + tuple(int(strides[k]) for k in order)
    n = y.size
    _kernels.get("permute_gather", y.dtype).launch(n, n, x, *dims, *steps, y)


class PermuteGPU(GPUHalf):
    """top = bottom viewed as `view(bottom shape)` with its axes in `order`."""

    def __init__(self, *, view, order):
        self.view, self.order = view, tuple(order)
        self.inverse = tuple(np.argsort(order))

    def forward(self, bottom, top):
        _gather(bottom[0].gpu_data_readonly(), self.view(bottom[0].shape), self.order, top[0].gpu_data)

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            shape = tuple(self.view(bottom[0].shape)[k] for k in self.order)
            _gather(top[0].gpu_diff_readonly(), shape, self.inverse, bottom[0].gpu_diff)
