"""The cross-entropy losses of a softmax over a class axis, against per-position targets:
SoftmaxWithLoss (the true class's -log p) and InfogainLoss (weighted by a row of a matrix H).

They live apart from loss.py, whose LossLayer they extend, and from softmax.py, whose
log_softmax they compute with, so that each of those two stands on its own.
"""
import functools

import numpy as np

from nvcaffe_py.conformance import Case, labels, normal, uniform
from nvcaffe_py.formats import array_from_blob_proto, read_binary
from nvcaffe_py.proto import caffe_pb2
from nvcaffe_py.registry import register_layer

from .loss import VALID, LossLayer, class_labels
from .softmax import log_softmax
from .softmax_gpu import SoftmaxWithLossGPU

# Each ignore_label and normalization branch (SoftmaxWithLoss also takes the legacy `normalize`).
_LOSS_PARAMS = ["", "loss_param { ignore_label: 2 }", "loss_param { normalization: BATCH_SIZE }",
                "loss_param { ignore_label: 0 normalization: FULL }", "loss_param { normalization: NONE }"]
_PROBABILITIES_TOP = ("the gradient check weighs the probabilities top into its objective, which backward "
                      "ignores, as Caffe's does")


class ClassAxisLoss(LossLayer):
    """Cross-entropy of softmax(bottom[0]) over the class axis against per-position target
    weights T (one-hot for SoftmaxWithLoss, a row of H for InfogainLoss); one label per position
    of the other axes. loss = -sum T * log p; its gradient is p * sum_c T - T.
    An optional second top receives the probabilities."""

    exact_num_top = None
    min_top = 1
    max_top = 2

    def class_axis_param(self) -> int:
        raise NotImplementedError

    def target_weights(self, labels, valid, bottom):
        """(outer, classes, inner) weights; zero where the label is ignored."""
        raise NotImplementedError

    def setup(self, bottom, top):
        self.ignore = self.ignore_label()
        self.normalization = self.normalization_mode(VALID)

    def reshape(self, bottom, top):
        super().reshape(bottom, top)
        data = bottom[0]
        self.axis = self.canonical_axis(data, self.class_axis_param())
        self.outer_num = data.count(0, self.axis)
        self.inner_num = data.count(self.axis + 1)
        self.num_classes = data.shape[self.axis]
        if self.outer_num * self.inner_num != bottom[1].count():
            raise self.error(
                f"{bottom[1].count()} labels for predictions of shape {data.shape} over axis {self.axis}; "
                f"the number of labels must match the number of predictions "
                f"(e.g. N*H*W labels in [0, C) for (N, C, H, W) predictions over axis 1)")
        if len(top) > 1:
            top[1].reshape_like(data)

    def _labels(self, bottom):
        labels, valid = class_labels(self, bottom[1], self.num_classes, self.ignore)
        shape = (self.outer_num, 1, self.inner_num)
        return labels.reshape(shape), valid.reshape(shape)

    def forward_cpu(self, bottom, top):
        scores = bottom[0].data_readonly().reshape(self.outer_num, self.num_classes, self.inner_num)
        log_prob = log_softmax(scores, axis=1)
        labels, valid = self._labels(bottom)
        weights = self.target_weights(labels, valid, bottom)
        self.prob = np.exp(log_prob)
        self.scale = 1.0 / self.normalizer(self.normalization, self.outer_num, self.inner_num, int(valid.sum()))
        top[0].data[...] = -np.sum(weights * log_prob, dtype=np.float64) * self.scale
        if len(top) > 1:
            top[1].data[...] = self.prob.reshape(bottom[0].shape)

    def backward_cpu(self, top, propagate_down, bottom):
        self.refuse_label_gradient(propagate_down)
        if not propagate_down[0]:
            return
        labels, valid = self._labels(bottom)
        weights = self.target_weights(labels, valid, bottom)
        grad = self.prob * weights.sum(axis=1, keepdims=True) - weights
        bottom[0].diff[...] = (grad * (top[0].diff_readonly().flat[0] * self.scale)).reshape(bottom[0].shape)


