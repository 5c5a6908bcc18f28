"""ONNX translation of SSD's DetectionOutput in standard ONNX ops (no custom domain):

1. decode: the offsets against the priors (PriorBox's constant), per code type, variances applied
   unless encoded in the target, clipped to [0, 1] with OpenCV's `clip`;
2. per image and class other than the background, the nms top_k best-scoring boxes (TopK; all
   where top_k is not set), then NonMaxSuppression on each (image, class) as a batch of its own,
   with Caffe's strict score threshold and IoU threshold; its output comes ordered by image, class
   and descending score, which is Caffe's order of the rows;
3. keep_top_k per image: the best keep_top_k rows by score (TopK), put back in that order;
4. rows (image, label, score, xmin, ymin, xmax, ymax) as (1, 1, D, 7), D known when the model runs
   (a symbolic dimension `detections`); where nothing is detected, one row (image, -1, ...) per
   image, as the layer gives.

Adaptive NMS (eta < 1) has no ONNX counterpart and is refused. NonMaxSuppression measures a box by
its corners whichever way round they are; Caffe gives a box with xmax < xmin no area, which only
CORNER-coded offsets can produce."""
import numpy as np

from nvcaffe_py.onnx_graph import TENSOR_INT64
from nvcaffe_py.onnx_translation import onnx_translation
from nvcaffe_py.proto import caffe_pb2

CodeType = caffe_pb2.PriorBoxParameter.CodeType


def _columns(g, value, first, last, what):
    """value[..., first:last] (the last axis)."""
    return g.op("Slice", value, g.ints([first], f"{what}_start"), g.ints([last], f"{what}_end"), g.ints([-1], "last_axis"))


def _decode(layer, g, loc, prior, num, priors, loc_classes):
    """(num, loc_classes, priors, 4) boxes."""
    prior = g.reshape(prior, (2, priors, 4), "prior_rows")
    boxes = g.op("Gather", prior, g.ints(0, "boxes_row"), axis=0)  # (P, 4)
    variances = g.op("Gather", prior, g.ints(1, "variances_row"), axis=0)
    offsets = g.op("Transpose", g.reshape(loc, (num, priors, loc_classes, 4), "offsets"), perm=[0, 2, 1, 3])
    if not layer.variance_encoded:
        offsets = g.op("Mul", offsets, variances)
    if layer.code_type == CodeType.Value("CORNER"):
        return g.op("Add", boxes, offsets)
    low, high = _columns(g, boxes, 0, 2, "low"), _columns(g, boxes, 2, 4, "high")
    size = g.op("Sub", high, low)  # (P, 2): width, height
    if layer.code_type == CodeType.Value("CORNER_SIZE"):
        return g.op("Add", boxes, g.op("Mul", offsets, g.op("Concat", size, size, axis=1)))
    center = g.op("Div", g.op("Add", low, high), g.constant(2, "two"))
    middle = g.op("Add", g.op("Mul", _columns(g, offsets, 0, 2, "shift"), size), center)
    half = g.op("Div", g.op("Mul", g.op("Exp", _columns(g, offsets, 2, 4, "log_size")), size), g.constant(2, "two"))
    return g.op("Concat", g.op("Sub", middle, half), g.op("Add", middle, half), axis=-1)


@onnx_translation("DetectionOutput")
def detection_output(layer, g):
    if layer.eta < 1:
        raise g.refuse(f"adaptive NMS (eta {layer.eta:g} < 1) has no ONNX counterpart")
    num = g.bottom_shapes[0][0]
    classes = [c for c in range(layer.num_classes) if c != layer.background]
    candidates, best, k = _candidates(layer, g, classes)
    nms_inputs = [candidates, g.op("Unsqueeze", best, g.ints([1], "class_axis")), g.ints([k], "max_boxes"),
                  g.constant([layer.nms_threshold], "iou_threshold")]
    if np.isfinite(layer.confidence_threshold):
        nms_inputs.append(g.constant([layer.confidence_threshold], "score_threshold"))
    selected = g.op("NonMaxSuppression", *nms_inputs)  # (D, 3): batch, 0, candidate
    where = g.op("Gather", selected, g.ints([0, 2], "batch_and_candidate"), axis=1)
    batch = g.op("Gather", selected, g.ints(0, "batch_column"), axis=1)
    image = g.op("Gather", g.constant(np.repeat(np.arange(num), len(classes)), "image_of_batch"), batch)
    label = g.op("Gather", g.constant(np.tile(classes, num), "label_of_batch"), batch)
    score = g.op("GatherND", best, where)
    rows = g.op("Concat", *(g.reshape(v, (-1, 1), f"{what}_column") for v, what in
                            ((image, "image"), (label, "label"), (score, "score"))),
                g.op("GatherND", candidates, where), axis=1)
    if layer.keep_top_k > -1:
        rows = g.op("Concat", *(_keep_top_k(layer, g, rows, score, image, n, num) for n in range(num)), axis=0)
    g.declare_top_shape(0, (1, 1, "detections", 7))
    return [g.reshape(_or_none_found(g, rows, num), (1, 1, -1, 7))]


