"""Loss layers: the LossLayer base (a scalar top that the Net weights, labels never
back-propagated) and the losses built on it. The cross-entropies of a softmax, SoftmaxWithLoss
and InfogainLoss, are in softmax_loss.py.

Every backward scales its gradient by `top[0].diff.flat[0]`, where the Net puts the loss weight.
"""
import numpy as np

from nvcaffe_py.conformance import Case, fixed, labels, normal, uniform
from nvcaffe_py.layer import Layer
from nvcaffe_py.proto import caffe_pb2
from nvcaffe_py.registry import register_layer

from .neuron import sigmoid

FULL = caffe_pb2.LossParameter.FULL
VALID = caffe_pb2.LossParameter.VALID
BATCH_SIZE = caffe_pb2.LossParameter.BATCH_SIZE
NONE = caffe_pb2.LossParameter.NONE


class LossLayer(Layer):
    exact_num_bottom = 2
    exact_num_top = 1
    auto_top_blobs = True
    default_loss_weights = (1.0,)
    # Bottoms that hold labels (or other fixed inputs): never given a gradient.
    label_bottoms = (1,)

    def allow_force_backward(self, bottom_index: int) -> bool:
        return bottom_index not in self.label_bottoms

    def reshape(self, bottom, top):
        if bottom[0].num != bottom[1].num:
            raise self.error(f"bottoms have first dimensions {bottom[0].num} and {bottom[1].num}; "
                             f"the data and label should have the same first dimension")
        top[0].reshape(())

    def refuse_label_gradient(self, propagate_down):
        for i in self.label_bottoms:
            if i < len(propagate_down) and propagate_down[i]:
                raise self.error(f"cannot backpropagate to bottom[{i}] (a label or fixed input)")

    # -- LossParameter: ignore_label and normalization -----------------------------------------
    def ignore_label(self):
        p = self.layer_param.loss_param
        return p.ignore_label if p.HasField("ignore_label") else None

    def normalization_mode(self, default):
        """`normalization` if given, else the legacy `normalize` (true: VALID, false: BATCH_SIZE),
        else the layer's default (as Caffe maps them)."""
        p = self.layer_param.loss_param
        if p.HasField("normalization"):
            return p.normalization
        if p.HasField("normalize"):
            return VALID if p.normalize else BATCH_SIZE
        return default

    @staticmethod
    def normalizer(mode, outer_num, inner_num, valid_count) -> float:
        """What the summed loss is divided by; at least 1, so that a batch whose labels are all
        ignored gives 0 rather than NaN."""
        n = {FULL: outer_num * inner_num, VALID: valid_count, BATCH_SIZE: outer_num, NONE: 1}[mode]
        return float(max(1, n))


def class_labels(layer, label_blob, num_classes, ignore_label):
    """Labels as ints (Caffe stores them as floats and truncates them) and the mask of those that
    count; ignored places get label 0 so that they can still index. A counted label outside
    [0, num_classes) is an error (Caffe only checks it in debug builds)."""
    labels = label_blob.data_readonly().astype(np.int64)
    valid = np.ones(labels.shape, bool) if ignore_label is None else labels != ignore_label
    bad = valid & ((labels < 0) | (labels >= num_classes))
    if bad.any():  # name the label as given: a NaN cast to int would read as -2^63
        value = label_blob.data_readonly()[bad][0]
        raise layer.error(f"label {value:g} is outside the {num_classes} classes [0, {num_classes})")
    return np.where(valid, labels, 0), valid


@register_layer("EuclideanLoss")
class EuclideanLossLayer(LossLayer):
    """sum((a - b)^2) / (2 N); both inputs get gradients."""

    label_bottoms = ()
    cases = [Case("", [(3, 4), (3, 4)]),
             Case("", [(3, 4), (3, 2, 2)])]

    def reshape(self, bottom, top):
        super().reshape(bottom, top)
        if bottom[0].count(1) != bottom[1].count(1):
            raise self.error(f"inputs of shapes {bottom[0].shape} and {bottom[1].shape} must have the same dimension")

    def forward_cpu(self, bottom, top):
        self.difference = bottom[0].data_readonly() - bottom[1].data_readonly().reshape(bottom[0].shape)
        top[0].data[...] = np.sum(self.difference ** 2, dtype=np.float64) / bottom[0].num / 2

    def backward_cpu(self, top, propagate_down, bottom):
        scale = top[0].diff_readonly().flat[0] / bottom[0].num
        for i, sign in enumerate((1.0, -1.0)):
            if propagate_down[i]:
                bottom[i].diff[...] = (sign * scale * self.difference).reshape(bottom[i].shape)


