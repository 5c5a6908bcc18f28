"""ONNX translation of SegNet's Upsample: each value scattered to the place its pooling mask names in
a plane of zeros (ScatterElements along the flattened plane; the mask cast to int64)."""
import numpy as np

from nvcaffe_py.onnx_translation import onnx_translation


@onnx_translation("Upsample")
def upsample(layer, g):
    values, mask = g.bottoms
    n, c, h, w = g.bottom_shapes[0]
    out = g.top_shapes[0]
    planes = g.constant(np.zeros((n, c, out[2] * out[3])), "zeros")
    places = g.cast_int64(g.reshape(mask, (n, c, h * w), "mask_planes"))
    scattered = g.op("ScatterElements", planes, places, g.reshape(values, (n, c, h * w), "value_planes"), axis=2)
    return [g.reshape(scattered, out)]
