"""ONNX translation of BatchReindex: a Gather along axis 0 by Caffe's float indices, cast to int64."""
from nvcaffe_py.onnx_translation import onnx_translation


@onnx_translation("BatchReindex")
def batch_reindex(layer, g):
    return [g.op("Gather", g.bottoms[0], g.cast_int64(g.bottoms[1]), axis=0)]
