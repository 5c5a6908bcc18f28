"""ONNX translation of Flatten and Reshape: a Reshape to the shape the layer worked out (its 0s
and -1 resolved, so the axis and num_axes rules need no counterpart)."""
from nvcaffe_py.onnx_translation import onnx_translation


@onnx_translation("Flatten", "Reshape")
def reshape(layer, g):
    return [g.reshape(g.bottoms[0], g.top_shapes[0])]
