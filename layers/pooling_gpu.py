"""The GPU half of Pooling (pooling.cu): MAX, its argmax kept on the device (or written to the
optional second top, Caffe's mask), and AVE; global pooling is the whole-image window."""
import numpy as np

from nvcaffe_py.backends.cuda import kernels
from nvcaffe_py.backends.cuda.gpu_half import DeviceBuffer, GPUHalf

_kernels = kernels.Source(__file__, "pooling.cu")


class PoolingGPU(GPUHalf):
    def __init__(self, *, max_pool, global_pooling, kernel, stride, pad):
        self.max_pool, self.global_pooling = max_pool, global_pooling
        self.kernel, self.stride, self.pad = kernel, stride, pad
        self.mask = DeviceBuffer(np.int32)  # MAX's argmax, when there is no mask top

    def _shape_args(self, bottom, top):
        _, channels, height, width = bottom[0].shape
        kernel = (height, width) if self.global_pooling else self.kernel
        return (channels, height, width, *top[0].shape[2:], *kernel, *self.stride, *self.pad)

    def forward(self, bottom, top):
        x, y = bottom[0].gpu_data_readonly(), top[0].gpu_data
        n, args = top[0].count(), self._shape_args(bottom, top)
        if self.max_pool:
            mask, top_mask = (None, top[1].gpu_data) if len(top) > 1 else (self.mask.get(n), None)
            _kernels.get("max_pool_forward", y.dtype).launch(n, n, x, *args, y, mask, top_mask)
        else:
            _kernels.get("ave_pool_forward", y.dtype).launch(n, n, x, *args, y)

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        dy, dx = top[0].gpu_diff_readonly(), bottom[0].gpu_diff
        n, args = bottom[0].count(), self._shape_args(bottom, top)
        if self.max_pool:
            mask, top_mask = (None, top[1].gpu_data_readonly()) if len(top) > 1 else (self.mask.get(top[0].count()), None)
            _kernels.get("max_pool_backward", dx.dtype).launch(n, n, dy, mask, top_mask, *args, dx)
        else:
            _kernels.get("ave_pool_backward", dx.dtype).launch(n, n, dy, *args, dx)
