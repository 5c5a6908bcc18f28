"""DetectionEvaluate (SSD, weiliu89/caffe): which detections are true and false positives.

Bottoms: DetectionOutput's detections (1, 1, D, 7: item, label, score, xmin, ymin, xmax, ymax;
label -1 rows are placeholders) and AnnotatedData's ground truth (1, 1, G, 8; item_id -1 rows end
it). The top is (1, 1, K + V, 5) rows, as the fork lays them out for the solver's detection test:
first, per class other than background_label_id, (-1, class, number of ground-truth boxes,
-1, -1) (difficult ones counted only with evaluate_difficult_gt); then per valid detection, by
item and class and, within one, by descending score, (item, class, score, tp, fp): a detection
is a true positive when its best-overlapping ground-truth box of its class overlaps it by at
least overlap_threshold and was not taken by a higher-scoring detection; one whose best box is
difficult (not evaluated) is neither (0, 0). solvers/detection_test.py turns the rows of all
test batches into average precision per class and their mean (the log's `detection_eval`).

Boxes are compared in normalized coordinates, or with `name_size_file` (lines "name height
width", the test set's images in order, as the fork's get_image_size writes them) in the pixels
of the original images: each image's detections and ground truth of a class go back through
bbox.output_boxes (resize_param: how the net's input was made from the image) and are compared by
bbox.pixel_overlaps. As in the fork, the images take the file's sizes in turn, one per image that
has a detection row (a placeholder row counts), across forwards, starting over after the last.
"""
import numpy as np

from nvcaffe_py import files
from nvcaffe_py.conformance import Case, fixed
from nvcaffe_py.errors import CaffeError
from nvcaffe_py.layer import Layer
from nvcaffe_py.registry import register_layer

from .bbox import output_boxes, pairwise_overlaps, pixel_overlaps

# Two images, classes 1 and 2 (background 0): duplicates, a miss, a difficult box, an image with
# detections and no ground truth, and a placeholder row.
_DETECTIONS = fixed(np.array([
    [0, 1, 0.9, 0.1, 0.1, 0.4, 0.4], [0, 1, 0.8, 0.12, 0.1, 0.42, 0.4], [0, 1, 0.3, 0.6, 0.6, 0.9, 0.9],
    [0, 2, 0.7, 0.5, 0.5, 0.8, 0.8], [1, 2, 0.6, 0.2, 0.2, 0.5, 0.6], [1, -1, -1, -1, -1, -1, -1],
    [2, 1, 0.5, 0.1, 0.1, 0.3, 0.3]], np.float64)[None, None])
_TRUTH = fixed(np.array([
    [0, 1, 0, 0.1, 0.1, 0.4, 0.4, 0], [0, 1, 1, 0.6, 0.6, 0.9, 0.9, 1], [0, 2, 0, 0.1, 0.5, 0.3, 0.9, 0],
    [1, 2, 0, 0.2, 0.2, 0.5, 0.55, 0]], np.float64)[None, None])


def read_name_sizes(path):
    """The (height, width) of each line "name height width" of a name-size file, in order."""
    sizes = []
    text = files.read_regular(path).decode("utf-8", errors="replace")
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        try:
            _, height, width = fields
            height, width = int(height), int(width)
        except ValueError:  # too few or many fields, or not integers
            height = width = 0
        if height <= 0 or width <= 0:
            raise CaffeError(f"{path}:{number}: expected 'name height width' with positive sizes, not {line.strip()!r}")
        sizes.append((height, width))
    if not sizes:
        raise CaffeError(f"{path}: no 'name height width' line")
    return sizes


