"""Accuracy (top-k, over a class axis, with ignore_label and per-class accuracy) and ArgMax.
Neither has a gradient; force_backward never asks them for one."""
import numpy as np

from nvcaffe_py.conformance import Case, labels
from nvcaffe_py.layer import Layer
from nvcaffe_py.registry import register_layer

from .accuracy_gpu import AccuracyGPU
from .loss import class_labels


_ACCURACY_PARAMS = ["", "accuracy_param { top_k: 3 }", "accuracy_param { ignore_label: 1 }"]


@register_layer("Accuracy")
class AccuracyLayer(Layer):
    """The fraction of counted positions whose true class is among the top_k scores. A tie with
    the true class's score counts against it, as in Caffe. A second top gets, per class, the
    accuracy over the positions labelled with that class (0 for a class that does not occur)."""

    exact_num_bottom = 2
    min_top = 1
    max_top = 2
    cases = ([Case(param, [(20, 6), labels((20,), 6)]) for param in _ACCURACY_PARAMS]
             + [Case(param, [(2, 5, 3, 2), labels((2, 3, 2), 5)]) for param in _ACCURACY_PARAMS]
             + [Case("accuracy_param { axis: -1 top_k: 2 }", [(3, 2, 5), labels((3, 2), 5)]),
                Case("", [(20, 6), labels((20,), 6)], tops=2),
                Case("accuracy_param { top_k: 2 ignore_label: 1 }", [(2, 5, 3, 2), labels((2, 3, 2), 5)], tops=2)])

    def allow_force_backward(self, bottom_index: int) -> bool:
        return False

    def setup(self, bottom, top):
        p = self.layer_param.accuracy_param
        self.top_k = p.top_k
        self.ignore = p.ignore_label if p.HasField("ignore_label") else None
        self.per_class = len(top) > 1

    def reshape(self, bottom, top):
        data = bottom[0]
        self.axis = self.canonical_axis(data, self.layer_param.accuracy_param.axis)
        self.outer_num = data.count(0, self.axis)
        self.inner_num = data.count(self.axis + 1)
        self.num_classes = data.shape[self.axis]
        if self.top_k > self.num_classes:
            raise self.error(f"top_k {self.top_k} must be less than or equal to the number of classes {self.num_classes}")
        if self.outer_num * self.inner_num != bottom[1].count():
            raise self.error(f"{bottom[1].count()} labels for predictions of shape {data.shape} over axis {self.axis}; "
                             f"the number of labels must match the number of predictions")
        top[0].reshape(())
        if len(top) > 1:
            top[1].reshape(self.num_classes)

    def forward_cpu(self, bottom, top):
        scores = bottom[0].data_readonly().reshape(self.outer_num, self.num_classes, self.inner_num)
        labels, valid = class_labels(self, bottom[1], self.num_classes, self.ignore)
        labels = labels.reshape(self.outer_num, 1, self.inner_num)
        valid = valid.reshape(-1)
        true_score = np.take_along_axis(scores, labels, axis=1)
        # The true class is compared with itself too, hence the -1.
        better = np.sum(scores >= true_score, axis=1).reshape(-1) - 1
        correct = (better < self.top_k) & valid
        count = int(valid.sum())
        top[0].data[...] = correct.sum() / count if count else 0
        if len(top) > 1:
            flat_labels = labels.reshape(-1)
            totals = np.bincount(flat_labels[valid], minlength=self.num_classes)
            hits = np.bincount(flat_labels[correct], minlength=self.num_classes)
            top[1].data[...] = np.divide(hits, totals, out=np.zeros(self.num_classes), where=totals > 0)

    def make_gpu(self):
        if self.per_class:
            return None  # no kernel for the per-class top
        return AccuracyGPU(axis=self.layer_param.accuracy_param.axis, top_k=self.top_k, ignore_label=self.ignore)


@register_layer("ArgMax")
class ArgMaxLayer(Layer):
    """Indices (or with out_max_val, values) of the top_k largest entries, ties going to the
    larger index as in Caffe. With `axis`: along that axis, which becomes top_k long. Without:
    over each item's flattened entries, shaped (N, 1, top_k) -- (N, 2, top_k), indices then
    values, with out_max_val -- padded with 1s to the bottom's number of axes."""

    exact_num_bottom = 1
    exact_num_top = 1
    cases = [Case("", [(4, 3, 2, 5)]),
             Case("argmax_param { top_k: 3 }", [(4, 3, 2, 5)]),
             Case("argmax_param { top_k: 3 out_max_val: true }", [(4, 10)]),
             Case("argmax_param { axis: 1 top_k: 2 }", [(4, 3, 2, 5)]),
             Case("argmax_param { axis: -1 top_k: 2 out_max_val: true }", [(4, 3, 2, 5)])]

    def allow_force_backward(self, bottom_index: int) -> bool:
        return False

    def setup(self, bottom, top):
        p = self.layer_param.argmax_param
        self.top_k = p.top_k
        self.out_max_val = p.out_max_val
        self.has_axis = p.HasField("axis")
        if self.top_k < 1:
            raise self.error("top_k must be at least 1")

    def reshape(self, bottom, top):
        data = bottom[0]
        if self.has_axis:
            self.axis = self.canonical_axis(data, self.layer_param.argmax_param.axis)
            size = data.shape[self.axis]
            shape = list(data.shape)
            shape[self.axis] = self.top_k
        else:
            size = data.count(1)
            shape = [1] * max(data.num_axes, 3)
            shape[0] = data.num
            shape[1] = 2 if self.out_max_val else 1
            shape[2] = self.top_k
        if self.top_k > size:
            raise self.error(f"top_k {self.top_k} is larger than the {size} entries it chooses from")
        top[0].reshape(shape)

    def forward_cpu(self, bottom, top):
        data = bottom[0].data_readonly()
        scores = np.moveaxis(data, self.axis, -1) if self.has_axis else data.reshape(bottom[0].num, -1)
        size = scores.shape[-1]
        # A stable sort of the reversed, negated scores: descending, ties to the larger index.
        order = np.argsort(-scores[..., ::-1], axis=-1, kind="stable")[..., : self.top_k]
        indices = size - 1 - order
        values = np.take_along_axis(scores, indices, axis=-1)
        if self.has_axis:
            result = values if self.out_max_val else indices
            top[0].data[...] = np.moveaxis(result, -1, self.axis)
        elif self.out_max_val:
            top[0].data[...] = np.stack([indices, values], axis=1).reshape(top[0].shape)
        else:
            top[0].data[...] = indices.reshape(top[0].shape)
