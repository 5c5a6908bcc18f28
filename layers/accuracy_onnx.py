"""ONNX translation of ArgMax (TopK); Accuracy, a test-time metric against labels, is refused."""
import numpy as np

from nvcaffe_py.onnx_translation import onnx_translation

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
    raise g.refuse("a test-time metric against labels; export the deploy net")
