"""SSD's transformations of an image together with its boxes (weiliu89/caffe's annotated
DataTransformer and im_transforms.cpp), for AnnotatedData.

An `Annotated` is an HxWxC uint8 image (OpenCV's layout, BGR) and its objects: per object its
group label, instance id, box (normalized xmin, ymin, xmax, ymax) and difficult flag, in the
record's order. `AnnotatedTransformer` applies, in the fork's order:

1. `distort_param`: with their probabilities, random brightness (+delta), contrast (x factor),
   saturation and hue (in OpenCV's 8-bit HSV) and channel order; contrast comes after the
   colour changes or before them, at even odds.
2. `expand_param`: with probability `prob`, the image on a canvas up to max_expand_ratio times
   its size filled with the mean values (zoom out).
3. a window of batch_sampler (layers/batch_sampler.py), chosen at random among those found.
4. `resize_param` (WARP to height x width, interpolation drawn among interp_mode), crop_size or
   crop_h/crop_w (random in TRAIN, centred in TEST), `mirror` (at random, TRAIN only), then mean
   subtraction and scale, written as CxHxW.

After every step that moves pixels, each box is projected into the new window and clipped; a box
left without area is dropped, and with `emit_constraint` one whose centre is outside the window
(CENTER) or that the window covers by no more than emit_overlap (MIN_OVERLAP) is dropped first.

Where we differ from the fork: steps work on decoded pixels (the fork re-encodes JPEG after each
step, losing quality); TEST never mirrors (as our DataTransformer); resize modes other than WARP
and noise_param are refused with an error.
"""
from dataclasses import dataclass

import numpy as np

from nvcaffe_py import rng
from nvcaffe_py.datum import chw_to_image, datum_to_array
from nvcaffe_py.errors import CaffeError
from nvcaffe_py.lazy_import import cv2
from nvcaffe_py.proto import caffe_pb2

from .bbox import box_sizes, coverages

ResizeParameter = caffe_pb2.ResizeParameter
EmitType = caffe_pb2.EmitConstraint.EmitType
# resize_param's interp_mode as OpenCV's flag's name (OpenCV loads on first use: lazy_import)
_INTERPOLATION = {ResizeParameter.LINEAR: "INTER_LINEAR", ResizeParameter.AREA: "INTER_AREA",
                  ResizeParameter.NEAREST: "INTER_NEAREST", ResizeParameter.CUBIC: "INTER_CUBIC",
                  ResizeParameter.LANCZOS4: "INTER_LANCZOS4"}
UNIT = np.array([0.0, 0.0, 1.0, 1.0])


@dataclass
class Annotated:
    image: np.ndarray        # H x W x C uint8
    labels: np.ndarray       # (K,) group labels
    instances: np.ndarray    # (K,) instance ids
    boxes: np.ndarray        # (K, 4) normalized
    difficult: np.ndarray    # (K,) bool

    @classmethod
    def from_record(cls, anno_datum, color=None):
        """An AnnotatedDatum's image (decoded as `color` says, as datum_to_array) and boxes."""
        image = chw_to_image(datum_to_array(anno_datum.datum, color))
        if image.dtype != np.uint8:
            raise CaffeError("AnnotatedData needs 8-bit images (encoded or raw bytes), not float_data")
        if image.ndim == 2:
            image = image[:, :, None]
        rows = [(group.group_label, a.instance_id, a.bbox.xmin, a.bbox.ymin, a.bbox.xmax, a.bbox.ymax,
                 a.bbox.difficult) for group in anno_datum.annotation_group for a in group.annotation]
        rows = np.asarray(rows, np.float64).reshape(-1, 7)
        return cls(image, rows[:, 0].astype(np.int64), rows[:, 1].astype(np.int64), rows[:, 2:6], rows[:, 6] != 0)

    def keep(self, mask, boxes):
        return Annotated(self.image, self.labels[mask], self.instances[mask], boxes[mask], self.difficult[mask])

    def label_rows(self, item_id) -> np.ndarray:
        """SSD's label layout: (K, 8) rows item_id, group_label, instance_id, xmin, ymin, xmax, ymax, difficult."""
        count = len(self.labels)
        return np.column_stack([np.full(count, item_id), self.labels, self.instances, self.boxes,
                                self.difficult]).astype(np.float64).reshape(-1, 8)


