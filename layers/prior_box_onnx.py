"""ONNX translation of SSD's PriorBox: its top depends only on the static shapes of the feature map
and the image, so it is the constant the layer computes for them."""
from nvcaffe_py.onnx_translation import onnx_translation


@onnx_translation("PriorBox")
def prior_box(layer, g):
    return [g.constant(layer.priors_for(g.bottom_shapes[0], g.bottom_shapes[-1]), "priors")]
