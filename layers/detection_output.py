"""DetectionOutput (SSD, weiliu89/caffe): boxes and scores to detections, per image.

Bottoms: location offsets (N, P * L * 4; L = 1 with share_location, else one set per class),
confidences (N, P * num_classes, already softmaxed by the net), and PriorBox's (1, 2, P * 4)
priors and variances (a fourth bottom, the image for the fork's visualizer, is ignored). Each
image's offsets are decoded against the priors (code_type CORNER, CENTER_SIZE or CORNER_SIZE;
variances applied unless variance_encoded_in_target; with OpenCV's `clip`, clipped to [0, 1]); per class other than background_label_id,
boxes scoring above confidence_threshold go through greedy NMS (nms_threshold, adaptive with
eta, at most nms top_k candidates); with keep_top_k the image keeps its best keep_top_k
detections over all classes. The top is (1, 1, D, 7) rows (image, label, score, xmin, ymin,
xmax, ymax), per image by label and then by score; with no detection at all, one row
(image, -1, -1, ...) per image. Saving to files and visualizing are not done (an error says so).

No GPU half: the fork too suppresses on the host; in GPU mode the inputs come down once.
"""
import numpy as np

from nvcaffe_py.conformance import Case, fixed, uniform
from nvcaffe_py.layer import Layer
from nvcaffe_py.registry import register_layer

from .bbox import decode_boxes, nms


def _priors(count, seed=3):
    """`count` random prior boxes inside the unit square and their variances, as PriorBox gives."""
    rng = np.random.default_rng(seed)
    corner = rng.uniform(0, 0.7, (count, 2))
    size = rng.uniform(0.1, 0.3, (count, 2))
    boxes = np.concatenate([corner, corner + size], axis=1).reshape(-1)
    return fixed(np.stack([boxes, np.resize([0.1, 0.1, 0.2, 0.2], boxes.size)])[None])


@register_layer("DetectionOutput")
class DetectionOutputLayer(Layer):
    min_bottom, max_bottom = 3, 4
    exact_num_top = 1
    cases = [
        Case("detection_output_param { num_classes: 3 nms_param { nms_threshold: 0.45 top_k: 10 } "
             "code_type: CENTER_SIZE keep_top_k: 6 confidence_threshold: 0.2 }",
             [uniform((2, 12 * 4), -1, 1, differentiable=False), uniform((2, 12 * 3), 0, 1, differentiable=False),
              _priors(12)]),
        Case("detection_output_param { num_classes: 2 nms_param { nms_threshold: 0.3 top_k: 5 } "
             "code_type: CENTER_SIZE confidence_threshold: 0.3 clip: true }",
             [uniform((2, 12 * 4), -2, 2, differentiable=False), uniform((2, 12 * 2), 0, 1, differentiable=False),
              _priors(12)]),
        Case("detection_output_param { num_classes: 3 share_location: false background_label_id: -1 "
             "nms_param { nms_threshold: 0.6 eta: 0.9 } code_type: CORNER variance_encoded_in_target: true }",
             [uniform((1, 8 * 3 * 4), -0.1, 0.1, differentiable=False),
              uniform((1, 8 * 3), 0, 1, differentiable=False), _priors(8)]),
    ]

    def setup(self, bottom, top):
        p = self.layer_param.detection_output_param
        if not p.HasField("num_classes"):
            raise self.error("detection_output_param needs num_classes")
        if p.save_output_param.output_directory or p.visualize:
            raise self.error("saving detections to files (save_output_param) and visualize are not supported; "
                             "read the detections from the top blob instead")
        self.num_classes, self.share_location = p.num_classes, p.share_location
        self.background = p.background_label_id
        self.code_type, self.variance_encoded = p.code_type, p.variance_encoded_in_target
        self.keep_top_k, self.clip = p.keep_top_k, p.clip
        self.confidence_threshold = p.confidence_threshold if p.HasField("confidence_threshold") else -np.inf
        nms_param = p.nms_param
        self.nms_threshold, self.eta = nms_param.nms_threshold, nms_param.eta
        self.top_k = nms_param.top_k if nms_param.HasField("top_k") else -1
        if self.nms_threshold < 0:
            raise self.error("nms_threshold must be non-negative")
        if not 0 < self.eta <= 1:
            raise self.error(f"eta must be in (0, 1], got {self.eta}")

    def reshape(self, bottom, top):
        loc_classes = 1 if self.share_location else self.num_classes
        priors = bottom[2].shape[-1] // 4
        num = bottom[0].shape[0]
        if bottom[1].shape[0] != num:
            raise self.error(f"{num} images of locations but {bottom[1].shape[0]} of confidences")
        if bottom[0].count(1) != priors * loc_classes * 4:
            raise self.error(f"{bottom[0].count(1)} location values per image for {priors} priors "
                             f"(expected {priors * loc_classes * 4})")
        if bottom[1].count(1) != priors * self.num_classes:
            raise self.error(f"{bottom[1].count(1)} confidences per image for {priors} priors and "
                             f"{self.num_classes} classes (expected {priors * self.num_classes})")
        top[0].reshape(1, 1, 1, 7)  # the real count is known after the forward, as in the fork

    def detections(self, loc, conf, prior):
        """Per image, the list of (label, score, box) rows in output order."""
        num, priors = loc.shape[0], prior.shape[-1] // 4
        loc_classes = 1 if self.share_location else self.num_classes
        boxes = decode_boxes(prior[0, 0].reshape(priors, 4), prior[0, 1].reshape(priors, 4),
                             loc.reshape(num, priors, loc_classes, 4).transpose(0, 2, 1, 3),
                             self.code_type, self.variance_encoded)
        if self.clip:
            np.clip(boxes, 0, 1, out=boxes)
        scores = conf.reshape(num, priors, self.num_classes)
        results = []
        for i in range(num):
            picked = []  # (score, label, prior index)
            for c in range(self.num_classes):
                if c == self.background:
                    continue
                label_boxes = boxes[i, 0 if self.share_location else c]
                for k in nms(label_boxes, scores[i, :, c], self.confidence_threshold, self.nms_threshold, self.eta,
                             self.top_k):
                    picked.append((scores[i, k, c], c, k))
            if -1 < self.keep_top_k < len(picked):
                order = sorted(range(len(picked)), key=lambda j: -picked[j][0])  # stable: ties keep label order
                picked = [picked[j] for j in sorted(order[:self.keep_top_k], key=lambda j: (picked[j][1], j))]
            results.append([(c, s, boxes[i, 0 if self.share_location else c, k]) for s, c, k in picked])
        return results

    def forward_cpu(self, bottom, top):
        loc, conf, prior = (b.data_readonly() for b in bottom[:3])
        per_image = self.detections(loc, conf, prior)
        rows = [[i, label, score, *box] for i, found in enumerate(per_image) for label, score, box in found]
        if not rows:
            rows = [[i] + [-1] * 6 for i in range(len(per_image))]
        top[0].reshape(1, 1, len(rows), 7)
        top[0].data[...] = np.asarray(rows, np.float64).reshape(1, 1, -1, 7)
