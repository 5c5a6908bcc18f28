"""The GPU halves of ROIPooling and PSROIPooling (roi_pooling.cu): one thread per output bin
forward; backward one thread per bottom element gathering from the bins that read it."""
import numpy as np

from nvcaffe_py.backends.cuda import kernels
from nvcaffe_py.backends.cuda.gpu_half import DeviceBuffer, GPUHalf

_kernels = kernels.Source(__file__, "roi_pooling.cu")


class ROIMaxPoolingGPU(GPUHalf):
    def __init__(self, *, pooled, spatial_scale):
        self.pooled, self.scale = pooled, spatial_scale
        self.argmax = DeviceBuffer(np.int32)

    def forward(self, bottom, top):
        _, C, H, W = bottom[0].shape
        y, n = top[0].gpu_data, top[0].count()
        _kernels.get("roi_max_forward", y.dtype).launch(n, n, bottom[0].gpu_data_readonly(), bottom[1].gpu_data_readonly(),
                                                        self.scale, C, H, W, *self.pooled, y, self.argmax.get(n))

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            _, C, H, W = bottom[0].shape
            dx, n = bottom[0].gpu_diff, bottom[0].count()
            _kernels.get("roi_max_backward", dx.dtype).launch(
                n, n, top[0].gpu_diff_readonly(), self.argmax.get(top[0].count()), bottom[1].gpu_data_readonly(),
                bottom[1].shape[0], self.scale, C, H, W, *self.pooled, dx)


class PSROIPoolingGPU(GPUHalf):
    def __init__(self, *, output_dim, group_size, spatial_scale):
        self.output_dim, self.group, self.scale = output_dim, group_size, spatial_scale

    def forward(self, bottom, top):
        _, C, H, W = bottom[0].shape
        y, n = top[0].gpu_data, top[0].count()
        _kernels.get("psroi_forward", y.dtype).launch(n, n, bottom[0].gpu_data_readonly(), bottom[1].gpu_data_readonly(),
                                                      self.scale, C, H, W, self.output_dim, self.group, y)

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            _, C, H, W = bottom[0].shape
            dx, n = bottom[0].gpu_diff, bottom[0].count()
            _kernels.get("psroi_backward", dx.dtype).launch(
                n, n, top[0].gpu_diff_readonly(), bottom[1].gpu_data_readonly(), bottom[1].shape[0], self.scale, C, H,
                W, self.output_dim, self.group, dx)
