"""ONNX translation of Concat; a single input is shared, not copied, as in Caffe."""
from nvcaffe_py.onnx_translation import onnx_translation


@onnx_translation("Concat")
def concat(layer, g):
    if len(g.bottoms) == 1:
        return [g.bottoms[0]]
    return [g.op("Concat", *g.bottoms, axis=layer.axis)]