def _candidates(layer, g, classes):
    """Each (image, class) as a batch of its own for NonMaxSuppression: its nms top_k best boxes
    (num * classes, k, 4), their scores (num * classes, k), best first, and k."""
    loc, conf, prior = g.bottoms[:3]
    num, priors = g.bottom_shapes[0][0], g.bottom_shapes[2][-1] // 4
    loc_classes = 1 if layer.share_location else layer.num_classes
    boxes = _decode(layer, g, loc, prior, num, priors, loc_classes)
    if layer.clip:
        boxes = g.op("Clip", boxes, g.constant(0, "zero"), g.constant(1, "one"))
    if layer.share_location:
        boxes = g.op("Expand", boxes, g.ints([num, len(classes), priors, 4], "per_class"))
    else:
        boxes = g.op("Gather", boxes, g.ints(classes, "classes"), axis=1)
    scores = g.op("Transpose", g.reshape(conf, (num, priors, layer.num_classes), "scores"), perm=[0, 2, 1])
    scores = g.op("Gather", scores, g.ints(classes, "classes"), axis=1)  # (N, K, P)
    k = priors if layer.top_k < 0 else min(layer.top_k, priors)
    best, index = g.op("TopK", scores, g.ints([k], "top_k"), axis=2, outputs=2)
    index = g.op("Expand", g.op("Unsqueeze", index, g.ints([3], "box_axis")), g.ints([num, len(classes), k, 4], "box"))
    batches = num * len(classes)
    candidates = g.reshape(g.op("GatherElements", boxes, index, axis=2), (batches, k, 4), "candidates")
    return candidates, g.reshape(best, (batches, k), "best"), k


def _or_none_found(g, rows, num):
    """rows, or where there are none one row (image, -1, ...) per image, as the layer gives."""
    none = np.full((num, 7), -1.0)
    none[:, 0] = np.arange(num)
    count = _length(g, rows)
    empty = g.op("Cast", g.op("Equal", count, g.ints([0], "zero")), to=TENSOR_INT64)
    end = g.op("Add", count, g.op("Mul", empty, g.ints([num], "images")))
    rows = g.op("Concat", rows, g.constant(none, "none_found"), axis=0)
    return g.op("Slice", rows, g.ints([0], "zero"), end, g.ints([0], "row_axis"))


def _length(g, value):
    """The length of value's first axis, as a 1-D int64 of one element."""
    if g.opset >= 15:
        return g.op("Shape", value, start=0, end=1)
    return g.op("Slice", g.op("Shape", value), g.ints([0], "zero"), g.ints([1], "one"))


def _keep_top_k(layer, g, rows, score, image, n, num):
    """Image n's rows, at most keep_top_k of them (the best by score), in the order they came."""
    if num > 1:
        mine = g.reshape(g.op("NonZero", g.op("Equal", image, g.constant([n], "image_index"))), (-1,), "mine")
        rows, score = g.op("Gather", rows, mine, axis=0), g.op("Gather", score, mine)
    k = g.op("Min", _length(g, score), g.ints([layer.keep_top_k], "keep_top_k"))
    _, best = g.op("TopK", score, k, outputs=2)
    in_order, _ = g.op("TopK", best, k, largest=0, outputs=2)
    return g.op("Gather", rows, in_order, axis=0)