# Targets in [0, 1], and -1 (ignore_label in SigmoidCrossEntropyLoss's cases) at three places.
_TARGETS_SOME_IGNORED = fixed([[[0.2, -1], [0.7, 1]], [[0, 0.5], [-1, 0.9]], [[-1, 0.3], [0.6, 0.1]]])


@register_layer("SigmoidCrossEntropyLoss")
class SigmoidCrossEntropyLossLayer(LossLayer):
    """Cross-entropy of sigmoid(x) against targets t in [0, 1], computed from x without overflow:
    max(x, 0) - x t + log(1 + exp(-|x|)). Targets equal to ignore_label do not count. Without
    `normalization` or `normalize` the sum is divided by the batch size, as in Caffe."""
    cases = [Case(f"loss_param {{ {ignore} {mode} }}", [normal((3, 2, 2), scale=3), targets])
             for ignore, targets in [("", uniform((3, 2, 2), 0, 1, differentiable=False)),
                                     ("ignore_label: -1", _TARGETS_SOME_IGNORED)]
             for mode in ["", "normalization: VALID", "normalization: FULL", "normalization: NONE",
                          "normalize: true", "normalize: false"]]

    def setup(self, bottom, top):
        self.ignore = self.ignore_label()
        self.normalization = self.normalization_mode(BATCH_SIZE)

    def reshape(self, bottom, top):
        super().reshape(bottom, top)
        if bottom[0].count() != bottom[1].count():
            raise self.error(f"inputs of shapes {bottom[0].shape} and {bottom[1].shape} must have the same count")

    def _valid(self, bottom):
        target = bottom[1].data_readonly().reshape(bottom[0].shape)
        if self.ignore is None:
            return target, np.ones(target.shape, bool)
        return target, target.astype(np.int64) != self.ignore

    def forward_cpu(self, bottom, top):
        x = bottom[0].data_readonly()
        target, valid = self._valid(bottom)
        loss = np.maximum(x, 0) - x * target + np.log1p(np.exp(-np.abs(x)))
        outer, inner = bottom[0].num, bottom[0].count(1)
        self.scale = 1.0 / self.normalizer(self.normalization, outer, inner, int(valid.sum()))
        top[0].data[...] = np.sum(loss, where=valid, dtype=np.float64) * self.scale

    def backward_cpu(self, top, propagate_down, bottom):
        self.refuse_label_gradient(propagate_down)
        if propagate_down[0]:
            target, valid = self._valid(bottom)
            probability = sigmoid(bottom[0].data_readonly())
            bottom[0].diff[...] = (probability - target) * valid * (top[0].diff_readonly().flat[0] * self.scale)


class _PerItemLabelLoss(LossLayer):
    """Losses on (N, ...) scores with one class label per item (Hinge, MultinomialLogistic)."""

    def reshape(self, bottom, top):
        super().reshape(bottom, top)
        if bottom[1].count() != bottom[0].num:
            raise self.error(f"{bottom[1].count()} labels for {bottom[0].num} items; give one label per item")

    def _scores_and_labels(self, bottom):
        scores = bottom[0].data_readonly().reshape(bottom[0].num, -1)
        labels, _ = class_labels(self, bottom[1], scores.shape[1], None)
        return scores, labels.reshape(-1)


@register_layer("HingeLoss")
class HingeLossLayer(_PerItemLabelLoss):
    """One-vs-all hinge: with t = +1 for the true class and -1 for the others,
    sum max(0, 1 - t x) (L1) or its square (L2), divided by N."""
    cases = [Case("", [(4, 5), labels((4,), 5)]),
             Case("hinge_loss_param { norm: L2 }", [(4, 5), labels((4,), 5)]),
             Case("hinge_loss_param { norm: L2 }", [(4, 3, 2), labels((4, 1), 6)])]

    def _margins(self, bottom):
        scores, labels = self._scores_and_labels(bottom)
        sign = np.ones_like(scores)
        sign[np.arange(len(labels)), labels] = -1
        return np.maximum(0, 1 + sign * scores), sign

    def forward_cpu(self, bottom, top):
        margins, _ = self._margins(bottom)
        per_item = margins ** 2 if self._squared() else margins
        top[0].data[...] = np.sum(per_item, dtype=np.float64) / bottom[0].num

    def backward_cpu(self, top, propagate_down, bottom):
        self.refuse_label_gradient(propagate_down)
        if propagate_down[0]:
            margins, sign = self._margins(bottom)
            grad = 2 * margins if self._squared() else np.sign(margins)
            scale = top[0].diff_readonly().flat[0] / bottom[0].num
            bottom[0].diff[...] = (grad * sign * scale).reshape(bottom[0].shape)

    def _squared(self) -> bool:
        return self.layer_param.hinge_loss_param.norm == caffe_pb2.HingeLossParameter.L2


# Caffe's floor on probabilities before taking their log.
LOG_THRESHOLD = 1e-20


