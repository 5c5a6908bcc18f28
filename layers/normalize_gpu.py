"""The GPU half of Normalize (normalize.cu), step for step as normalize.py: the norms (kept for
backward), the scaled output, the exact gradient and the scale's."""
import numpy as np

from nvcaffe_py.backends.cuda import kernels, memory
from nvcaffe_py.backends.cuda import math_functions as mf
from nvcaffe_py.backends.cuda.gpu_half import DeviceBuffer, GPUHalf

_kernels = kernels.Source(__file__, "normalize.cu")


class NormalizeGPU(GPUHalf):
    def __init__(self, *, layer, channels, across_spatial, channel_shared, eps):
        self.layer = layer  # its blobs[0]: the scale
        self.channels, self.across, self.shared, self.eps = channels, int(across_spatial), int(channel_shared), eps
        self.norm = DeviceBuffer(layer.dtype)

    def _dims(self, blob):
        """(N, C, S, number of norms)."""
        N, S = blob.shape[0], blob.count(2)
        return N, self.channels, S, N if self.across else N * S

    def _group_sums(self, groups, C, S, a, b, take_sqrt, out):
        blocks = min(groups, kernels.grid_blocks(groups * kernels.BLOCK))
        _kernels.get("normalize_group_sums", out.dtype)((blocks, 1, 1), (kernels.BLOCK, 1, 1), groups, C, S,
                                                        self.across, a, b, self.eps, take_sqrt, out)

    def forward(self, bottom, top):
        N, C, S, groups = self._dims(bottom[0])
        x = bottom[0].gpu_data_readonly()
        norm = self.norm.get(groups)
        self._group_sums(groups, C, S, x, None, 1, norm)
        n = x.size
        _kernels.get("normalize_forward", x.dtype).launch(n, n, C, S, self.across, self.shared, x, norm,
                                                          self.layer.blobs[0].gpu_data_readonly(), top[0].gpu_data)

    def backward(self, top, propagate_down, bottom):
        N, C, S, groups = self._dims(bottom[0])
        x, dy, norm = bottom[0].gpu_data_readonly(), top[0].gpu_diff_readonly(), self.norm.get(groups)
        scale = self.layer.blobs[0]
        n = x.size
        if self.layer.param_gradient_wanted(0):
            products = memory.empty(n, x.dtype)
            _kernels.get("normalize_scale_terms", x.dtype).launch(n, n, C, S, self.across, x, norm, dy, products)
            if self.shared:
                total = memory.empty(1, np.float64)
                mf.total_into(products, total)
                mf.add_device_scalar(total, scale.gpu_diff)
            else:
                mf.channel_reduce(products, N, C, S, scale.gpu_diff, beta=1.0)
        if propagate_down[0]:
            dx = bottom[0].gpu_diff
            _kernels.get("normalize_scaled_diff", x.dtype).launch(n, n, C, S, self.shared, dy,
                                                                  scale.gpu_data_readonly(), dx)
            dots = memory.empty(groups, x.dtype)
            self._group_sums(groups, C, S, x, dx, 0, dots)
            _kernels.get("normalize_backward", x.dtype).launch(n, n, C, S, self.across, x, norm, dots, dx)