@register_layer("DetectionEvaluate")
class DetectionEvaluateLayer(Layer):
    exact_num_bottom = 2
    exact_num_top = 1
    reshape_reads_data = True  # the top's rows count the valid detections
    cases = [Case("detection_evaluate_param { num_classes: 3 }", [_DETECTIONS, _TRUTH]),
             Case("detection_evaluate_param { num_classes: 3 evaluate_difficult_gt: false overlap_threshold: 0.7 }",
                  [_DETECTIONS, _TRUTH]),
             Case("detection_evaluate_param { num_classes: 4 background_label_id: 3 }", [_DETECTIONS, _TRUTH])]

    def setup(self, bottom, top):
        p = self.layer_param.detection_evaluate_param
        if not p.HasField("num_classes"):
            raise self.error("detection_evaluate_param.num_classes must be given")
        if p.overlap_threshold <= 0:
            raise self.error(f"overlap_threshold must be positive (got {p.overlap_threshold:g})")
        self.sizes, self.count = [], 0  # the original images' (height, width); the next image's place
        if p.name_size_file:
            try:
                self.sizes = read_name_sizes(p.name_size_file)
            except CaffeError as exc:
                raise self.error(f"name_size_file {exc}") from None
            if p.HasField("resize_param") and (p.resize_param.height <= 0 or p.resize_param.width <= 0):
                raise self.error("resize_param needs a positive height and width")
        self.resize = p.resize_param if p.HasField("resize_param") else None
        self.num_classes = p.num_classes
        self.background = p.background_label_id
        self.threshold, self.difficult_counts = p.overlap_threshold, p.evaluate_difficult_gt

    def reshape(self, bottom, top):
        for blob, width, what in ((bottom[0], 7, "detections"), (bottom[1], 8, "ground truth")):
            shape = blob.shape
            if len(shape) != 4 or shape[:2] != (1, 1) or shape[3] != width:
                raise self.error(f"{what} must be (1, 1, rows, {width}), not {shape}")
        classes = self.num_classes - (self.background < self.num_classes)
        valid = int(np.count_nonzero(bottom[0].data_readonly()[0, 0, :, 1] != -1))
        top[0].reshape((1, 1, classes + valid, 5))

    def _truth(self, rows):
        """{item: {label: (boxes, difficult)}} up to the first item_id -1 row."""
        truth = {}
        for row in rows:
            if int(row[0]) == -1:
                break
            label = int(row[1])
            if label == self.background:
                raise self.error(f"ground truth of item {int(row[0])} has the background label {label}")
            truth.setdefault(int(row[0]), {}).setdefault(label, []).append(row[3:8])
        return {item: {label: (np.array(b)[:, :4], np.array(b)[:, 4] != 0) for label, b in labels.items()}
                for item, labels in truth.items()}

    def forward_cpu(self, bottom, top):
        detections = bottom[0].data_readonly()[0, 0].astype(np.float64)
        truth = self._truth(bottom[1].data_readonly()[0, 0].astype(np.float64))
        rows = []
        for c in range(self.num_classes):
            if c == self.background:
                continue
            difficult = [labels[c][1] for labels in truth.values() if c in labels]
            count = sum(len(d) if self.difficult_counts else int(np.count_nonzero(~d)) for d in difficult)
            rows.append([-1, c, count, -1, -1])
        found = {}  # every item with a row, placeholders included: each takes a size in turn
        for row in detections:
            if int(row[0]) == -1:
                continue
            labels = found.setdefault(int(row[0]), {})
            if int(row[1]) == -1:
                continue
            if int(row[1]) == self.background:
                raise self.error(f"detections of item {int(row[0])} have the background label {int(row[1])}")
            labels.setdefault(int(row[1]), []).append(row)
        for item in sorted(found):
            size = self.sizes[self.count] if self.sizes else None
            if self.sizes:
                self.count = (self.count + 1) % len(self.sizes)
            for label in sorted(found[item]):
                boxes = np.array(found[item][label])
                boxes = boxes[np.argsort(-boxes[:, 2], kind="stable")]
                if label not in truth.get(item, {}):
                    rows += [[item, label, score, 0, 1] for score in boxes[:, 2]]
                    continue
                gt, difficult = truth[item][label]
                if size is None:
                    overlaps = pairwise_overlaps(boxes[:, 3:7], gt)
                else:
                    detected, plus_one = output_boxes(boxes[:, 3:7], *size, self.resize)
                    overlaps = pixel_overlaps(detected, output_boxes(gt, *size, self.resize)[0], plus_one)
                taken = np.zeros(len(gt), bool)
                for k, score in enumerate(boxes[:, 2]):
                    j = int(np.argmax(overlaps[k]))
                    if overlaps[k, j] < self.threshold:
                        rows.append([item, label, score, 0, 1])
                    elif not self.difficult_counts and difficult[j]:
                        rows.append([item, label, score, 0, 0])
                    else:
                        rows.append([item, label, score, 0, 1] if taken[j] else [item, label, score, 1, 0])
                        taken[j] = True
        top[0].data[...] = np.asarray(rows, np.float64).reshape(top[0].shape)
