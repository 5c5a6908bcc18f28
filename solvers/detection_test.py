"""The SSD fork's detection test (weiliu89/caffe Solver::TestDetection): with the solver's
`eval_type: "detection"`, each output of the test net is DetectionEvaluate's rows (N, 5); over
test_iter batches they are collected per class, and the output's value is the mean over the
classes of their average precision (`ap_version`: "11point" as VOC2007, "MaxIntegral" as VOC2012
and ILSVRC, "Integral" the default), logged as `Test net output #k: detection_eval = 0.xx`.
"""
import numpy as np

from nvcaffe_py.errors import CaffeError

AP_VERSIONS = ("11point", "MaxIntegral", "Integral")


def average_precision(scores, true_positive, num_positives, version):
    """ComputeAP: the AP of detections (`scores`, and 1 for a true positive, 0 for a false one)
    against num_positives ground-truth boxes. Detections are ranked by descending score (ties in
    the order given)."""
    if version not in AP_VERSIONS:
        raise CaffeError(f"unknown ap_version '{version}' (known: {', '.join(AP_VERSIONS)})")
    if len(scores) == 0 or num_positives == 0:
        return 0.0
    order = np.argsort(-np.asarray(scores, np.float64), kind="stable")
    tp = np.cumsum(np.asarray(true_positive)[order])
    fp = np.cumsum(1 - np.asarray(true_positive)[order])
    precision = (tp / (tp + fp)).astype(np.float32)
    recall = (tp / num_positives).astype(np.float32)
    eps = 1e-6
    if version == "11point":  # the fork's walk: max precision at recall >= j/10, from j = 10 down
        best = np.zeros(11)
        start = len(recall) - 1
        for j in range(10, -1, -1):
            for i in range(start, -1, -1):
                if recall[i] < j / 10:
                    start = i
                    if j > 0:
                        best[j - 1] = best[j]
                    break
                best[j] = max(best[j], precision[i])
        return float(best.sum() / 11)
    if version == "MaxIntegral":
        ap, current_recall, current_precision = 0.0, recall[-1], precision[-1]
        for i in range(len(recall) - 2, -1, -1):
            current_precision = max(precision[i], current_precision)
            if abs(current_recall - recall[i]) > eps:
                ap += current_precision * abs(current_recall - recall[i])
            current_recall = recall[i]
        return float(ap + current_recall * current_precision)
    ap, previous = 0.0, 0.0
    for p, r in zip(precision, recall):
        if abs(r - previous) > eps:
            ap += p * abs(r - previous)
        previous = r
    return float(ap)


class DetectionTally:
    """The rows of one test output over the test batches: per class its positives and its
    detections' (score, tp) pairs."""

    def __init__(self):
        self.num_positives, self.detections = {}, {}

    def add(self, rows, where):
        rows = np.asarray(rows, np.float64)
        if rows.ndim < 1 or rows.size % 5 or (rows.ndim >= 1 and rows.shape[-1] != 5):
            raise CaffeError(f"{where}: with eval_type \"detection\" every test output must be DetectionEvaluate's "
                             f"rows (width 5), not shape {rows.shape}")
        for item, label, score, tp, fp in rows.reshape(-1, 5):
            label = int(label)
            if int(item) == -1:
                self.num_positives[label] = self.num_positives.get(label, 0) + int(score)
            elif int(tp) or int(fp):  # (0, 0): matched a difficult box that is not evaluated
                self.detections.setdefault(label, []).append((score, int(tp)))

    def mean_average_precision(self, version, per_class=None):
        """mAP over the classes that had a positives row; per_class(label, ap) hears each."""
        if not self.num_positives:
            return 0.0
        total = 0.0
        for label, positives in sorted(self.num_positives.items()):
            found = self.detections.get(label, [])
            ap = average_precision([s for s, _ in found], [t for _, t in found], positives, version) if found else 0.0
            if per_class is not None:
                per_class(label, ap)
            total += ap
        return total / len(self.num_positives)
