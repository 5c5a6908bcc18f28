"""ONNX translation of Parameter: its blob as a constant."""
from nvcaffe_py.onnx_translation import onnx_translation


@onnx_translation("Parameter")
def parameter(layer, g):
    return [g.constant(layer.blobs[0].data_readonly(), "value")]
