"""The GPU halves of Softmax and SoftmaxWithLoss (softmax.cu): one warp per position of the axes
other than the softmax axis. The loss is summed and normalised on the device and never read back
by the layer (the solver reads it on display iterations); the probabilities and the normaliser
stay on the device for backward."""
import numpy as np

from nvcaffe_py.backends.cuda import kernels, memory
from nvcaffe_py.backends.cuda import math_functions as mf
from nvcaffe_py.backends.cuda.gpu_half import DeviceBuffer, GPUHalf
from nvcaffe_py.errors import CaffeError

_kernels = kernels.Source(__file__, "softmax.cu")
WARP = 32


def split_at_axis(blob, axis):
    """(outer, channels, inner): the blob as an array whose middle axis is `axis` (may be negative)."""
    axis = blob.canonical_axis_index(axis)
    return blob.count(0, axis), blob.shape[axis], blob.count(axis + 1)


def softmax(x, y, outer, channels, inner):
    positions = outer * inner
    _kernels.get("softmax_forward", y.dtype).launch(positions * WARP, positions, channels, inner, x, y)


class SoftmaxGPU(GPUHalf):
    def __init__(self, *, axis):
        self.axis = axis  # softmax_param.axis

    def forward(self, bottom, top):
        softmax(bottom[0].gpu_data_readonly(), top[0].gpu_data, *split_at_axis(bottom[0], self.axis))

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        outer, channels, inner = split_at_axis(bottom[0], self.axis)
        positions = outer * inner
        dx = bottom[0].gpu_diff
        _kernels.get("softmax_backward", dx.dtype).launch(positions * WARP, positions, channels, inner,
                                                          top[0].gpu_diff_readonly(), top[0].gpu_data_readonly(), dx)


class SoftmaxWithLossGPU(GPUHalf):
    """-log softmax(x)[label], summed over the counted positions and divided by
    `normalizer(outer, inner, valid_count)` (counts_valid: the normaliser is the valid count's,
    computed on the device); a second top gets the probabilities."""

    def __init__(self, *, axis, ignore_label, normalizer, counts_valid, dtype):
        self.axis = axis  # softmax_param.axis
        self.ignore_args = (0, 0) if ignore_label is None else (1, ignore_label)  # has_ignore, ignore_label
        self.normalizer, self.counts_valid = normalizer, counts_valid
        self.prob = DeviceBuffer(dtype)  # the last forward's probabilities
        self.sums = DeviceBuffer(np.float64)  # the loss's sum, the valid count, 1 / the normaliser

    def forward(self, bottom, top):
        outer, classes, inner = split_at_axis(bottom[0], self.axis)
        positions = outer * inner
        x, labels = bottom[0].gpu_data_readonly(), bottom[1].gpu_data_readonly()
        prob = self.prob.get(x.size)
        softmax(x, prob, outer, classes, inner)
        losses = memory.empty(positions, x.dtype)
        valid = memory.empty(positions, x.dtype)
        _kernels.get("softmax_loss_forward", x.dtype).launch(positions * WARP, positions, classes, inner, x, labels,
                                                             *self.ignore_args, losses, valid)
        loss_sum, valid_sum, scale = (memory.region(self.sums.get(3), k, 1) for k in range(3))
        mf.total_into(losses, loss_sum)
        mf.total_into(valid, valid_sum)
        fixed = 0.0 if self.counts_valid else self.normalizer(outer, inner, 0)
        _kernels.get("softmax_loss_normalize", x.dtype)((1, 1, 1), (1, 1, 1), loss_sum, valid_sum, fixed,
                                                        top[0].gpu_data, scale)
        if len(top) > 1:
            memory.copy(top[1].gpu_data, prob)

    def backward(self, top, propagate_down, bottom):
        if propagate_down[1]:
            raise CaffeError("SoftmaxWithLoss cannot backpropagate to bottom[1] (a label or fixed input)")
        if not propagate_down[0]:
            return
        outer, classes, inner = split_at_axis(bottom[0], self.axis)
        positions = outer * inner
        dx = bottom[0].gpu_diff
        memory.copy(dx, self.prob.get(dx.size))
        _kernels.get("softmax_loss_backward", dx.dtype).launch(positions, positions, classes, inner,
                                                               bottom[1].gpu_data_readonly(), *self.ignore_args, dx)
        scale = memory.region(self.sums.get(3), 2, 1)
        _kernels.get("softmax_loss_scale", dx.dtype).launch(dx.size, dx.size, top[0].gpu_diff_readonly(), scale, dx)
