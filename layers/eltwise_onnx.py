"""ONNX translation of Eltwise: Mul, Sum (each input times its coefficient) or Max."""
from nvcaffe_py.onnx_translation import onnx_translation

from .eltwise import MAX, PROD
from .neuron_onnx import scaled


@onnx_translation("Eltwise")
def eltwise(layer, g):
    if layer.op == PROD:
        product = g.bottoms[0]
        for x in g.bottoms[1:]:
            product = g.op("Mul", product, x)
        return [product]
    if layer.op == MAX:
        return [g.op("Max", *g.bottoms)]
    return [g.op("Sum", *[scaled(g, x, c) for x, c in zip(g.bottoms, layer.coeffs)])]
