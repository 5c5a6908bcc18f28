"""ONNX translations of ArgMax (TopK) and Accuracy."""
import numpy as np

from nvcaffe_py.onnx_translation import onnx_translation

from .loss_onnx import int64_labels, total

INT64_MIN = -2 ** 63


@onnx_translation("ArgMax")
def argmax(layer, g):
    shape = g.bottom_shapes[0]
    if layer.has_axis:
        scores, axis, size = g.bottoms[0], layer.axis, shape[layer.axis]
    else:  # over each item's flattened entries
        scores, axis, size = g.op("Flatten", g.bottoms[0], axis=1), 1, int(np.prod(shape[1:]))
    # Caffe breaks ties toward the larger index, TopK toward the smaller: TopK of the reversed scores.
    reversed_scores = g.op("Slice", scores, g.ints([-1], "start"), g.ints([INT64_MIN], "end"), g.ints([axis], "axis"),
                           g.ints([-1], "step"))
    values, reversed_index = g.op("TopK", reversed_scores, g.ints([layer.top_k], "k"), outputs=2, axis=axis)
    index = g.cast_float(g.op("Sub", g.ints([size - 1], "last"), reversed_index))
    if layer.has_axis:
        return [values if layer.out_max_val else index]
    # (N, top_k) each; with out_max_val the indices, then the values, as (N, 2, top_k, 1...).
    joined = g.op("Concat", index, values, axis=1) if layer.out_max_val else index
    return [g.reshape(joined, g.top_shapes[0])]


@onnx_translation("Accuracy")
def accuracy(layer, g):
    """The fraction of counted positions where fewer than top_k classes score at least as high as
    the true one (a tie counts against it, as Caffe); per class, over the positions of that class."""
    shape = (layer.outer_num, 1, layer.inner_num)
    scores = g.reshape(g.bottoms[0], (layer.outer_num, layer.num_classes, layer.inner_num), "class_view")
    labels, valid, safe_labels = int64_labels(g, g.bottoms[1], shape, layer.ignore)
    true_score = g.op("GatherElements", scores, safe_labels, axis=1)
    at_least = g.reduce("ReduceSum", g.cast_float(g.op("GreaterOrEqual", scores, true_score)), [1], keepdims=True)
    correct = g.op("Less", at_least, g.constant(layer.top_k + 1, "top_k_and_itself"))
    if valid is not None:
        correct = g.op("And", correct, valid)
    count = g.constant(np.prod(shape), "count") if valid is None else total(g, g.cast_float(valid), 3)
    one = g.constant(1, "one")
    tops = [g.op("Div", total(g, g.cast_float(correct), 3), g.op("Max", count, one))]
    if len(g.top_shapes) > 1:
        of_class = g.op("Equal", labels, g.ints(np.arange(layer.num_classes).reshape(1, -1, 1), "classes"))
        if valid is not None:
            of_class = g.op("And", of_class, valid)
        totals = g.reduce("ReduceSum", g.cast_float(of_class), [0, 2], keepdims=False)
        hits = g.reduce("ReduceSum", g.cast_float(g.op("And", of_class, correct)), [0, 2], keepdims=False)
        tops.append(g.op("Div", hits, g.op("Max", totals, one)))
    return tops
