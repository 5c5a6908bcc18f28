"""The fork nets of models/ (deploy definitions written from the published architectures, no weights
shipped): MobileNet-SSD, OpenCV's res10 face detector, Ultra-Light RFB-320 and ShuffleNet v2.
`load` builds one, at a smaller input where asked, with weights that make it behave as a trained
net would: BatchNorm statistics near 0 and 1, and detectors whose scores pass their thresholds."""
import os

import numpy as np
from google.protobuf import text_format

import nvcaffe_py as caffe
from nvcaffe_py import formats

MODELS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "models")

# Each net's outputs, and the blobs inside it worth comparing on the way.
OUTPUTS = {
    "mobilenet_ssd": ["mbox_loc", "mbox_conf_flatten", "mbox_priorbox", "detection_out"],
    "res10_ssd_face": ["mbox_loc", "mbox_conf_flatten", "mbox_priorbox", "detection_out"],
    "rfb320_face": ["boxes", "scores"],
    "shufflenet_v2": ["pool5", "prob"],
}


def definition(model, size=None):
    """models/<model>/deploy.prototxt as a NetParameter, its input's height and width set to `size`
    (an (h, w) pair) where given."""
    param = formats.read_net_param(os.path.join(MODELS, model, "deploy.prototxt"))
    if size is not None:
        dims = param.layer[0].input_param.shape[0].dim
        dims[2:] = size
    return param


def load(model, size=None, seed=0):
    """(net, prototxt text): the net built in TEST with sensible random weights."""
    param = definition(model, size)
    net = caffe.Net(param, caffe.TEST)
    prepare(net, seed)
    return net, text_format.MessageToString(param)


def prepare(net, seed=0):
    """BatchNorm statistics as after training (means near 0, variances near 1, scale factor 1)."""
    rng = np.random.default_rng(seed)
    for layer in net.layers:
        if layer.type == "BatchNorm":
            channels = layer.blobs[0].shape[0]
            layer.blobs[0].data[...] = rng.normal(0, 0.1, channels)
            layer.blobs[1].data[...] = rng.uniform(0.5, 1.5, channels)
            layer.blobs[2].data[...] = 1


def image(net, seed=3):
    return np.random.default_rng(seed).uniform(-1, 1, net.blobs[net.inputs[0]].shape)