@register_layer("MultinomialLogisticLoss")
class MultinomialLogisticLossLayer(_PerItemLabelLoss):
    """-log p[label] averaged over the N items, for inputs that are already probabilities."""
    cases = [Case("", [uniform((4, 5), 0.05, 1), labels((4,), 5)]),
             Case("", [uniform((4, 3, 2), 0.05, 1), labels((4, 1, 1, 1), 6)])]

    def _true_class_prob(self, bottom):
        prob, labels = self._scores_and_labels(bottom)
        return np.maximum(prob[np.arange(len(labels)), labels], LOG_THRESHOLD), labels

    def forward_cpu(self, bottom, top):
        prob, _ = self._true_class_prob(bottom)
        top[0].data[...] = -np.sum(np.log(prob), dtype=np.float64) / bottom[0].num

    def backward_cpu(self, top, propagate_down, bottom):
        self.refuse_label_gradient(propagate_down)
        if propagate_down[0]:
            prob, labels = self._true_class_prob(bottom)
            grad = np.zeros((bottom[0].num, bottom[0].count() // bottom[0].num), bottom[0].dtype)
            grad[np.arange(len(labels)), labels] = -top[0].diff_readonly().flat[0] / bottom[0].num / prob
            bottom[0].diff[...] = grad.reshape(bottom[0].shape)


@register_layer("ContrastiveLoss")
class ContrastiveLossLayer(LossLayer):
    """Siamese loss on feature pairs (a, b) with a similarity label y (nonzero: similar), d = |a - b|:
    y d^2 + (1 - y) max(margin - d, 0)^2, summed and divided by 2N; `legacy_version` uses
    max(margin - d^2, 0) for dissimilar pairs instead."""

    exact_num_bottom = 3
    label_bottoms = (2,)
    # Features at distances around the margin, so both sides of its hinge are checked. Caffe divides
    # by (d + 1e-4), not d, in the non-legacy gradient: the checks allow for that.
    cases = [Case("", [normal((6, 3), 0.3), normal((6, 3), 0.3), labels((6,), 2)], threshold=1e-3),
             Case("contrastive_loss_param { margin: 0.8 }", [normal((6, 3, 1, 1), 0.3), normal((6, 3, 1, 1), 0.3),
                                                             labels((6, 1, 1, 1), 2)], threshold=1e-3),
             Case("contrastive_loss_param { legacy_version: true }",
                  [normal((6, 3), 0.3), normal((6, 3), 0.3), labels((6,), 2)])]
    # Caffe's guard against dividing by a zero distance; kept, so gradients match Caffe's.
    DISTANCE_EPSILON = 1e-4

    def reshape(self, bottom, top):
        super().reshape(bottom, top)
        if bottom[0].shape != bottom[1].shape:
            raise self.error(f"the two feature bottoms have shapes {bottom[0].shape} and {bottom[1].shape}; "
                             f"they must be equal")
        if bottom[2].count() != bottom[0].num:
            raise self.error(f"{bottom[2].count()} similarity labels for {bottom[0].num} pairs; give one per pair")

    def _terms(self, bottom):
        """Per pair: the difference a - b, d^2, similarity, and the dissimilar pairs' margin term."""
        p = self.layer_param.contrastive_loss_param
        diff = (bottom[0].data_readonly() - bottom[1].data_readonly()).reshape(bottom[0].num, -1)
        dist_sq = np.sum(diff ** 2, axis=1)
        similar = bottom[2].data_readonly().reshape(-1).astype(np.int64) != 0
        gap = p.margin - (dist_sq if p.legacy_version else np.sqrt(dist_sq))
        return diff, dist_sq, similar, gap

    def forward_cpu(self, bottom, top):
        _, dist_sq, similar, gap = self._terms(bottom)
        hinge = np.maximum(gap, 0)
        dissimilar = hinge if self.layer_param.contrastive_loss_param.legacy_version else hinge ** 2
        top[0].data[...] = np.sum(np.where(similar, dist_sq, dissimilar), dtype=np.float64) / bottom[0].num / 2

    def backward_cpu(self, top, propagate_down, bottom):
        self.refuse_label_gradient(propagate_down)
        diff, dist_sq, similar, gap = self._terms(bottom)
        if self.layer_param.contrastive_loss_param.legacy_version:
            dissimilar = -1.0 * (gap > 0)
        else:
            dissimilar = -np.maximum(gap, 0) / (np.sqrt(dist_sq) + self.DISTANCE_EPSILON)
        coefficient = np.where(similar, 1.0, dissimilar)[:, None] * diff
        scale = top[0].diff_readonly().flat[0] / bottom[0].num
        for i, sign in enumerate((1.0, -1.0)):
            if propagate_down[i]:
                bottom[i].diff[...] = (sign * scale * coefficient).reshape(bottom[i].shape)