def project(annotated, window, emit_constraint=None, image=None):
    """TransformAnnotation: the boxes seen through `window` (normalized, in the current image),
    clipped, those without area (or failing emit_constraint) dropped; `image` the new pixels."""
    boxes = annotated.boxes
    keep = np.ones(len(boxes), bool)
    if emit_constraint is not None and len(boxes):
        if emit_constraint.emit_type == EmitType.Value("CENTER"):
            cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
            keep &= (cx >= window[0]) & (cx <= window[2]) & (cy >= window[1]) & (cy <= window[3])
        else:
            keep &= coverages(boxes, window[None])[:, 0] > emit_constraint.emit_overlap
    outside = (boxes[:, 0] >= window[2]) | (boxes[:, 2] <= window[0]) | (boxes[:, 1] >= window[3]) | (boxes[:, 3] <= window[1])
    keep &= ~outside
    size = np.array([window[2] - window[0], window[3] - window[1]] * 2)
    projected = np.clip((boxes - np.tile(window[:2], 2)) / size, 0, 1)
    keep &= box_sizes(projected) > 0
    result = annotated.keep(keep, projected)
    if image is not None:
        result.image = image
    return result


def _affine(pixels, scale, shift):
    """OpenCV's convertTo(scale, shift) on uint8 pixels (rounded, saturated), as a lookup table."""
    table = np.clip(np.rint(np.arange(256) * scale + shift), 0, 255).astype(np.uint8)
    return cv2.LUT(pixels, table).reshape(pixels.shape)


