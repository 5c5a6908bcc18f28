"""The GPU half of Dropout (dropout.cu): in TRAIN each value is kept when its Philox draw exceeds
ratio * 2^32 (so with probability 1 - ratio) and scaled by 1 / (1 - ratio); the draws stay on the
device as the mask for backward. TEST is the identity."""
import numpy as np

from nvcaffe_py.backends.cuda import kernels, memory, rng
from nvcaffe_py.backends.cuda.gpu_half import DeviceBuffer, GPUHalf

_kernels = kernels.Source(__file__, "dropout.cu")


class DropoutGPU(GPUHalf):
    def __init__(self, *, ratio, scale, train):
        self.threshold = min(int(ratio * 2.0 ** 32), 2 ** 32 - 1)
        self.scale, self.train = scale, train
        self.mask = DeviceBuffer(np.uint32)  # TRAIN: the last forward's draws

    def forward(self, bottom, top):
        x, y = bottom[0].gpu_data_readonly(), top[0].gpu_data
        n = x.size
        if not self.train:
            memory.copy(y, x)
            return
        seed, stream = rng.next_stream()
        _kernels.get("dropout_forward", x.dtype).launch((n + 3) // 4, n, x, seed, stream, self.threshold, self.scale,
                                                        self.mask.get(n), y)

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        dy, dx = top[0].gpu_diff_readonly(), bottom[0].gpu_diff
        n = dy.size
        if not self.train:
            memory.copy(dx, dy)
            return
        _kernels.get("dropout_backward", dx.dtype).launch(n, n, dy, self.mask.get(n), self.threshold, self.scale, dx)
