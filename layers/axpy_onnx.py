"""ONNX translation of SENet's Axpy: a * x + y, a (N, C) or (N, C, 1, 1) broadcast over x's planes."""
from nvcaffe_py.onnx_translation import onnx_translation


@onnx_translation("Axpy")
def axpy(layer, g):
    a, x, y = g.bottoms
    shape = g.bottom_shapes[1]
    per_plane = g.reshape(a, shape[:2] + (1,) * (len(shape) - 2), "per_plane")
    return [g.op("Add", g.op("Mul", per_plane, x), y)]
