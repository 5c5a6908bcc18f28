"""Box arithmetic of SSD (weiliu89/caffe, src/caffe/util/bbox_util.cpp) on NumPy arrays: decoding
predicted offsets against prior boxes, box sizes and overlaps, greedy non-maximum suppression.
Boxes are rows (xmin, ymin, xmax, ymax) in normalized image coordinates."""
import numpy as np

from nvcaffe_py.proto import caffe_pb2

CodeType = caffe_pb2.PriorBoxParameter.CodeType
ResizeMode = caffe_pb2.ResizeParameter.Resize_mode


# Candidates up to which NMS computes all their overlaps in one table (4 MB of float32 at most).
NMS_TABLE_CANDIDATES = 1024


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


def nms(boxes, scores, score_threshold, nms_threshold, eta=1.0, top_k=-1, min_size=0.0):
    """ApplyNMSFast: indices of the kept boxes, best first. Candidates score above the threshold
    (stable descending order, at most top_k of them); each is kept when it overlaps no kept box
    by more than the adaptive threshold, which is multiplied by eta after each box kept while it
    exceeds 0.5. The fork's older ApplyNMS (MultiBoxLoss's mining) is this with no score
    threshold, eta 1 and min_size 1e-5: it drops the boxes smaller than that after the top_k cut."""
    candidates = np.flatnonzero(scores > score_threshold)
    candidates = candidates[np.argsort(-scores[candidates], kind="stable")]
    if top_k > -1:
        candidates = candidates[:top_k]
    sizes = box_sizes(boxes)
    if min_size > 0:
        candidates = candidates[sizes[candidates] >= min_size]
    # Every candidate's overlaps with the others at once, where there are few enough (top_k bounds
    # them): a call per candidate cost ~25 us, 10 ms for 400 (res10's face detector at batch 1).
    table = (pairwise_overlaps(boxes[candidates], boxes[candidates]) if len(candidates) <= NMS_TABLE_CANDIDATES
             else None)
    if table is not None and eta >= 1:
        # A fixed threshold: a candidate is dropped by any kept one before it, so each kept box
        # strikes out the later ones it overlaps, one row of the table (400 candidates: 8 -> 0.5 ms).
        struck, over, positions = np.zeros(len(candidates), bool), table > nms_threshold, []
        for position in range(len(candidates)):
            if not struck[position]:
                positions.append(position)
                struck |= over[position]
        return candidates[positions].tolist()
    kept, positions = [], []  # the kept boxes' indices, and their positions among the candidates
    threshold = nms_threshold
    for position, index in enumerate(candidates):
        if kept:
            iou = (table[position, positions] if table is not None
                   else overlaps(boxes[index], sizes[index], boxes[kept], sizes[kept]))
            if np.any(iou > threshold):
                continue
        kept.append(int(index))
        positions.append(position)
        if eta < 1 and threshold > 0.5:
            threshold *= eta
    return kept


def pairwise_overlaps(a, b):
    """JaccardOverlap of every box of `a` (A, 4) with every box of `b` (B, 4): (A, B); 0 where the
    boxes do not intersect with positive width and height."""
    a, b = a[:, None, :], b[None, :, :]
    width = np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0])
    height = np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1])
    inter = width * height
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = inter / (box_sizes(a) + box_sizes(b) - inter)
    return np.where((width > 0) & (height > 0), iou, 0)


