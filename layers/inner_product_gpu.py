"""The GPU half of InnerProduct: y = x W^T + b through our GEMM (W is N x K, or K x N with
`transpose`), gradients likewise; the bias gradient is a per-column sum."""
from nvcaffe_py.backends.cuda import math_functions as mf
from nvcaffe_py.backends.cuda.sgemm import gemm


def forward(layer, bottom, top):
    M, N, K = layer.rows, layer.num_output, layer.inputs
    y = top[0].gpu_data
    gemm(False, not layer.transpose, M, N, K, 1.0, bottom[0].gpu_data_readonly(), layer.blobs[0].gpu_data_readonly(),
         0.0, y)
    if layer.bias_term:
        mf.channel_affine(y, N, 1, bias=layer.blobs[1].gpu_data_readonly())


def backward(layer, top, propagate_down, bottom):
    M, N, K = layer.rows, layer.num_output, layer.inputs
    dy = top[0].gpu_diff_readonly()
    if layer.param_propagate_down[0]:
        x = bottom[0].gpu_data_readonly()
        if layer.transpose:  # W is K x N: dW += x^T dy
            gemm(True, False, K, N, M, 1.0, x, dy, 1.0, layer.blobs[0].gpu_diff)
        else:  # W is N x K: dW += dy^T x
            gemm(True, False, N, K, M, 1.0, dy, x, 1.0, layer.blobs[0].gpu_diff)
    if layer.bias_term and layer.param_propagate_down[1]:
        mf.channel_reduce(dy, M, N, 1, layer.blobs[1].gpu_diff, beta=1.0)
    if propagate_down[0]:
        gemm(False, layer.transpose, M, K, N, 1.0, dy, layer.blobs[0].gpu_data_readonly(), 0.0, bottom[0].gpu_diff)
