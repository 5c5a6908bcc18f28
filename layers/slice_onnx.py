"""ONNX translation of Slice: Split with Caffe's part sizes; a single part is shared, as in Caffe."""
import numpy as np

from nvcaffe_py.onnx_translation import onnx_translation


@onnx_translation("Slice")
def slice_layer(layer, g):
    if len(g.top_shapes) == 1:
        return [g.bottoms[0]]
    sizes = np.array([shape[layer.axis] for shape in g.top_shapes])
    return g.op("Split", g.bottoms[0], g.ints(sizes, "sizes"), outputs=len(sizes), axis=layer.axis)
