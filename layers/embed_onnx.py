"""ONNX translation of Embed: a Gather of the weight rows by Caffe's float indices, cast to int64."""
from nvcaffe_py.onnx_translation import onnx_translation


@onnx_translation("Embed")
def embed(layer, g):
    rows = g.op("Gather", g.constant(layer.blobs[0].data_readonly(), "weight"), g.cast_int64(g.bottoms[0]), axis=0)
    if layer.bias_term:
        rows = g.op("Add", rows, g.constant(layer.blobs[1].data_readonly(), "bias"))
    return [rows]
