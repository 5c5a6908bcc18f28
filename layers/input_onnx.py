"""ONNX translation of Input: its tops are the graph's inputs, of the net's shapes."""
from nvcaffe_py.onnx_translation import onnx_translation


@onnx_translation("Input")
def input_layer(layer, g):
    return [g.input(j) for j in range(len(g.top_shapes))]
