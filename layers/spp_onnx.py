"""ONNX translation of SPP: each pyramid level pooled as Pooling is, flattened and concatenated."""
from nvcaffe_py.onnx_translation import onnx_translation

from .pooling_onnx import pool_2d


@onnx_translation("SPP")
def spp(layer, g):
    levels = [pool_2d(g, g.bottoms[0], level) for level in layer.levels]
    if len(levels) == 1:
        return levels
    return [g.op("Concat", *[g.op("Flatten", level, axis=1) for level in levels], axis=1)]
