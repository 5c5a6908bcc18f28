"""ONNX translation of Python layers: refused, as they run the user's Python code. (A layer type of
one's own exports through a translation registered for it: docs/adding-a-layer.md.)"""
from nvcaffe_py.onnx_translation import onnx_translation


@onnx_translation("Python")
def python_layer(layer, g):
    raise g.refuse(f"it runs Python code ({layer.layer_param.python_param.module}."
                   f"{layer.layer_param.python_param.layer}), which a graph cannot")
