"""The GPU half of Split: the tops share the bottom's data, so forward has nothing to do; backward
sums the tops' diffs into the bottom's on the device."""
from nvcaffe_py.backends.cuda import math_functions as mf
from nvcaffe_py.backends.cuda import memory
from nvcaffe_py.backends.cuda.gpu_half import GPUHalf


class SplitGPU(GPUHalf):
    def forward(self, bottom, top):
        pass

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        diff = bottom[0].gpu_diff
        memory.copy(diff, top[0].gpu_diff_readonly())
        for t in top[1:]:
            mf.axpy(1.0, t.gpu_diff_readonly(), diff)
