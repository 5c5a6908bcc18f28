"""ONNX translations of SoftmaxWithLoss and InfogainLoss: -sum T log softmax(x) over the class axis,
T one-hot at the label (or the label's row of H), ignored labels not counted, normalized as Caffe.
The optional second top is the probabilities."""
from nvcaffe_py.onnx_translation import onnx_translation

from .loss_onnx import counted, int64_labels, normalized, total


def _log_probabilities(layer, g):
    """log softmax of the scores seen as (outer, classes, inner)."""
    scores = g.reshape(g.bottoms[0], (layer.outer_num, layer.num_classes, layer.inner_num), "class_view")
    return g.op("LogSoftmax", scores, axis=1)


def _with_probabilities(layer, g, loss, log_prob):
    if len(g.top_shapes) == 1:
        return [loss]
    return [loss, g.reshape(g.op("Exp", log_prob), g.bottom_shapes[0], "probabilities_shape")]


@onnx_translation("SoftmaxWithLoss")
def softmax_with_loss(layer, g):
    log_prob = _log_probabilities(layer, g)
    _, valid, labels = int64_labels(g, g.bottoms[1], (layer.outer_num, 1, layer.inner_num), layer.ignore)
    picked = counted(g, g.op("GatherElements", log_prob, labels, axis=1), valid)
    loss = normalized(g, g.op("Neg", total(g, picked, 3)), layer.normalization, layer.outer_num, layer.inner_num,
                      valid, 3)
    return _with_probabilities(layer, g, loss, log_prob)


@onnx_translation("InfogainLoss")
def infogain(layer, g):
    classes = layer.num_classes
    log_prob = _log_probabilities(layer, g)
    _, valid, labels = int64_labels(g, g.bottoms[1], (layer.outer_num, layer.inner_num), layer.ignore)
    matrix = (g.reshape(g.bottoms[2], (classes, classes), "H_shape") if len(g.bottoms) > 2
              else g.constant(layer.infogain.reshape(classes, classes), "H"))
    rows = g.op("Transpose", g.op("Gather", matrix, labels, axis=0), perm=[0, 2, 1])  # H[label] as (outer, classes, inner)
    if valid is not None:
        rows = counted(g, rows, g.op("Unsqueeze", valid, g.ints([1], "class_axis")))
    loss_sum = g.op("Neg", total(g, g.op("Mul", rows, log_prob), 3))
    loss = normalized(g, loss_sum, layer.normalization, layer.outer_num, layer.inner_num, valid, 2)
    return _with_probabilities(layer, g, loss, log_prob)
