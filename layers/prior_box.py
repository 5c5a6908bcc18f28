"""PriorBox (SSD, weiliu89/caffe): the default boxes of one feature map, as a (1, 2, H * W * P * 4)
blob: the boxes (xmin, ymin, xmax, ymax, normalized by the image size), then their variances.

Per cell (h, w), centred at ((w + offset) * step_w, (h + offset) * step_h), and per min_size s:
a square of side s, a square of side sqrt(s * max_size) when max_sizes are given, then for each
aspect ratio r other than 1 (duplicates dropped, 1 / r added when flip) a box s * sqrt(r) wide
and s / sqrt(r) high. As the fork does, min_size and max_size are truncated to integers. The image
size is bottom[1]'s unless img_size or img_h/img_w give it, the step image / feature map unless
step or step_h/step_w do; clip limits the boxes to [0, 1]. One variance fills all four places,
four fill them in turn, none means 0.1.

The output depends on the shapes only: it is computed once per shape. There is no GPU half: in
GPU mode the table goes up with the blob, as for any CPU-only layer.
"""
import math

import numpy as np

from nvcaffe_py.conformance import Case
from nvcaffe_py.layer import Layer
from nvcaffe_py.registry import register_layer


@register_layer("PriorBox")
class PriorBoxLayer(Layer):
    min_bottom, max_bottom = 1, 2
    exact_num_top = 1
    cases = [Case("prior_box_param { min_size: 30 max_size: 60 aspect_ratio: 2 flip: true clip: true "
                  "variance: 0.1 variance: 0.1 variance: 0.2 variance: 0.2 }", [(1, 2, 3, 4), (1, 3, 30, 40)]),
             Case("prior_box_param { min_size: 10 min_size: 20.7 aspect_ratio: 3 aspect_ratio: 3 flip: false "
                  "img_h: 50 img_w: 60 step_h: 9 step_w: 11 offset: 0.25 }", [(2, 4, 5, 6)]),
             Case("prior_box_param { min_size: 16 img_size: 64 step: 16 variance: 0.2 }", [(1, 1, 4, 4)])]

    def setup(self, bottom, top):
        p = self.layer_param.prior_box_param
        has = p.HasField
        if not p.min_size:
            raise self.error("prior_box_param needs min_size")
        self.min_sizes = [int(s) for s in p.min_size]
        if any(s <= 0 for s in p.min_size):
            raise self.error("min_size must be positive")
        self.max_sizes = [int(s) for s in p.max_size]
        if self.max_sizes and len(self.max_sizes) != len(self.min_sizes):
            raise self.error(f"{len(self.max_sizes)} max_size for {len(self.min_sizes)} min_size; give one per min_size")
        if any(big <= small for big, small in zip(p.max_size, p.min_size)):
            raise self.error("max_size must be greater than min_size")
        self.aspect_ratios = [1.0]
        for ratio in p.aspect_ratio:
            if all(abs(ratio - r) >= 1e-6 for r in self.aspect_ratios):
                self.aspect_ratios += [ratio, 1 / ratio] if p.flip else [ratio]
        variance = list(p.variance) or [0.1]
        if len(variance) not in (1, 4) or min(variance) <= 0:
            raise self.error(f"give one or four positive variances, got {variance}")
        self.variance = variance
        if (has("img_h") or has("img_w")) and has("img_size"):
            raise self.error("give img_size or img_h/img_w, not both")
        self.image_size = ((p.img_h, p.img_w) if has("img_h") or has("img_w")
                           else (p.img_size, p.img_size) if has("img_size") else None)
        if (has("step_h") or has("step_w")) and has("step"):
            raise self.error("give step or step_h/step_w, not both")
        self.step = ((p.step_h, p.step_w) if has("step_h") or has("step_w")
                     else (p.step, p.step) if has("step") else None)
        for name, pair in (("image size", self.image_size), ("step", self.step)):
            if pair is not None and min(pair) <= 0:
                raise self.error(f"{name} must be positive, got {pair}")
        if self.image_size is None and len(bottom) < 2:
            raise self.error("without img_size or img_h/img_w the image comes from bottom[1]; give both bottoms")
        self.offset, self.clip = p.offset, p.clip
        self._table_key, self._table = None, None

    def box_shapes(self):
        """(width, height) of each prior of a cell, in the fork's order."""
        shapes = []
        for k, size in enumerate(self.min_sizes):
            shapes.append((size, size))
            if self.max_sizes:
                side = math.sqrt(size * self.max_sizes[k])
                shapes.append((side, side))
            shapes += [(size * math.sqrt(r), size / math.sqrt(r)) for r in self.aspect_ratios if abs(r - 1) >= 1e-6]
        return np.asarray(shapes, np.float32)

    def reshape(self, bottom, top):
        height, width = bottom[0].shape[-2:]
        top[0].reshape(1, 2, height * width * len(self.box_shapes()) * 4)

    def _compute(self, height, width, image_height, image_width):
        if self.step is None:
            step_h, step_w = np.float32(image_height) / height, np.float32(image_width) / width
        else:
            step_h, step_w = map(np.float32, self.step)
        center_y = (np.arange(height, dtype=np.float32) + np.float32(self.offset)) * step_h
        center_x = (np.arange(width, dtype=np.float32) + np.float32(self.offset)) * step_w
        half = self.box_shapes().astype(np.float64) / 2  # (P, 2)
        cx = center_x.astype(np.float64)[None, :, None]
        cy = center_y.astype(np.float64)[:, None, None]
        boxes = np.stack(np.broadcast_arrays((cx - half[:, 0]) / image_width, (cy - half[:, 1]) / image_height,
                                             (cx + half[:, 0]) / image_width, (cy + half[:, 1]) / image_height),
                         axis=-1)
        boxes = boxes.astype(np.float32).reshape(-1)
        if self.clip:
            np.clip(boxes, 0, 1, out=boxes)
        variances = np.resize(np.asarray(self.variance, np.float32), boxes.size)
        return np.stack([boxes, variances])[None]

    def priors_for(self, feature_shape, image_shape):
        """The top's values for a feature map and an image of these shapes: they depend on nothing
        else (ONNX export writes them as a constant)."""
        height, width = feature_shape[-2:]
        image = self.image_size if self.image_size is not None else image_shape[-2:]
        key = (height, width, *image)
        if key != self._table_key:
            self._table_key, self._table = key, self._compute(*key)
        return self._table

    def forward_cpu(self, bottom, top):
        top[0].data[...] = self.priors_for(bottom[0].shape, bottom[-1].shape)
