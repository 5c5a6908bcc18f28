"""Eltwise: element-wise PROD, SUM (one coefficient per input) or MAX of two or more same-shape
inputs. The GPU halves, one per operation, are in eltwise_gpu.py."""
import numpy as np

from nvcaffe_py.conformance import Case
from nvcaffe_py.layer import Layer
from nvcaffe_py.proto import caffe_pb2
from nvcaffe_py.registry import register_layer

from .eltwise_gpu import EltwiseMaxGPU, EltwiseProdGPU, EltwiseSumGPU
from .neuron import rectify

PROD, SUM, MAX = (caffe_pb2.EltwiseParameter.PROD, caffe_pb2.EltwiseParameter.SUM,
                  caffe_pb2.EltwiseParameter.MAX)


@register_layer("Eltwise")
class EltwiseLayer(Layer):
    min_bottom = 2
    exact_num_top = 1
    cases = [
        Case("eltwise_param { operation: PROD }", [(2, 3, 4), (2, 3, 4), (2, 3, 4)]),
        Case("eltwise_param { operation: PROD stable_prod_grad: false }", [(2, 3, 4), (2, 3, 4), (2, 3, 4)]),
        Case("eltwise_param { operation: PROD stable_prod_grad: false }", [(3, 5), (3, 5)]),
        Case("eltwise_param { operation: SUM coeff: 0.5 coeff: -2 coeff: 1.5 }", [(2, 3, 4), (2, 3, 4), (2, 3, 4)]),
        Case("eltwise_param { operation: SUM }", [(2, 3, 4, 2), (2, 3, 4, 2)]),
        Case("eltwise_param { operation: MAX }", [(2, 3, 4), (2, 3, 4), (2, 3, 4)]),
        Case("eltwise_param { operation: MAX }", [(4, 5), (4, 5)]),
    ]

    def setup(self, bottom, top):
        p = self.layer_param.eltwise_param
        if len(p.coeff) not in (0, len(bottom)):
            raise self.error(f"takes one coeff per bottom: {len(p.coeff)} coeff for {len(bottom)} bottoms")
        if p.operation == PROD and len(p.coeff):
            raise self.error("coeff applies to SUM only, not PROD")
        self.op = p.operation
        self.coeffs = list(p.coeff) or [1.0] * len(bottom)
        self.stable_prod_grad = p.stable_prod_grad
        self.max_idx = None

    def reshape(self, bottom, top):
        shape = bottom[0].shape
        for i, b in enumerate(bottom[1:], 1):
            if b.shape != shape:
                raise self.error(f"inputs must have one shape: bottom[0] is {shape}, bottom[{i}] is {b.shape}")
        top[0].reshape(shape)
        if self.op == MAX and (self.max_idx is None or self.max_idx.shape != shape):
            self.max_idx = np.zeros(shape, np.int32)  # which input gave each maximum

    def forward_cpu(self, bottom, top):
        self.forward_rectified(bottom, top, None)

    def forward_rectified(self, bottom, top, negative_slope):
        """The CPU forward, then (unless `negative_slope` is None) a ReLU over the top: how the
        deploy-time plan runs an Eltwise and the in-place ReLU after it (a residual block's end)."""
        out = top[0].data
        inputs = [b.data_readonly() for b in bottom]
        if self.op == PROD:
            np.multiply(inputs[0], inputs[1], out=out)
            for x in inputs[2:]:
                out *= x
        elif self.op == SUM:
            # A coefficient of 1 multiplies exactly: plain adds then, with no temporary.
            if self.coeffs[0] == 1 and self.coeffs[1] == 1:
                np.add(inputs[0], inputs[1], out=out)
            else:
                np.multiply(inputs[0], self.coeffs[0], out=out)
                out += self.coeffs[1] * inputs[1]
            for x, c in zip(inputs[2:], self.coeffs[2:]):
                if c == 1:
                    out += x
                else:
                    out += c * x
        else:
            # Caffe's tie rule: bottom[1] wins a tie with bottom[0]; later inputs must be strictly larger.
            np.less_equal(inputs[0], inputs[1], out=self.max_idx, casting="unsafe")
            np.maximum(inputs[0], inputs[1], out=out)
            for k, x in enumerate(inputs[2:], 2):
                self.max_idx[x > out] = k
                np.maximum(out, x, out=out)
        if negative_slope is not None:
            rectify(out, negative_slope, out)

    def backward_cpu(self, top, propagate_down, bottom):
        top_diff = top[0].diff_readonly()
        for i, b in enumerate(bottom):
            if not propagate_down[i]:
                continue
            diff = b.diff
            if self.op == PROD:
                if self.stable_prod_grad:  # product of the other inputs: no division by a zero input
                    diff[...] = top_diff
                    for j, other in enumerate(bottom):
                        if j != i:
                            diff *= other.data_readonly()
                else:
                    np.divide(top[0].data_readonly(), b.data_readonly(), out=diff)
                    diff *= top_diff
            elif self.op == SUM:
                np.multiply(top_diff, self.coeffs[i], out=diff)
            else:
                diff[...] = np.where(self.max_idx == i, top_diff, 0)

    def make_gpu(self):
        if self.op == PROD:
            return EltwiseProdGPU(stable_gradient=self.stable_prod_grad)
        if self.op == SUM:
            return EltwiseSumGPU(coeffs=self.coeffs)
        return EltwiseMaxGPU()
