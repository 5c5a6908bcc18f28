"""The GPU half of InnerProduct: y = x W^T + b through our GEMM (W is N x K, or K x N with
`transpose`), gradients likewise; the bias gradient is a per-column sum."""
from nvcaffe_py.backends.cuda import math_functions as mf
from nvcaffe_py.backends.cuda.gpu_half import GPUHalf
from nvcaffe_py.backends.cuda.sgemm import gemm


class InnerProductGPU(GPUHalf):
    """The product of the bottom, read as (M, inputs) rows, and the layer's (num_output, inputs)
    weights (transposed: (inputs, num_output)); M is read from the blobs of each call."""

    def __init__(self, *, layer, inputs, num_output, bias_term, transpose):
        self.layer, self.inputs, self.num_output = layer, inputs, num_output
        self.bias_term, self.transpose = bias_term, transpose

    def forward(self, bottom, top):
        M, N, K = top[0].count() // self.num_output, self.num_output, self.inputs
        params, y = self.layer.blobs, top[0].gpu_data
        gemm(False, not self.transpose, M, N, K, 1.0, bottom[0].gpu_data_readonly(), params[0].gpu_data_readonly(),
             0.0, y)
        if self.bias_term:
            mf.channel_affine(y, N, 1, bias=params[1].gpu_data_readonly())

    def backward(self, top, propagate_down, bottom):
        M, N, K = top[0].count() // self.num_output, self.num_output, self.inputs
        params, dy = self.layer.blobs, top[0].gpu_diff_readonly()
        if self.layer.param_gradient_wanted(0):
            x = bottom[0].gpu_data_readonly()
            if self.transpose:  # W is K x N: dW += x^T dy
                gemm(True, False, K, N, M, 1.0, x, dy, 1.0, params[0].gpu_diff)
            else:  # W is N x K: dW += dy^T x
                gemm(True, False, N, K, M, 1.0, dy, x, 1.0, params[0].gpu_diff)
        if self.bias_term and self.layer.param_gradient_wanted(1):
            mf.channel_reduce(dy, M, N, 1, params[1].gpu_diff, beta=1.0)
        if propagate_down[0]:
            gemm(False, self.transpose, M, K, N, 1.0, dy, params[0].gpu_data_readonly(), 0.0, bottom[0].gpu_diff)
