"""The GPU half of Axpy: per-plane affine maps and reductions (math_functions), no kernel of its own."""
from nvcaffe_py.backends.cuda import math_functions as mf
from nvcaffe_py.backends.cuda import memory
from nvcaffe_py.backends.cuda.gpu_half import GPUHalf


class AxpyGPU(GPUHalf):
    @staticmethod
    def _planes(bottom):
        """(number of planes, elements per plane) of x."""
        return bottom[1].count(0, 2), bottom[1].count(2)

    def forward(self, bottom, top):
        planes, size = self._planes(bottom)
        y = top[0].gpu_data
        mf.channel_affine(bottom[1].gpu_data_readonly(), planes, size, scale=bottom[0].gpu_data_readonly(), out=y)
        mf.axpy(1.0, bottom[2].gpu_data_readonly(), y)

    def backward(self, top, propagate_down, bottom):
        planes, size = self._planes(bottom)
        dtop = top[0].gpu_diff_readonly()
        if propagate_down[0]:
            mf.channel_reduce(dtop, 1, planes, size, bottom[0].gpu_diff, b=bottom[1].gpu_data_readonly())
        if propagate_down[1]:
            mf.channel_affine(dtop, planes, size, scale=bottom[0].gpu_data_readonly(), out=bottom[1].gpu_diff)
        if propagate_down[2]:
            memory.copy(bottom[2].gpu_diff, dtop)