class AnnotatedTransformer:
    def __init__(self, param, phase, dtype=np.float32):
        self.param, self.phase, self.dtype = param, phase, np.dtype(dtype)
        if param.HasField("noise_param"):
            raise CaffeError("transform_param.noise_param is not supported")
        if param.HasField("resize_param"):
            r = param.resize_param
            if r.resize_mode != ResizeParameter.WARP:
                raise CaffeError(f"resize_param.resize_mode {ResizeParameter.Resize_mode.Name(r.resize_mode)} is not "
                                 f"supported; use WARP")
            if r.height <= 0 or r.width <= 0:
                raise CaffeError("resize_param needs a positive height and width")
        if param.HasField("mean_file"):
            raise CaffeError("AnnotatedData takes mean_value, not mean_file (its images change size)")
        if param.force_color and param.force_gray:
            raise CaffeError("transform_param: cannot set both force_color and force_gray")
        self.crop = (param.crop_size, param.crop_size) if param.crop_size else (param.crop_h, param.crop_w)
        if (self.crop[0] > 0) != (self.crop[1] > 0):
            raise CaffeError("transform_param: give both crop_h and crop_w")
        self.color = True if param.force_color else (False if param.force_gray else None)
        self.mean_values = np.asarray(param.mean_value, np.float64)
        self.random = np.random.default_rng(int(rng.generator().integers(2 ** 63)))

    def _uniform(self, low, high):
        return self.random.uniform(low, high)

    def _happens(self, probability):
        return self._uniform(0, 1) < probability

    # -- 1. photometric distortion -------------------------------------------------------------
    def distort(self, annotated):
        if not self.param.HasField("distort_param"):
            return annotated
        d, image = self.param.distort_param, annotated.image
        steps = [self._brightness, self._contrast, self._saturation, self._hue]
        if self._uniform(0, 1) <= 0.5:
            steps = [self._brightness, self._saturation, self._hue, self._contrast]
        for step in steps:
            image = step(d, image)
        if self._happens(d.random_order_prob) and image.shape[2] == 3:
            image = np.ascontiguousarray(image[:, :, self.random.permutation(3)])
        return Annotated(image, annotated.labels, annotated.instances, annotated.boxes, annotated.difficult)

    def _brightness(self, d, image):
        if self._happens(d.brightness_prob):
            delta = self._uniform(-d.brightness_delta, d.brightness_delta)
            return _affine(image, 1, delta) if delta else image
        return image

    def _contrast(self, d, image):
        if self._happens(d.contrast_prob):
            factor = self._uniform(d.contrast_lower, d.contrast_upper)
            return _affine(image, factor, 0) if abs(factor - 1) > 1e-3 else image
        return image

    def _hsv_channel(self, image, channel, scale, shift):
        if image.shape[2] != 3:
            return image
        hsv = cv2.cvtColor(image, cv2.COLOR_BGR2HSV)
        hsv[:, :, channel] = _affine(hsv[:, :, channel], scale, shift)
        return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)

    def _saturation(self, d, image):
        if self._happens(d.saturation_prob):
            return self._hsv_channel(image, 1, self._uniform(d.saturation_lower, d.saturation_upper), 0)
        return image

    def _hue(self, d, image):
        if self._happens(d.hue_prob):
            delta = self._uniform(-d.hue_delta, d.hue_delta)
            return self._hsv_channel(image, 0, 1, delta) if delta else image
        return image

    # -- 2. expansion ----------------------------------------------------------------------------
    def expand(self, annotated):
        if not self.param.HasField("expand_param"):
            return annotated
        e = self.param.expand_param
        if self._uniform(0, 1) > e.prob or abs(e.max_expand_ratio - 1) < 1e-2:
            return annotated
        ratio = self._uniform(1, e.max_expand_ratio)
        image = annotated.image
        height, width, channels = image.shape
        new_h, new_w = int(height * ratio), int(width * ratio)
        top = int(np.floor(self._uniform(0, new_h - height)))
        left = int(np.floor(self._uniform(0, new_w - width)))
        canvas = cv2.copyMakeBorder(image, top, new_h - height - top, left, new_w - width - left, cv2.BORDER_CONSTANT,
                                    value=[float(v) for v in self._fill(channels)])
        if canvas.ndim == 2:
            canvas = canvas[:, :, None]
        window = np.array([-left / width, -top / height, (new_w - left) / width, (new_h - top) / height])
        return project(annotated, window, image=canvas)

    def _fill(self, channels):
        """The expansion canvas's colour: the mean values (as 8-bit pixels), else black."""
        if len(self.mean_values) in (1, channels):
            return np.clip(np.rint(np.resize(self.mean_values, channels)), 0, 255)
        if len(self.mean_values):
            raise CaffeError(f"transform_param: give 1 mean_value or one per channel ({channels}), "
                             f"not {len(self.mean_values)}")
        return np.zeros(channels)

    # -- 3. a sampled window ---------------------------------------------------------------------
    def crop_to(self, annotated, window):
        """CropImage: the pixels of `window` (clipped to the image) and the boxes inside it."""
        window = np.clip(window, 0, 1)
        height, width = annotated.image.shape[:2]
        x0, y0 = int(window[0] * width), int(window[1] * height)
        w, h = int(window[2] * width - window[0] * width), int(window[3] * height - window[1] * height)
        if w <= 0 or h <= 0:
            return annotated
        image = np.ascontiguousarray(annotated.image[y0:y0 + h, x0:x0 + w])
        return project(annotated, window, self._emit(), image=image)

    def _emit(self):
        return self.param.emit_constraint if self.param.HasField("emit_constraint") else None

    # -- 4. resize, crop, mirror, mean and scale ----------------------------------------------
    def output_shape(self, image_shape):
        """(C, H, W) of the transformed image of an H x W x C one."""
        height, width, channels = image_shape
        if self.param.HasField("resize_param"):
            height, width = self.param.resize_param.height, self.param.resize_param.width
        if self.crop[0]:
            if self.crop[0] > height or self.crop[1] > width:
                raise CaffeError(f"transform_param: crop {self.crop[0]}x{self.crop[1]} is larger than the "
                                 f"{height}x{width} image")
            height, width = self.crop
        if len(self.mean_values) not in (0, 1, channels):
            raise CaffeError(f"transform_param: give 1 mean_value or one per channel ({channels}), "
                             f"not {len(self.mean_values)}")
        return channels, height, width

    def transform(self, annotated, out):
        """Write the final CxHxW image into `out`; returns the annotations in its coordinates."""
        p = self.param
        train = self.phase == caffe_pb2.TRAIN
        mirrored = bool(p.mirror and train and self.random.integers(2))
        image = annotated.image
        if p.HasField("resize_param"):
            r = p.resize_param
            modes = list(r.interp_mode)
            mode = modes[int(self.random.integers(len(modes)))] if modes else ResizeParameter.LINEAR
            image = cv2.resize(image, (r.width, r.height), interpolation=getattr(cv2, _INTERPOLATION[mode]))
            if image.ndim == 2:
                image = image[:, :, None]
        height, width = image.shape[:2]
        window = UNIT
        if self.crop[0]:
            crop_h, crop_w = self.crop
            if train:
                top, left = int(self.random.integers(height - crop_h + 1)), int(self.random.integers(width - crop_w + 1))
            else:
                top, left = (height - crop_h) // 2, (width - crop_w) // 2
            image = image[top:top + crop_h, left:left + crop_w]
            window = np.array([left / width, top / height, (left + crop_w) / width, (top + crop_h) / height])
        result = project(annotated, window, self._emit())
        if mirrored:
            image = image[:, ::-1]
            result.boxes = np.column_stack([1 - result.boxes[:, 2], result.boxes[:, 1], 1 - result.boxes[:, 0],
                                            result.boxes[:, 3]])
        pixels = image.transpose(2, 0, 1).astype(self.dtype)
        if len(self.mean_values):
            pixels -= np.resize(self.mean_values, pixels.shape[0]).astype(self.dtype)[:, None, None]
        if p.scale != 1:
            pixels *= self.dtype.type(p.scale)
        out[...] = pixels
        return result
