"""The GPU halves of Concat and Slice (concat.cu): each part is copied to or from its slot along
the layer's axis of the whole, the whole seen as (outer, total, inner) and a part as
(outer, size, inner). A single part is shared, not copied: the layers' make_gpu gives ViewOnly."""
import numpy as np

from nvcaffe_py.backends.cuda import kernels
from nvcaffe_py.backends.cuda.gpu_half import GPUHalf

_kernels = kernels.Source(__file__, "concat.cu")


def _copy_parts(whole, shape, axis, parts, to_whole):
    """Copy every (device array, size along axis) part into (to_whole) or out of `whole`, a
    device array of `shape`; a part whose array is None is skipped."""
    outer, total = int(np.prod(shape[:axis], dtype=np.int64)), shape[axis]
    inner = int(np.prod(shape[axis + 1:], dtype=np.int64))
    offset = 0
    for array, size in parts:
        if array is not None:
            n = outer * size * inner
            src, dst = (array, whole) if to_whole else (whole, array)
            _kernels.get("concat_copy", whole.dtype).launch(n, n, src, int(to_whole), size, total, inner, offset, dst)
        offset += size


class ConcatGPU(GPUHalf):
    def __init__(self, *, layer):
        self.layer = layer  # its axis, which reshape sets

    def forward(self, bottom, top):
        axis = self.layer.axis
        parts = [(b.gpu_data_readonly(), b.shape[axis]) for b in bottom]
        _copy_parts(top[0].gpu_data, top[0].shape, axis, parts, to_whole=True)

    def backward(self, top, propagate_down, bottom):
        axis = self.layer.axis
        parts = [(b.gpu_diff if need else None, b.shape[axis]) for b, need in zip(bottom, propagate_down)]
        _copy_parts(top[0].gpu_diff_readonly(), top[0].shape, axis, parts, to_whole=False)


class SliceGPU(GPUHalf):
    def __init__(self, *, layer):
        self.layer = layer  # its axis, which reshape sets

    def forward(self, bottom, top):
        axis = self.layer.axis
        parts = [(t.gpu_data, t.shape[axis]) for t in top]
        _copy_parts(bottom[0].gpu_data_readonly(), bottom[0].shape, axis, parts, to_whole=False)

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            axis = self.layer.axis
            parts = [(t.gpu_diff_readonly(), t.shape[axis]) for t in top]
            _copy_parts(bottom[0].gpu_diff, bottom[0].shape, axis, parts, to_whole=True)