@register_layer("SoftmaxWithLoss")
class SoftmaxWithLossLayer(ClassAxisLoss):
    """-log softmax(x)[label] over `softmax_param.axis`, summed over the positions whose label is
    not `loss_param.ignore_label`, divided as `loss_param.normalization` says (default VALID:
    by the number of counted positions). A second top gets the probabilities."""

    cases = ([Case(param, [normal((6, 5), scale=2), labels((6,), 5)])
              for param in _LOSS_PARAMS + ["loss_param { normalize: false }"]]
             + [Case(param, [normal((2, 4, 3, 2), scale=2), labels((2, 1, 3, 2), 4)], tops=2,
                     no_gradient=_PROBABILITIES_TOP) for param in _LOSS_PARAMS]
             + [Case("", [normal((2, 4, 3, 2), scale=2), labels((2, 1, 3, 2), 4)]),
                Case("softmax_param { axis: -1 } loss_param { ignore_label: 1 }",
                     [normal((2, 3, 4), scale=2), labels((2, 3), 4)])])

    def class_axis_param(self) -> int:
        return self.layer_param.softmax_param.axis

    def target_weights(self, labels, valid, bottom):
        classes = np.arange(self.num_classes).reshape(1, -1, 1)
        return ((classes == labels) & valid).astype(bottom[0].dtype)

    def make_gpu(self):
        return SoftmaxWithLossGPU(axis=self.layer_param.softmax_param.axis, ignore_label=self.ignore,
                                  normalizer=functools.partial(self.normalizer, self.normalization),
                                  counts_valid=self.normalization == VALID, dtype=self.dtype)


@register_layer("InfogainLoss")
class InfogainLossLayer(ClassAxisLoss):
    """Softmax cross-entropy weighted by an infogain matrix H (classes x classes):
    loss = -sum_l H[label, l] log p_l. H comes from `infogain_loss_param.source` (a .binaryproto)
    or from a third bottom, which never receives a gradient."""

    exact_num_bottom = None
    min_bottom = 2
    max_bottom = 3
    label_bottoms = (1, 2)
    # H as a third bottom; tests/test_loss.py reads it from a source file.
    cases = ([Case(param, [normal((6, 5), scale=2), labels((6,), 5), uniform((5, 5), 0, 1, differentiable=False)])
              for param in _LOSS_PARAMS]
             + [Case("infogain_loss_param { axis: 2 }",
                     [normal((2, 3, 4), scale=2), labels((2, 3), 4), uniform((4, 4), 0, 1, differentiable=False)]),
                Case("loss_param { ignore_label: 1 }",
                     [normal((2, 4, 3, 2), scale=2), labels((2, 1, 3, 2), 4),
                      uniform((4, 4), 0, 1, differentiable=False)], tops=2, no_gradient=_PROBABILITIES_TOP)])

    def class_axis_param(self) -> int:
        return self.layer_param.infogain_loss_param.axis

    def setup(self, bottom, top):
        if self.layer_param.loss_param.HasField("normalize"):
            raise self.error("loss_param.normalize is deprecated for InfogainLoss; use 'normalization'")
        super().setup(bottom, top)
        self.infogain = None
        if len(bottom) < 3:
            source = self.layer_param.infogain_loss_param.source
            if not source:
                raise self.error("give the infogain matrix H as infogain_loss_param.source or as a third bottom")
            self.infogain = array_from_blob_proto(read_binary(source, caffe_pb2.BlobProto()), self.dtype, where=source)

    def _matrix(self, bottom):
        return bottom[2].data_readonly() if len(bottom) > 2 else self.infogain

    def reshape(self, bottom, top):
        super().reshape(bottom, top)
        size = self._matrix(bottom).size
        if size != self.num_classes ** 2:
            raise self.error(f"infogain matrix H has {size} entries; {self.num_classes} classes need "
                             f"{self.num_classes}x{self.num_classes}")

    def target_weights(self, labels, valid, bottom):
        matrix = self._matrix(bottom).reshape(self.num_classes, self.num_classes)
        rows = matrix[labels[:, 0, :]]  # (outer, inner, classes)
        return np.moveaxis(rows, 2, 1) * valid
