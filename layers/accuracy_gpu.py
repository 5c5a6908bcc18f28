"""The GPU half of Accuracy (accuracy.cu): per-position hits summed and divided on the device (the
host reads the accuracy only when it shows it). Per-class accuracy (a second top) has no kernel:
the layer runs its CPU code then."""
import numpy as np

from nvcaffe_py.backends.cuda import kernels, memory
from nvcaffe_py.backends.cuda import math_functions as mf
from nvcaffe_py.backends.cuda.gpu_half import GPUHalf

_kernels = kernels.Source(__file__, "accuracy.cu")


class AccuracyGPU(GPUHalf):
    def __init__(self, *, axis, top_k, ignore_label):
        self.axis, self.top_k = axis, top_k  # accuracy_param.axis, may be negative
        self.ignore_args = (0, 0) if ignore_label is None else (1, ignore_label)  # has_ignore, ignore_label

    def forward(self, bottom, top):
        axis = bottom[0].canonical_axis_index(self.axis)
        outer, classes, inner = bottom[0].count(0, axis), bottom[0].shape[axis], bottom[0].count(axis + 1)
        positions = outer * inner
        x = bottom[0].gpu_data_readonly()
        correct = memory.empty(positions, x.dtype)
        valid = memory.empty(positions, x.dtype)
        _kernels.get("accuracy_forward", x.dtype).launch(positions, positions, classes, inner, x,
                                                         bottom[1].gpu_data_readonly(), self.top_k, *self.ignore_args,
                                                         correct, valid)
        hits, count = memory.empty(1, np.float64), memory.empty(1, np.float64)
        mf.total_into(correct, hits)
        mf.total_into(valid, count)
        _kernels.get("accuracy_ratio", x.dtype)((1, 1, 1), (1, 1, 1), hits, count, top[0].gpu_data)
