"""Box arithmetic of SSD (weiliu89/caffe, src/caffe/util/bbox_util.cpp) on NumPy arrays: decoding
predicted offsets against prior boxes, box sizes and overlaps, greedy non-maximum suppression.
Boxes are rows (xmin, ymin, xmax, ymax) in normalized image coordinates."""
import numpy as np

from nvcaffe_py.proto import caffe_pb2

CodeType = caffe_pb2.PriorBoxParameter.CodeType


def box_sizes(boxes):
    """BBoxSize (normalized): width * height, 0 for a box with xmax < xmin or ymax < ymin."""
    w, h = boxes[..., 2] - boxes[..., 0], boxes[..., 3] - boxes[..., 1]
    return np.where((w < 0) | (h < 0), 0, w * h).astype(boxes.dtype)


def decode_boxes(priors, variances, offsets, code_type, variance_encoded_in_target):
    """DecodeBBox for every prior: priors and variances (P, 4), offsets (..., P, 4) -> boxes."""
    if not variance_encoded_in_target:
        offsets = offsets * variances
    if code_type == CodeType.Value("CORNER"):
        return priors + offsets
    width, height = priors[:, 2] - priors[:, 0], priors[:, 3] - priors[:, 1]
    if np.any(width <= 0) or np.any(height <= 0):
        raise ValueError("a prior box has no width or height")
    if code_type == CodeType.Value("CORNER_SIZE"):
        return priors + offsets * np.stack([width, height, width, height], axis=-1)
    center_x, center_y = (priors[:, 0] + priors[:, 2]) / 2, (priors[:, 1] + priors[:, 3]) / 2
    x = offsets[..., 0] * width + center_x
    y = offsets[..., 1] * height + center_y
    half_w, half_h = np.exp(offsets[..., 2]) * width / 2, np.exp(offsets[..., 3]) * height / 2
    return np.stack([x - half_w, y - half_h, x + half_w, y + half_h], axis=-1)


def overlaps(box, size, boxes, sizes):
    """JaccardOverlap of one box against each of `boxes` (sizes as box_sizes gives them)."""
    disjoint = ((boxes[:, 0] > box[2]) | (boxes[:, 2] < box[0]) | (boxes[:, 1] > box[3]) | (boxes[:, 3] < box[1]))
    width = np.minimum(boxes[:, 2], box[2]) - np.maximum(boxes[:, 0], box[0])
    height = np.minimum(boxes[:, 3], box[3]) - np.maximum(boxes[:, 1], box[1])
    inter = width * height
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = inter / (size + sizes - inter)
    return np.where(disjoint | (width <= 0) | (height <= 0), 0, iou)


def nms(boxes, scores, score_threshold, nms_threshold, eta=1.0, top_k=-1):
    """ApplyNMSFast: indices of the kept boxes, best first. Candidates score above the threshold
    (stable descending order, at most top_k of them); each is kept when it overlaps no kept box
    by more than the adaptive threshold, which is multiplied by eta after each box kept while it
    exceeds 0.5."""
    candidates = np.flatnonzero(scores > score_threshold)
    candidates = candidates[np.argsort(-scores[candidates], kind="stable")]
    if top_k > -1:
        candidates = candidates[:top_k]
    sizes = box_sizes(boxes)
    kept = []
    threshold = nms_threshold
    for index in candidates:
        if kept and np.any(overlaps(boxes[index], sizes[index], boxes[kept], sizes[kept]) > threshold):
            continue
        kept.append(int(index))
        if eta < 1 and threshold > 0.5:
            threshold *= eta
    return kept
