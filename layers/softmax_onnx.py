"""ONNX translation of Softmax: ONNX's (opset 13 on) runs over one axis, as Caffe's."""
from nvcaffe_py.onnx_translation import onnx_translation


@onnx_translation("Softmax")
def softmax(layer, g):
    return [g.op("Softmax", g.bottoms[0], axis=layer.axis)]
