"""ONNX translations of the losses of loss.py, and what the class-label losses and Accuracy share:
labels truncated to int64 with their ignore_label mask, sums over every axis, and Caffe's
normalizations (VALID counts the positions whose label counts, at least 1)."""
import numpy as np

from nvcaffe_py.onnx_translation import onnx_translation
from nvcaffe_py.proto import caffe_pb2

from .loss import BATCH_SIZE, FULL, LOG_THRESHOLD, NONE, VALID


def total(g, value, ndim):
    """The sum of every element, as a scalar."""
    return g.reduce("ReduceSum", value, list(range(ndim)), keepdims=False)


def int64_labels(g, labels, shape, ignore_label):
    """(labels as int64 of `shape`, the mask of those that count or None, the labels with the
    ignored ones set to 0 so that they can still index)."""
    labels = g.cast_int64(g.reshape(labels, shape, "label_shape"))
    if ignore_label is None:
        return labels, None, labels
    valid = g.op("Not", g.op("Equal", labels, g.ints([ignore_label], "ignore_label")))
    return labels, valid, g.op("Where", valid, labels, g.ints([0], "zero_label"))


def counted(g, value, valid):
    """value where the label counts, 0 elsewhere."""
    return value if valid is None else g.op("Where", valid, value, g.constant(0, "zero"))


def normalized(g, loss_sum, mode, outer, inner, valid, ndim):
    """loss_sum divided as Caffe's `normalization` says."""
    if mode == VALID and valid is not None:
        count = total(g, g.cast_float(valid), ndim)
        return g.op("Div", loss_sum, g.op("Max", count, g.constant(1, "one")))
    divisor = {FULL: outer * inner, VALID: outer * inner, BATCH_SIZE: outer, NONE: 1}[mode]
    return g.op("Mul", loss_sum, g.constant(1 / max(1, divisor), "normalizer"))


def _per_item(g, value, num):
    return g.reshape(value, (num, -1), "item_shape")


@onnx_translation("EuclideanLoss")
def euclidean(layer, g):
    """sum((a - b)^2) / (2 N)"""
    shape = g.bottom_shapes[0]
    difference = g.op("Sub", g.bottoms[0], g.reshape(g.bottoms[1], shape, "b_shape"))
    squares = total(g, g.op("Mul", difference, difference), len(shape))
    return [g.op("Mul", squares, g.constant(0.5 / shape[0], "half_over_num"))]


@onnx_translation("SigmoidCrossEntropyLoss")
def sigmoid_cross_entropy(layer, g):
    """max(x, 0) - x t + log(1 + exp(-|x|)) over the counted targets, normalized."""
    x, shape = g.bottoms[0], g.bottom_shapes[0]
    target = g.reshape(g.bottoms[1], shape, "target_shape")
    valid = None
    if layer.ignore is not None:
        valid = g.op("Not", g.op("Equal", g.cast_int64(target), g.ints([layer.ignore], "ignore_label")))
    loss = g.op("Add", g.op("Sub", g.op("Relu", x), g.op("Mul", x, target)),
                g.op("Softplus", g.op("Neg", g.op("Abs", x))))
    loss_sum = total(g, counted(g, loss, valid), len(shape))
    return [normalized(g, loss_sum, layer.normalization, shape[0], int(np.prod(shape[1:])), valid, len(shape))]


def _one_hot(g, labels, classes):
    """(N, classes) booleans: True at each item's label; labels are (N, 1) int64."""
    return g.op("Equal", labels, g.ints(np.arange(classes), "classes"))


@onnx_translation("HingeLoss")
def hinge(layer, g):
    """sum max(0, 1 - t x) (or its square, L2), t = +1 for the true class and -1 for the others, / N"""
    num = g.bottom_shapes[0][0]
    scores = _per_item(g, g.bottoms[0], num)
    classes = int(np.prod(g.bottom_shapes[0][1:]))
    labels, _, _ = int64_labels(g, g.bottoms[1], (num, 1), None)
    sign = g.op("Sub", g.constant(1, "one"), g.op("Mul", g.constant(2, "two"), g.cast_float(_one_hot(g, labels, classes))))
    margins = g.op("Relu", g.op("Add", g.constant(1, "one"), g.op("Mul", sign, scores)))
    if layer.layer_param.hinge_loss_param.norm == caffe_pb2.HingeLossParameter.L2:
        margins = g.op("Mul", margins, margins)
    return [g.op("Mul", total(g, margins, 2), g.constant(1 / num, "over_num"))]


@onnx_translation("MultinomialLogisticLoss")
def multinomial_logistic(layer, g):
    """-sum log max(p[label], 1e-20) / N"""
    num = g.bottom_shapes[0][0]
    labels, _, _ = int64_labels(g, g.bottoms[1], (num, 1), None)
    prob = g.op("GatherElements", _per_item(g, g.bottoms[0], num), labels, axis=1)
    log_prob = g.op("Log", g.op("Max", prob, g.constant(LOG_THRESHOLD, "threshold")))
    return [g.op("Mul", total(g, log_prob, 2), g.constant(-1 / num, "minus_over_num"))]


@onnx_translation("ContrastiveLoss")
def contrastive(layer, g):
    """sum over pairs of y d^2 + (1 - y) max(margin - d, 0)^2 (legacy: max(margin - d^2, 0)) / (2 N)"""
    p = layer.layer_param.contrastive_loss_param
    num = g.bottom_shapes[0][0]
    difference = g.op("Sub", _per_item(g, g.bottoms[0], num), _per_item(g, g.bottoms[1], num))
    distance_sq = g.reduce("ReduceSum", g.op("Mul", difference, difference), [1], keepdims=False)
    similar, _, _ = int64_labels(g, g.bottoms[2], (num,), None)
    similar = g.op("Not", g.op("Equal", similar, g.ints([0], "zero_label")))
    gap = g.op("Sub", g.constant(p.margin, "margin"), distance_sq if p.legacy_version else g.op("Sqrt", distance_sq))
    dissimilar = g.op("Relu", gap)
    if not p.legacy_version:
        dissimilar = g.op("Mul", dissimilar, dissimilar)
    per_pair = g.op("Where", similar, distance_sq, dissimilar)
    return [g.op("Mul", total(g, per_pair, 1), g.constant(0.5 / num, "half_over_num"))]
