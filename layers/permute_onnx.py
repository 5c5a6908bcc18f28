"""ONNX translations of Permute (Transpose) and ShuffleChannel (Reshape to (N, group, C / group,
H * W), Transpose of the two channel axes, Reshape back)."""
from nvcaffe_py.onnx_translation import onnx_translation


@onnx_translation("Permute")
def permute(layer, g):
    return [g.op("Transpose", g.bottoms[0], perm=list(layer.order))]


@onnx_translation("ShuffleChannel")
def shuffle_channel(layer, g):
    view = g.reshape(g.bottoms[0], layer.view(g.bottom_shapes[0]), "groups")
    return [g.reshape(g.op("Transpose", view, perm=list(layer.order)), g.top_shapes[0])]
