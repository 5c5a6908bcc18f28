"""ONNX translation of Filter: refused. ONNX's Compress would select the items, but how many pass
depends on the selector's values, and the exported graph's shapes are static (the net's)."""
from nvcaffe_py.onnx_translation import onnx_translation


@onnx_translation("Filter")
def filter_layer(layer, g):
    raise g.refuse("how many items it passes depends on the selector's values; the exported shapes are static")
