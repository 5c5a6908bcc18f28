"""Eltwise: element-wise PROD, SUM (one coefficient per input) or MAX of two or more same-shape inputs."""
import numpy as np

from nvcaffe_py.layer import Layer
from nvcaffe_py.proto import caffe_pb2
from nvcaffe_py.registry import register_layer

PROD, SUM, MAX = (caffe_pb2.EltwiseParameter.PROD, caffe_pb2.EltwiseParameter.SUM,
                  caffe_pb2.EltwiseParameter.MAX)


@register_layer("Eltwise")
class EltwiseLayer(Layer):
    min_bottom = 2
    exact_num_top = 1

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
        out = top[0].data
        if self.op == PROD:
            np.multiply(bottom[0].data, bottom[1].data, out=out)
            for b in bottom[2:]:
                out *= b.data
        elif self.op == SUM:
            np.multiply(bottom[0].data, self.coeffs[0], out=out)
            for b, c in zip(bottom[1:], self.coeffs[1:]):
                out += c * b.data
        else:
            # Caffe's tie rule: bottom[1] wins a tie with bottom[0]; later inputs must be strictly larger.
            a, b = bottom[0].data, bottom[1].data
            np.less_equal(a, b, out=self.max_idx, casting="unsafe")
            np.maximum(a, b, out=out)
            for k, blob in enumerate(bottom[2:], 2):
                self.max_idx[blob.data > out] = k
                np.maximum(out, blob.data, out=out)

    def backward_cpu(self, top, propagate_down, bottom):
        top_diff = top[0].diff
        for i, b in enumerate(bottom):
            if not propagate_down[i]:
                continue
            diff = b.diff
            if self.op == PROD:
                if self.stable_prod_grad:  # product of the other inputs: no division by a zero input
                    diff[...] = top_diff
                    for j, other in enumerate(bottom):
                        if j != i:
                            diff *= other.data
                else:
                    np.divide(top[0].data, b.data, out=diff)
                    diff *= top_diff
            elif self.op == SUM:
                np.multiply(top_diff, self.coeffs[i], out=diff)
            else:
                diff[...] = np.where(self.max_idx == i, top_diff, 0)

    def forward_gpu(self, bottom, top):
        from . import eltwise_gpu

        eltwise_gpu.forward(self, bottom, top)

    def backward_gpu(self, top, propagate_down, bottom):
        from . import eltwise_gpu

        eltwise_gpu.backward(self, top, propagate_down, bottom)
