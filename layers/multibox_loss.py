"""MultiBoxLoss (SSD, weiliu89/caffe): the detection loss of location offsets and class scores.

Bottoms: location predictions (N, P * L * 4; L = 1 with share_location, else num_classes),
confidences (N, P * num_classes, raw scores), PriorBox's (1, 2, P * 4) priors and variances, and
AnnotatedData's ground truth (1, 1, G, 8: item_id, label, instance_id, xmin, ymin, xmax, ymax,
difficult; item_id -1 rows are padding). Per image:

- **Matching** (multibox_loss_param): the priors (use_prior_for_matching, the default; else the
  decoded predictions, per location class) are matched to the image's ground-truth boxes by
  Jaccard overlap (bbox.match_boxes): bipartite, then with match_type PER_PREDICTION every other
  prior whose best overlap reaches overlap_threshold. Difficult boxes count unless
  use_difficult_gt is false; ignore_cross_boundary_bbox leaves priors outside the image unmatched.
- **Mining** (MineHardExamples; needs share_location, as in the fork). MAX_NEGATIVE (the
  default): among the unmatched priors whose best overlap is below neg_overlap, the neg_pos_ratio
  x (matched count) with the highest confidence loss (background as their label) are the
  negatives. HARD_EXAMPLE: every prior is a candidate, scored by its confidence loss (its matched
  label, else background) plus, when matched, its localization loss (without loc_weight); the
  sample_size highest are kept: the unmatched ones among them are the negatives, and a matched
  prior not kept is unmatched. With nms_param (nms_threshold > 0) the candidates first go through
  the fork's ApplyNMS ranked by that loss, over the priors (use_prior_for_nms) or the decoded
  predictions, and the count is taken from what survives. NONE uses every prior.
- **Localization**: each matched prior's prediction against its ground truth encoded
  (bbox.encode_boxes: code_type, variances in the target with encode_variance_in_target, bp_inside),
  by SMOOTH_L1 (default) or L2 (half the squared distance), times loc_weight.
- **Confidence**: SOFTMAX (default) cross-entropy of the matched (their gt label) and negative
  (background) priors, or LOGISTIC (per-class sigmoid cross-entropy).

Both sums are divided by loss_param.normalization (default VALID: the number of matches; FULL:
N * P; BATCH_SIZE: N; NONE: 1), and a layer `propagate_down: false` on bottom 0 or 1 leaves that
part out of the loss, as the fork does. The backward writes the matched (and mined) rows' gradients
back; the matching and mining are those of the forward.

Not supported, with an error: mining without share_location (as in the fork),
map_object_to_agnostic with a num_classes other than 2, nms_param in mining without top_k (the
fork reads the unset field as 0 and keeps no candidate).

No GPU half: the fork also matches and mines on the host (its GPU code only computes the
confidence losses). In GPU mode this layer's CPU code runs on the blobs' host views; the
conformance parity check then compares that run, the data moved by the SyncedArrays, with the CPU
one.
"""
import numpy as np

from nvcaffe_py.conformance import Case, fixed, normal
from nvcaffe_py.proto import caffe_pb2
from nvcaffe_py.registry import register_layer

from .bbox import decode_boxes, encode_boxes, match_boxes, nms
from .loss import LossLayer

P = caffe_pb2.MultiBoxLossParameter
VALID = caffe_pb2.LossParameter.VALID
FLT_MIN = np.finfo(np.float32).tiny
MIN_NMS_BOX = 1e-5  # ApplyNMS drops candidate boxes smaller than this


def _priors(count, seed=5):
    """`count` priors on a grid over the unit square (two sizes) and SSD's usual variances."""
    side = int(np.ceil(np.sqrt(count / 2)))
    centers = (np.arange(side) + 0.5) / side
    cx, cy = np.meshgrid(centers, centers)
    boxes = []
    for half in (0.6 / side, 1.1 / side):
        boxes.append(np.stack([cx - half, cy - half, cx + half, cy + half], axis=-1).reshape(-1, 4))
    boxes = np.concatenate(boxes)[:count]
    return np.stack([boxes.reshape(-1), np.resize([0.1, 0.1, 0.2, 0.2], count * 4)])[None]


def _ground_truth(rows):
    return fixed(np.asarray(rows, np.float64).reshape(1, 1, -1, 8))


