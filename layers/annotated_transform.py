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
4. `resize_param` (ApplyResize; interpolation drawn among interp_mode): WARP to height x width;
   FIT_LARGE_SIZE_AND_PAD, the image whole inside height x width, padded as pad_mode and
   pad_value say; FIT_SMALL_SIZE, its shorter side (relative to height x width) fit, the other
   longer. Then `noise_param` (ApplyNoise, every option given, in the fork's order), crop_size or
   crop_h/crop_w (random in TRAIN, centred in TEST), `mirror` (at random, TRAIN only), then the
   mean (mean_value, or mean_file: an array of the output's shape, subtracted where the fork
   subtracts it, at the output's pixels after mirroring) and scale, written as CxHxW.

After every step that moves pixels, each box is projected into the new window and clipped; a box
left without area is dropped, and with `emit_constraint` one whose centre is outside the window
(CENTER) or that the window covers by no more than emit_overlap (MIN_OVERLAP) is dropped first.
resize_param moves the boxes first (UpdateBBoxByResizePolicy: into the padded image's region for
FIT_LARGE_SIZE_AND_PAD, clipped otherwise); with FIT_SMALL_SIZE and height_scale/width_scale the
final boxes are stretched by the crop's size over those (ExtrapolateBBox).

Where we differ from the fork: steps work on decoded pixels (the fork re-encodes JPEG after each
step, losing quality); TEST never mirrors (as our DataTransformer); noise_param's jpeg keeps a
gray image gray and convert_to_lab gives OpenCV's 8-bit Lab (the fork decodes JPEG to colour,
which its shape check then refuses, and reads its float Lab image as bytes). Refused with an
error: expand_param with mean_file (the fork fills the canvas from the mean only when the random
canvas happens to be the mean's size), decolorize or convert_to_hsv/lab of a gray image and
saltpepper without saltpepper_param.value (the fork fails there too).
"""
from dataclasses import dataclass

import numpy as np

from nvcaffe_py import rng
from nvcaffe_py.data_transformer import read_mean
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
_PADDING = {ResizeParameter.CONSTANT: "BORDER_CONSTANT", ResizeParameter.MIRRORED: "BORDER_REFLECT_101",
            ResizeParameter.REPEAT_NEAREST: "BORDER_REPLICATE"}
UNIT = np.array([0.0, 0.0, 1.0, 1.0])
POSTERIZE = np.arange(256) // 64 * 64 + 32  # colorReduce's table (div 64)


def _hwc(image):
    """OpenCV's result as H x W x C (it drops a single channel's axis)."""
    return image[:, :, None] if image.ndim == 2 else image


def fit_small_size(height, width, r):
    """FIT_SMALL_SIZE's output size for a height x width image, in the fork's float32 arithmetic."""
    aspect = np.float32(width) / np.float32(height)
    if aspect < np.float32(r.width) / np.float32(r.height):
        return int(np.floor(np.float32(r.width) / aspect)), r.width
    return r.height, int(np.floor(aspect * np.float32(r.height)))


def resize_boxes(boxes, r, height, width):
    """UpdateBBoxByResizePolicy: normalized boxes of a height x width image in the image
    resize_param `r` makes of it. Each min is clipped below and each max above only, as the fork's;
    FIT_LARGE_SIZE_AND_PAD moves the padded axis into the image's region (its padding unrounded)."""
    low, high = np.maximum(boxes[:, :2], 0), np.minimum(boxes[:, 2:], 1)
    if r.resize_mode == ResizeParameter.FIT_LARGE_SIZE_AND_PAD:
        aspect = width / height
        if aspect > r.width / r.height:
            axis, size, padding = 1, r.height, (r.height - r.width / aspect) / 2
        else:
            axis, size, padding = 0, r.width, (r.width - aspect * r.height) / 2
        inner = size - 2 * padding
        low[:, axis] = (padding + np.maximum(0, boxes[:, axis] * inner)) / size
        high[:, axis] = (padding + np.minimum(size, boxes[:, axis + 2] * inner)) / size
    return np.column_stack([low, high])


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
        self.resize = param.resize_param if param.HasField("resize_param") else None
        if self.resize is not None and (self.resize.height <= 0 or self.resize.width <= 0):
            raise CaffeError("resize_param needs a positive height and width")
        self.noise = param.noise_param if param.HasField("noise_param") else None
        if self.noise is not None and self.noise.saltpepper and not self.noise.saltpepper_param.value:
            raise CaffeError("noise_param.saltpepper needs saltpepper_param.value (the pixels' new value)")
        self.mean = read_mean(param, self.dtype)
        if self.mean is not None and param.HasField("expand_param"):
            raise CaffeError("transform_param: expand_param with mean_file is not supported (the fork fills the "
                             "canvas from the mean only when it happens to be the mean's size); give mean_value")
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
        if self.resize is not None:
            if self.resize.resize_mode == ResizeParameter.FIT_SMALL_SIZE:
                height, width = fit_small_size(height, width, self.resize)
            else:
                height, width = self.resize.height, self.resize.width
        if self.crop[0]:
            if self.crop[0] > height or self.crop[1] > width:
                raise CaffeError(f"transform_param: crop {self.crop[0]}x{self.crop[1]} is larger than the "
                                 f"{height}x{width} image")
            height, width = self.crop
        if len(self.mean_values) not in (0, 1, channels):
            raise CaffeError(f"transform_param: give 1 mean_value or one per channel ({channels}), "
                             f"not {len(self.mean_values)}")
        if self.mean is not None and self.mean.shape != (channels, height, width):
            raise CaffeError(f"transform_param: mean_file '{self.param.mean_file}' has shape {self.mean.shape}; "
                             f"the transformed image is {(channels, height, width)}")
        return channels, height, width

    def _resize(self, image):
        """ApplyResize."""
        r = self.resize
        modes = list(r.interp_mode)
        mode = modes[int(self.random.integers(len(modes)))] if modes else ResizeParameter.LINEAR
        interpolation = getattr(cv2, _INTERPOLATION[mode])
        height, width, channels = image.shape
        if r.resize_mode == ResizeParameter.WARP:
            return _hwc(cv2.resize(image, (r.width, r.height), interpolation=interpolation))
        if r.resize_mode == ResizeParameter.FIT_SMALL_SIZE:
            new_h, new_w = fit_small_size(height, width, r)
            return _hwc(cv2.resize(image, (new_w, new_h), interpolation=interpolation))
        if len(r.pad_value) not in (0, 1, channels):
            raise CaffeError(f"resize_param: give 1 pad_value or one per channel ({channels}), not {len(r.pad_value)}")
        aspect = np.float32(width) / np.float32(height)
        if aspect > np.float32(r.width) / np.float32(r.height):  # at least a pixel (the fork's cv::resize fails)
            new_h, new_w = max(1, int(np.floor(np.float32(r.width) / aspect))), r.width
        else:
            new_h, new_w = r.height, max(1, int(np.floor(aspect * np.float32(r.height))))
        image = cv2.resize(image, (new_w, new_h), interpolation=interpolation)
        top, left = (r.height - new_h) // 2, (r.width - new_w) // 2
        fill = [float(v) for v in np.resize(list(r.pad_value) or [0.0], channels)]
        return _hwc(cv2.copyMakeBorder(image, top, r.height - new_h - top, left, r.width - new_w - left,
                                       getattr(cv2, _PADDING[r.pad_mode]), value=fill))

    def _apply_noise(self, image):
        """ApplyNoise: every option given, in the fork's order (prob is not read, as in the fork)."""
        n = self.noise
        color = image.shape[2] == 3
        for field in ("decolorize", "convert_to_hsv", "convert_to_lab"):
            if getattr(n, field) and not color:
                raise CaffeError(f"noise_param.{field} needs a 3-channel image, not {image.shape[2]}")
        if n.decolorize:
            image = cv2.cvtColor(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
        if n.gauss_blur:
            image = _hwc(cv2.GaussianBlur(image, (7, 7), 1.5))
        clahe = lambda plane: cv2.createCLAHE(clipLimit=4).apply(plane)  # noqa: E731
        for flag, equalize in ((n.hist_eq, cv2.equalizeHist), (n.clahe, clahe)):
            if flag and color:  # on the luma of YCrCb
                ycrcb = cv2.cvtColor(image, cv2.COLOR_BGR2YCrCb)
                ycrcb[:, :, 0] = equalize(np.ascontiguousarray(ycrcb[:, :, 0]))
                image = cv2.cvtColor(ycrcb, cv2.COLOR_YCrCb2BGR)
            elif flag:
                image = _hwc(equalize(np.ascontiguousarray(image[:, :, 0])))
        if n.jpeg > 0:
            _, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(n.jpeg)])
            image = _hwc(cv2.imdecode(encoded, cv2.IMREAD_COLOR if color else cv2.IMREAD_GRAYSCALE))
        if n.erode:
            image = _hwc(cv2.erode(image, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3), (1, 1))))
        if n.posterize:
            image = POSTERIZE.astype(np.uint8)[image]
        if n.inverse:
            image = 255 - image
        if n.saltpepper:
            height, width, channels = image.shape
            count = int(np.floor(n.saltpepper_param.fraction * width * height))
            image = image.copy()
            rows, cols = self.random.integers(height, size=count), self.random.integers(width, size=count)
            image[rows, cols] = np.resize(np.asarray(n.saltpepper_param.value).astype(np.uint8), channels)
        if n.convert_to_hsv:
            image = cv2.cvtColor(image, cv2.COLOR_BGR2HSV)
        if n.convert_to_lab:
            image = cv2.cvtColor(image, cv2.COLOR_BGR2Lab)
        return np.ascontiguousarray(image)

    def _extrapolate(self, boxes, height, width, window):
        """ExtrapolateBBox (FIT_SMALL_SIZE with height_scale and width_scale): boxes of the crop
        `window` of the resized height x width image stretched by the crop's size over the scales."""
        r = self.resize
        aspect, resize_h, resize_w = width / height, float(r.height), float(r.width)
        if aspect < resize_w / resize_h:
            resize_h = resize_w / aspect
        else:
            resize_w = resize_h * aspect
        crop_h, crop_w = resize_h * (window[3] - window[1]), resize_w * (window[2] - window[0])
        if crop_w < r.width_scale or crop_h < r.height_scale:
            raise CaffeError(f"resize_param: the crop ({crop_w:g} x {crop_h:g} of the resized image) is smaller than "
                             f"width_scale x height_scale ({r.width_scale} x {r.height_scale})")
        return boxes * ([crop_w / r.width_scale, crop_h / r.height_scale] * 2)

    def transform(self, annotated, out):
        """Write the final CxHxW image into `out`; returns the annotations in its coordinates."""
        p = self.param
        train = self.phase == caffe_pb2.TRAIN
        mirrored = bool(p.mirror and train and self.random.integers(2))
        image = annotated.image
        original_h, original_w = image.shape[:2]
        if self.resize is not None:
            image = self._resize(image)
            boxes = resize_boxes(annotated.boxes, self.resize, original_h, original_w)
            annotated = Annotated(image, annotated.labels, annotated.instances, boxes, annotated.difficult)
        if self.noise is not None:
            image = self._apply_noise(image)
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
        r = self.resize
        if r is not None and r.resize_mode == ResizeParameter.FIT_SMALL_SIZE and r.height_scale and r.width_scale:
            result.boxes = self._extrapolate(result.boxes, original_h, original_w, window)
        pixels = image.transpose(2, 0, 1).astype(self.dtype)
        if self.mean is not None:
            pixels -= self.mean
        elif len(self.mean_values):
            pixels -= np.resize(self.mean_values, pixels.shape[0]).astype(self.dtype)[:, None, None]
        if p.scale != 1:
            pixels *= self.dtype.type(p.scale)
        out[...] = pixels
        return result
