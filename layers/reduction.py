"""Reduction: SUM, ASUM (sum of |x|), SUMSQ or MEAN over all axes from `axis` on, times `coeff`;
the top keeps the axes before `axis` (axis 0: a scalar)."""
import numpy as np

from nvcaffe_py.conformance import Case
from nvcaffe_py.layer import Layer
from nvcaffe_py.proto import caffe_pb2
from nvcaffe_py.registry import register_layer

_R = caffe_pb2.ReductionParameter
# operation -> (reduction of each (num, dim) row, derivative of an element's term; None: 1)
OPERATIONS = {
    _R.SUM: (lambda x: x.sum(axis=1), None),
    _R.MEAN: (lambda x: x.sum(axis=1), None),  # the 1/dim goes into the coefficient
    _R.ASUM: (lambda x: np.abs(x).sum(axis=1), np.sign),
    _R.SUMSQ: (lambda x: np.einsum("ij,ij->i", x, x), lambda x: 2 * x),
}


@register_layer("Reduction")
class ReductionLayer(Layer):
    exact_num_bottom = 1
    exact_num_top = 1
    cases = [
        Case("reduction_param { operation: SUM }", [(2, 3, 4)]),
        Case("reduction_param { operation: SUM axis: 1 coeff: -0.5 }", [(2, 3, 4)]),
        Case("reduction_param { operation: ASUM axis: 1 coeff: 2 }", [(2, 3, 4)], kink=0, kink_range=1e-3),
        Case("reduction_param { operation: SUMSQ axis: -1 }", [(2, 3, 4)]),
        Case("reduction_param { operation: MEAN axis: 2 coeff: 3 }", [(2, 3, 4, 2)]),
        Case("reduction_param { operation: MEAN }", [(6,)]),
    ]

    def setup(self, bottom, top):
        op = self.layer_param.reduction_param.operation
        if op not in OPERATIONS:
            raise self.error(f"unknown reduction operation {op}")
        self.reduce, self.derivative = OPERATIONS[op]

    def reshape(self, bottom, top):
        p = self.layer_param.reduction_param
        shape = bottom[0].shape
        axis = self.canonical_axis(bottom[0], p.axis)
        self.num = int(np.prod(shape[:axis], dtype=np.int64))
        self.dim = int(np.prod(shape[axis:], dtype=np.int64))
        self.coeff = p.coeff / self.dim if p.operation == _R.MEAN else p.coeff
        top[0].reshape(shape[:axis])

    def forward_cpu(self, bottom, top):
        rows = bottom[0].data_readonly().reshape(self.num, self.dim)
        top[0].data[...] = (self.coeff * self.reduce(rows)).reshape(top[0].shape)

    def backward_cpu(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        grad = self.coeff * top[0].diff_readonly().reshape(self.num, 1)
        if self.derivative is not None:
            grad = grad * self.derivative(bottom[0].data_readonly().reshape(self.num, self.dim))
        bottom[0].diff.reshape(self.num, self.dim)[...] = grad
