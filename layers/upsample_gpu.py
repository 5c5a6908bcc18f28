"""The GPU half of SegNet's Upsample (upsample.cu): a scatter by the pooling mask, and its gather."""
from nvcaffe_py.backends.cuda import kernels, memory
from nvcaffe_py.backends.cuda.gpu_half import GPUHalf

_kernels = kernels.Source(__file__, "upsample.cu")


class UpsampleGPU(GPUHalf):
    def _planes(self, bottom, top):
        return bottom[0].count(2), top[0].count(2)

    def forward(self, bottom, top):
        y, n = top[0].gpu_data, bottom[0].count()
        memory.fill_zero(y)
        _kernels.get("upsample_scatter", y.dtype).launch(n, n, bottom[0].gpu_data_readonly(), bottom[1].gpu_data_readonly(),
                                                         *self._planes(bottom, top), y)

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            dx, n = bottom[0].gpu_diff, bottom[0].count()
            _kernels.get("upsample_gather", dx.dtype).launch(n, n, top[0].gpu_diff_readonly(),
                                                             bottom[1].gpu_data_readonly(), *self._planes(bottom, top), dx)