def coverages(a, b):
    """BBoxCoverage: the share of each box of `a` (A, 4) that each box of `b` (B, 4) covers: (A, B)."""
    a, b = a[:, None, :], b[None, :, :]
    width = np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0])
    height = np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1])
    inter = np.where((width > 0) & (height > 0), width * height, 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(inter > 0, inter / box_sizes(a), 0)


def crosses_boundary(boxes):
    """IsCrossBoundaryBBox: a coordinate outside [0, 1]."""
    return np.any((boxes < 0) | (boxes > 1), axis=-1)


def match_boxes(gt, predictions, per_prediction, overlap_threshold, ignore_cross_boundary=False):
    """MatchBBox against every ground-truth box: (indices, overlaps) per prediction. An index is
    the matched gt row, -1 for none, -2 for a prediction ignored as crossing the image boundary.
    Bipartite first: repeatedly the highest remaining overlap (first in prediction, then gt order)
    pairs one prediction with one gt; then, per prediction, each prediction left takes its best gt
    whose overlap reaches overlap_threshold. overlaps is the matched overlap, or the best one."""
    count = len(predictions)
    indices = np.full(count, -1, np.int64)
    best = np.zeros(count)
    if len(gt) == 0:
        return indices, best
    iou = pairwise_overlaps(predictions.astype(np.float64), gt.astype(np.float64))
    if ignore_cross_boundary:
        ignored = crosses_boundary(predictions)
        indices[ignored] = -2
        iou[ignored] = 0
    iou = np.where(iou > 1e-6, iou, 0)
    best = iou.max(axis=1)
    free = iou.copy()
    for _ in range(len(gt)):
        flat = int(np.argmax(free))
        i, j = divmod(flat, len(gt))
        if free[i, j] <= 0:
            break
        indices[i], best[i] = j, iou[i, j]
        free[i, :] = 0
        free[:, j] = 0
    if per_prediction:
        left = np.flatnonzero(indices == -1)
        candidates = np.where(iou[left] >= overlap_threshold, iou[left], 0)
        if len(left):
            j = np.argmax(candidates, axis=1)
            good = candidates[np.arange(len(left)), j] > 0
            indices[left[good]] = j[good]
            best[left[good]] = candidates[good, j[good]]
    return indices, best


def encode_boxes(priors, variances, boxes, code_type, encode_variance_in_target):
    """EncodeBBox for matched pairs: priors, variances and ground-truth boxes (M, 4) -> the
    targets a location prediction learns (the inverse of decode_boxes)."""
    if code_type == CodeType.Value("CORNER"):
        offsets = boxes - priors
    else:
        prior_w, prior_h = priors[:, 2] - priors[:, 0], priors[:, 3] - priors[:, 1]
        if np.any(prior_w <= 0) or np.any(prior_h <= 0):
            raise ValueError("a prior box has no width or height")
        if code_type == CodeType.Value("CORNER_SIZE"):
            offsets = (boxes - priors) / np.stack([prior_w, prior_h, prior_w, prior_h], axis=1)
        else:
            width, height = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
            if np.any(width <= 0) or np.any(height <= 0):
                raise ValueError("a ground-truth box has no width or height")
            offsets = np.stack([((boxes[:, 0] + boxes[:, 2]) - (priors[:, 0] + priors[:, 2])) / 2 / prior_w,
                                ((boxes[:, 1] + boxes[:, 3]) - (priors[:, 1] + priors[:, 3])) / 2 / prior_h,
                                np.log(width / prior_w), np.log(height / prior_h)], axis=1)
    if encode_variance_in_target:
        return offsets
    if np.any(variances <= 0):
        raise ValueError("a prior variance is not positive")
    return offsets / variances


def clip_boxes(boxes, height=1.0, width=1.0):
    """ClipBBox: every coordinate into [0, width] (x) or [0, height] (y)."""
    return np.clip(boxes, 0, [width, height, width, height])


def project_boxes(region, boxes):
    """ProjectBBox: `boxes` in the coordinates of `region` (one box), clipped to [0, 1]; a box that
    does not intersect the region is left as it is (the fork leaves its output untouched then)."""
    inside = ~((boxes[:, 0] >= region[2]) | (boxes[:, 2] <= region[0]) |
               (boxes[:, 1] >= region[3]) | (boxes[:, 3] <= region[1]))
    size = np.array([region[2] - region[0], region[3] - region[1]] * 2)
    projected = clip_boxes((boxes - np.array(region[:2] * 2)) / size)
    return np.where(inside[:, None], projected, boxes)


def output_boxes(boxes, height, width, resize=None):
    """OutputBBox: normalized boxes (N, 4) of a net's input in the pixels of the original image
    (height x width) it was made from, as ResizeParameter `resize` (None: WARP) made it. WARP:
    clipped to [0, 1], scaled. FIT_LARGE_SIZE_AND_PAD: first taken out of the padding into the
    image's own region (project_boxes). FIT_SMALL_SIZE with height_scale and width_scale: scaled to
    those, then clipped to the image. Also whether pixel_overlaps should add 1 to the boxes' sides
    for their areas: the fork stores the area that way unless the boxes were clipped last (the
    FIT_SMALL_SIZE case) or the image is at most 1 x 1."""
    mode = resize.resize_mode if resize is not None else ResizeMode.Value("WARP")
    if mode == ResizeMode.Value("FIT_SMALL_SIZE") and resize.height_scale and resize.width_scale:
        scaled = boxes * ([resize.width_scale, resize.height_scale] * 2)
        return clip_boxes(scaled, height, width), False
    if mode == ResizeMode.Value("FIT_LARGE_SIZE_AND_PAD"):
        aspect, resize_aspect = width / height, resize.width / resize.height
        if aspect > resize_aspect:  # padded above and below
            pad = (resize.height - resize.width / aspect) / 2 / resize.height
            region = [0.0, pad, 1.0, 1 - pad]
        else:
            pad = (resize.width - resize.height * aspect) / 2 / resize.width
            region = [pad, 0.0, 1 - pad, 1.0]
        boxes = project_boxes(region, boxes)
    return clip_boxes(boxes) * ([width, height] * 2), height > 1 or width > 1


def pixel_overlaps(a, b, area_plus_one=True):
    """JaccardOverlap in pixels (the fork's normalized = false) of every box of `a` (A, 4) with
    every box of `b` (B, 4): the intersection's sides count both end pixels (+1), as the areas'
    do unless area_plus_one is False (output_boxes says which). As in the fork, boxes that do
    not intersect share a 1 x 1 intersection (its empty box measured the same way)."""
    a, b = a[:, None, :], b[None, :, :]
    disjoint = (b[..., 0] > a[..., 2]) | (b[..., 2] < a[..., 0]) | (b[..., 1] > a[..., 3]) | (b[..., 3] < a[..., 1])
    width = np.where(disjoint, 0, np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0])) + 1
    height = np.where(disjoint, 0, np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1])) + 1
    extra = 1 if area_plus_one else 0

    def area(box):
        w, h = box[..., 2] - box[..., 0], box[..., 3] - box[..., 1]
        return np.where((w < 0) | (h < 0), 0, (w + extra) * (h + extra))
    inter = width * height
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where((width > 0) & (height > 0), inter / (area(a) + area(b) - inter), 0)