# Two images: image 0 with three boxes (one difficult), image 1 with one; 18 priors, 3 classes.
_GT = _ground_truth([[0, 1, 0, 0.1, 0.1, 0.45, 0.5, 0], [0, 2, 0, 0.5, 0.55, 0.9, 0.95, 0],
                     [0, 1, 1, 0.55, 0.05, 0.95, 0.4, 1], [1, 2, 0, 0.3, 0.3, 0.7, 0.75, 0]])
_NO_GT = _ground_truth([[-1] * 8])


def _case(params, loss_param="", classes=3, loc_classes=1, gt=_GT, priors=18, **options):
    return Case(f"multibox_loss_param {{ num_classes: {classes} {params} }} {loss_param}",
                [normal((2, priors * loc_classes * 4), 0.5), normal((2, priors * classes)),
                 fixed(_priors(priors)), gt], **options)


@register_layer("MultiBoxLoss")
class MultiBoxLossLayer(LossLayer):
    exact_num_bottom = 4
    label_bottoms = (2, 3)
    cases = [
        _case("overlap_threshold: 0.3 code_type: CENTER_SIZE", kink=1.0, kink_range=1e-3),
        _case("match_type: BIPARTITE code_type: CORNER loc_loss_type: L2 neg_pos_ratio: 2"),
        _case("overlap_threshold: 0.3 code_type: CORNER_SIZE encode_variance_in_target: true "
              "use_difficult_gt: false mining_type: NONE", "loss_param { normalization: FULL }"),
        _case("overlap_threshold: 0.3 code_type: CENTER_SIZE conf_loss_type: LOGISTIC",
              "loss_param { normalization: BATCH_SIZE }"),
        _case("overlap_threshold: 0.3 share_location: false mining_type: NONE code_type: CENTER_SIZE "
              "use_prior_for_matching: false", loc_classes=3),
        _case("overlap_threshold: 0.3 code_type: CENTER_SIZE bp_inside: true ignore_cross_boundary_bbox: true "
              "loc_weight: 2"),
        _case("code_type: CENTER_SIZE", gt=_NO_GT),
        _case("overlap_threshold: 0.3 code_type: CENTER_SIZE mining_type: HARD_EXAMPLE sample_size: 2"),
        _case("overlap_threshold: 0.3 code_type: CENTER_SIZE neg_pos_ratio: 2 "
              "nms_param { nms_threshold: 0.3 top_k: 12 }"),
        _case("overlap_threshold: 0.3 code_type: CENTER_SIZE mining_type: HARD_EXAMPLE sample_size: 8 "
              "use_prior_for_nms: true nms_param { nms_threshold: 0.2 top_k: 10 }"),
    ]

    def setup(self, bottom, top):
        p = self.layer_param.multibox_loss_param
        if not p.HasField("num_classes") or p.num_classes < 1:
            raise self.error("multibox_loss_param.num_classes must be given (at least 1)")
        self.param = p
        self.num_classes = p.num_classes
        self.loc_classes = 1 if p.share_location else p.num_classes
        self.background = p.background_label_id
        self.normalization = self.normalization_mode(VALID)
        if p.HasField("do_neg_mining") and p.do_neg_mining != (p.mining_type != P.NONE):
            raise self.error("do_neg_mining (deprecated) contradicts mining_type")
        self.mining = p.mining_type != P.NONE
        self.hard_example = p.mining_type == P.HARD_EXAMPLE
        if self.mining and not p.share_location:
            raise self.error("negative mining needs share_location: true (as in SSD)")
        if self.hard_example and p.sample_size <= 0:
            raise self.error(f"mining_type HARD_EXAMPLE needs a positive sample_size, not {p.sample_size}")
        self.mining_nms = self.mining and p.HasField("nms_param") and p.nms_param.nms_threshold > 0
        if self.mining_nms and not p.nms_param.HasField("top_k"):
            raise self.error("nms_param in mining needs top_k (the fork reads it unset as 0 and mines nothing)")
        if p.conf_loss_type == P.SOFTMAX and self.background >= self.num_classes:
            raise self.error(f"background_label_id {self.background} must be within [0, {self.num_classes}) "
                             f"for SOFTMAX")
        if p.map_object_to_agnostic and self.num_classes != 2:
            raise self.error("map_object_to_agnostic needs num_classes: 2")
        given = list(self.layer_param.propagate_down)
        self.use_loc = given[0] if len(given) > 0 else True
        self.use_conf = given[1] if len(given) > 1 else True

    def reshape(self, bottom, top):
        if bottom[2].num_axes != 3 or bottom[2].shape[:2] != (1, 2) or bottom[2].shape[2] % 4:
            raise self.error(f"bottom[2] must be PriorBox's (1, 2, P * 4), not {bottom[2].shape}")
        if bottom[3].num_axes != 4 or bottom[3].shape[-1] != 8:
            raise self.error(f"bottom[3] must be ground truth (1, 1, G, 8), not {bottom[3].shape}")
        self.num, self.num_priors = bottom[0].shape[0], bottom[2].shape[2] // 4
        if bottom[1].shape[0] != self.num:
            raise self.error(f"location and confidence have {self.num} and {bottom[1].shape[0]} items")
        if bottom[0].count() // self.num != self.num_priors * self.loc_classes * 4:
            raise self.error(f"location predictions hold {bottom[0].count() // self.num} values per item; "
                             f"{self.num_priors} priors need {self.num_priors * self.loc_classes * 4}")
        if bottom[1].count() // self.num != self.num_priors * self.num_classes:
            raise self.error(f"confidences hold {bottom[1].count() // self.num} values per item; "
                             f"{self.num_priors} priors need {self.num_priors * self.num_classes}")
        top[0].reshape(())

    # -- the forward's pieces ----------------------------------------------------------------
    def _ground_truth(self, rows):
        """GetGroundTruth: per item_id, (labels, boxes (G, 4)); padding rows skipped."""
        truth = {}
        for row in rows.reshape(-1, 8):
            item = int(row[0])
            if item == -1:
                continue
            label = int(row[1])
            if label == self.background:
                raise self.error(f"ground truth of item {item} has the background label {label}")
            if not 0 <= label < self.num_classes:
                raise self.error(f"ground truth of item {item} has label {label}, outside [0, {self.num_classes})")
            if row[7] and not self.param.use_difficult_gt:
                continue
            labels, boxes = truth.setdefault(item, ([], []))
            labels.append(label)
            boxes.append(row[3:7])
        return {item: (np.asarray(labels), np.asarray(boxes, np.float64)) for item, (labels, boxes) in truth.items()}

    def _match(self, item, loc, priors, variances, truth):
        """FindMatches for one item: {location class (-1 shared): (indices, overlaps)}."""
        p = self.param
        if item not in truth:
            return {}
        labels, boxes = truth[item]
        per_prediction = p.match_type == P.PER_PREDICTION
        if p.use_prior_for_matching:
            indices, overlaps = match_boxes(boxes, priors, per_prediction, p.overlap_threshold,
                                            p.ignore_cross_boundary_bbox)
            if p.share_location:
                return {-1: (indices, overlaps)}
            return {c: (np.where((indices > -1) & (labels[np.maximum(indices, 0)] == c), indices, -1), overlaps)
                    for c in range(self.loc_classes) if c != self.background}
        matches = {}
        for c in range(self.loc_classes):
            label = -1 if p.share_location else c
            if label == self.background:
                continue
            decoded = decode_boxes(priors, variances, loc[:, max(label, 0)], p.code_type, p.encode_variance_in_target)
            chosen = np.flatnonzero(labels == label) if label != -1 else np.arange(len(labels))
            indices, overlaps = match_boxes(boxes[chosen], decoded, per_prediction, p.overlap_threshold,
                                            p.ignore_cross_boundary_bbox)
            if len(chosen):
                indices = np.where(indices > -1, chosen[np.maximum(indices, 0)], indices)
            matches[label] = (indices, overlaps)
        return matches

    def _matched_label(self, labels):
        return self.background + 1 if self.param.map_object_to_agnostic else labels

    def _confidence_losses(self, scores, labels):
        """Per-row loss of `scores` (R, C) against integer `labels` (R,)."""
        if self.param.conf_loss_type == P.SOFTMAX:
            shifted = scores - scores.max(axis=1, keepdims=True)
            prob = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
            return -np.log(np.maximum(prob[np.arange(len(labels)), labels], FLT_MIN))
        target = np.zeros_like(scores)
        target[np.arange(len(labels)), labels] = 1
        return self._logistic(scores, target).sum(axis=1)

    @staticmethod
    def _logistic(x, target):
        return -(x * (target - (x >= 0)) - np.log1p(np.exp(x - 2 * x * (x >= 0))))

    def _encode(self, item, hit, indices, loc, priors, variances, truth):
        """EncodeLocPrediction for one item's matched priors `hit` (location slot 0 or its class):
        the predictions and targets the loss compares, and d(compared prediction) / d(prediction)."""
        p = self.param
        boxes = truth[item][1][indices[hit]]
        try:
            target = encode_boxes(priors[hit], variances[hit], boxes, p.code_type, p.encode_variance_in_target)
        except ValueError as exc:
            raise self.error(f"item {item}: {exc}") from None
        pred = loc.astype(np.float64)
        if p.bp_inside:  # a coordinate outside the image gets no gradient: its prediction is its target
            place = priors[hit] if p.use_prior_for_matching else decode_boxes(
                priors[hit], variances[hit], pred, p.code_type, p.encode_variance_in_target)
            pred = np.where((place < 0) | (place > 1), target, pred)
        if not p.encode_variance_in_target:
            return pred, target, np.ones_like(pred)
        return pred / variances[hit], target / variances[hit], 1 / variances[hit]

    def _loc_losses(self, d):
        """Per-coordinate localization loss of the differences `d`, and its derivative."""
        if self.param.loc_loss_type == P.SMOOTH_L1:
            small = np.abs(d) < 1
            return np.where(small, 0.5 * d * d, np.abs(d) - 0.5), np.where(small, d, np.sign(d))
        return 0.5 * d * d, d

    def _mine(self, item, conf, loc, matches, priors, variances, truth):
        """MineHardExamples for one item (share_location: one match list): the selected negatives'
        prior indices, ascending. With HARD_EXAMPLE, matched priors not selected lose their match
        (in `matches`)."""
        p = self.param
        indices, overlaps = matches[-1]
        hit = np.flatnonzero(indices > -1)
        labels = np.full(self.num_priors, self.background)
        labels[hit] = truth[item][0][indices[hit]]
        losses = self._confidence_losses(conf, labels)
        if self.hard_example:  # every prior, matched or not (even one ignored as crossing the boundary)
            eligible = np.arange(self.num_priors)
            count = min(p.sample_size, self.num_priors)
            if len(hit):
                pred, target, _ = self._encode(item, hit, indices, loc[hit, 0], priors, variances, truth)
                losses[hit] += self._loc_losses(pred - target)[0].sum(axis=1)
        else:
            eligible = np.flatnonzero((indices == -1) & (overlaps < p.neg_overlap))
            count = min(int(len(hit) * p.neg_pos_ratio), len(eligible))
        if self.mining_nms:  # ranked by loss, overlapping candidates suppressed, then the first `count`
            boxes = priors
            if not p.use_prior_for_nms:
                try:
                    boxes = decode_boxes(priors, variances, loc[:, 0].astype(np.float64), p.code_type,
                                         p.encode_variance_in_target)
                except ValueError as exc:
                    raise self.error(f"item {item}: {exc}") from None
            order = eligible[nms(boxes[eligible], losses[eligible], -np.inf, p.nms_param.nms_threshold,
                                 top_k=p.nms_param.top_k, min_size=MIN_NMS_BOX)]
        else:
            order = eligible[np.argsort(-losses[eligible], kind="stable")]
        selected = order[:count]
        negatives = np.sort(selected[indices[selected] == -1])
        if self.hard_example:
            indices[np.setdiff1d(hit, selected)] = -1
        return negatives.tolist()

    def forward_cpu(self, bottom, top):
        p = self.param
        dtype = bottom[0].dtype
        loc = bottom[0].data_readonly().reshape(self.num, self.num_priors, self.loc_classes, 4)
        conf = bottom[1].data_readonly().reshape(self.num, self.num_priors, self.num_classes)
        prior_data = bottom[2].data_readonly().astype(np.float64)
        priors, variances = prior_data[0, 0].reshape(-1, 4), prior_data[0, 1].reshape(-1, 4)
        truth = self._ground_truth(bottom[3].data_readonly())
        loc_pred, loc_target, loc_scale, loc_places = [], [], [], []   # matched rows, and (item, prior, class slot) of each
        conf_places, conf_labels, conf_positive = [], [], []  # confidence rows: (item, prior), label, matched
        for item in range(self.num):
            matches = self._match(item, loc[item], priors, variances, truth)
            negatives = []
            if self.mining and matches:  # before the rows: HARD_EXAMPLE may unmatch priors
                negatives = self._mine(item, conf[item].astype(np.float64), loc[item], matches, priors, variances,
                                       truth)
            for label, (indices, _) in sorted(matches.items()):
                hit = np.flatnonzero(indices > -1)
                if not len(hit):
                    continue
                slot = max(label, 0)
                pred, target, scale = self._encode(item, hit, indices, loc[item, hit, slot], priors, variances, truth)
                loc_pred.append(pred)
                loc_target.append(target)
                loc_scale.append(scale)
                loc_places += [(item, j, slot) for j in hit]
                conf_places += [(item, j) for j in hit]
                conf_labels += list(self._matched_label(truth[item][0][indices[hit]]))
                conf_positive += [True] * len(hit)
            if negatives:
                conf_places += [(item, j) for j in negatives]
                conf_labels += [self.background] * len(negatives)
                conf_positive += [False] * len(negatives)
        self.num_matches = len(loc_places)
        if not self.mining:  # every prior of every item: background unless matched
            labels = np.full((self.num, self.num_priors), self.background)
            positive = np.zeros((self.num, self.num_priors), bool)
            for (item, j), label in zip(conf_places, conf_labels):
                labels[item, j], positive[item, j] = label, True
            conf_places = [(item, j) for item in range(self.num) for j in range(self.num_priors)]
            conf_labels, conf_positive = labels.reshape(-1), positive.reshape(-1)
        self.loc_places, self.conf_places = loc_places, conf_places
        loc_loss = 0.0
        if loc_places:
            losses, gradient = self._loc_losses(np.concatenate(loc_pred) - np.concatenate(loc_target))
            loc_loss = float(losses.sum())
            self.loc_diff = gradient * np.concatenate(loc_scale)  # d(pred / variance) / d(pred)
        conf_loss = 0.0
        if conf_places:
            items, priors_at = np.asarray(conf_places).T
            scores = conf[items, priors_at].astype(np.float64)
            labels = np.asarray(conf_labels, np.int64)
            rows = np.arange(len(labels))
            if p.conf_loss_type == P.SOFTMAX:
                shifted = scores - scores.max(axis=1, keepdims=True)
                prob = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
                conf_loss = float(-np.log(np.maximum(prob[rows, labels], FLT_MIN)).sum())
                prob[rows, labels] -= 1
                self.conf_diff = prob
            else:  # one-hot targets for matches and mined negatives; all zero for unmined unmatched rows
                target = np.zeros_like(scores)
                keep = np.asarray(conf_positive, bool) | (self.mining & (labels < self.num_classes))
                target[rows[keep], labels[keep]] = 1
                conf_loss = float(self._logistic(scores, target).sum())
                self.conf_diff = 1 / (1 + np.exp(-scores)) - target
        self.divisor = self.normalizer(self.normalization, self.num, self.num_priors, self.num_matches)
        loss = (p.loc_weight * loc_loss if self.use_loc else 0.0) + (conf_loss if self.use_conf else 0.0)
        top[0].data[...] = dtype.type(loss / self.divisor)

    def backward_cpu(self, top, propagate_down, bottom):
        if any(propagate_down[2:]):
            raise self.error("cannot backpropagate to the priors or the ground truth (bottoms 2 and 3); give the "
                             "layer propagate_down: true true false false, as SSD's scripts do")
        scale = float(top[0].diff_readonly().flat[0]) / self.divisor
        if propagate_down[0]:
            diff = np.zeros((self.num, self.num_priors, self.loc_classes, 4))
            if self.loc_places:
                items, priors_at, slots = np.asarray(self.loc_places).T
                diff[items, priors_at, slots] = self.param.loc_weight * scale * self.loc_diff
            bottom[0].diff[...] = diff.reshape(bottom[0].shape)
        if propagate_down[1]:
            diff = np.zeros((self.num, self.num_priors, self.num_classes))
            if self.conf_places:
                items, priors_at = np.asarray(self.conf_places).T
                diff[items, priors_at] = scale * self.conf_diff
            bottom[1].diff[...] = diff.reshape(bottom[1].shape)
