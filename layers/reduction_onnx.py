"""ONNX translation of Reduction: a reduction over every axis from `axis` on, times the coefficient
(MEAN is a sum whose coefficient holds the 1/count, as in the layer)."""
from nvcaffe_py.onnx_translation import onnx_translation
from nvcaffe_py.proto import caffe_pb2

from .neuron_onnx import scaled

_R = caffe_pb2.ReductionParameter
ONNX_REDUCTIONS = {_R.SUM: "ReduceSum", _R.MEAN: "ReduceSum", _R.ASUM: "ReduceL1", _R.SUMSQ: "ReduceSumSquare"}


@onnx_translation("Reduction")
def reduction(layer, g):
    ndim = len(g.bottom_shapes[0])
    axes = list(range(len(g.top_shapes[0]), ndim))
    reduced = g.reduce(ONNX_REDUCTIONS[layer.layer_param.reduction_param.operation], g.bottoms[0], axes,
                       keepdims=False)
    return [scaled(g, reduced, layer.coeff)]
