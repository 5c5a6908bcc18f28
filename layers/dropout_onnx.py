"""ONNX translation of Dropout: the identity in the TEST phase, where Caffe's Dropout is one."""
from nvcaffe_py.onnx_translation import onnx_translation


@onnx_translation("Dropout")
def dropout(layer, g):
    if layer.train:
        raise g.refuse("TRAIN-phase dropout is random; export the TEST phase")
    return [g.bottoms[0]]
