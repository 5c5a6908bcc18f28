"""DataTransformer: the per-image preprocessing of data layers (Caffe's `transform_param`).

For a CxHxW image: crop (`crop_size`: a random window in TRAIN, the centre in TEST), subtract the
mean (`mean_file`, a full-size .binaryproto cropped at the same window, or `mean_value`, one or
one per channel), mirror left-right (`mirror`, at random in TRAIN), multiply by `scale`; i.e.
out = (image[crop] - mean[crop]) * scale, mirrored, as Caffe computes it. `force_color` /
`force_gray` choose how encoded datums are decoded.

One deviation: Caffe also mirrors at random in TEST when `mirror: true`; here TEST is
deterministic (no mirror), as evaluation should be. Random numbers come from a stream of the
transformer's own, seeded from nvcaffe_py.rng when it is created, so that a prefetch thread can
draw from it while the main thread draws from the process stream, and a seeded run repeats.
"""
import logging

import numpy as np

from . import formats, rng
from .datum import datum_to_array
from .errors import CaffeError
from .proto import caffe_pb2

log = logging.getLogger(__name__)


def read_mean(param, dtype):
    """transform_param's mean_file as a (C, H, W) array, None without one."""
    if param.HasField("mean_file") and len(param.mean_value):
        raise CaffeError("transform_param: cannot specify mean_file and mean_value at the same time")
    if not param.HasField("mean_file"):
        return None
    mean = formats.read_mean_binaryproto(param.mean_file)
    if mean.ndim == 4 and mean.shape[0] == 1:
        mean = mean[0]
    if mean.ndim != 3:
        raise CaffeError(f"{param.mean_file}: a mean must have shape (1, C, H, W), not {mean.shape}")
    return mean.astype(dtype)


class DataTransformer:
    def __init__(self, param, phase, dtype=np.float32):
        self.param = param
        self.phase = phase
        self.dtype = np.dtype(dtype)
        if param.force_color and param.force_gray:
            raise CaffeError("transform_param: cannot set both force_color and force_gray")
        for field in ("resize_param", "noise_param", "distort_param", "expand_param", "emit_constraint", "crop_h",
                      "crop_w"):
            if param.HasField(field):
                raise CaffeError(f"transform_param.{field} (SSD's) is read by AnnotatedData layers only")
        self.mean = read_mean(param, self.dtype)
        self.mean_values = np.asarray(param.mean_value, dtype=self.dtype)
        self.scale = self.dtype.type(param.scale)
        self._random = np.random.default_rng(int(rng.generator().integers(2 ** 63)))
        self._checked_shape = None
        self._warned_force = False

    # -- decoding --------------------------------------------------------------------------------
    def datum_image(self, datum) -> np.ndarray:
        """The datum's CxHxW image, decoded as force_color / force_gray ask."""
        p = self.param
        if datum.encoded:
            return datum_to_array(datum, True if p.force_color else (False if p.force_gray else None))
        if (p.force_color or p.force_gray) and not self._warned_force:
            self._warned_force = True
            log.warning("transform_param: force_color and force_gray apply only to encoded datums")
        return datum_to_array(datum)

    # -- shapes ----------------------------------------------------------------------------------
    def output_shape(self, image_shape) -> tuple:
        """(C, h, w) of the transformed image; raises CaffeError when the options do not fit it."""
        channels, height, width = image_shape
        crop = self.param.crop_size
        if crop and (crop > height or crop > width):
            raise CaffeError(f"transform_param: crop_size {crop} is larger than the {height}x{width} image")
        if self.mean is not None and self.mean.shape != tuple(image_shape):
            raise CaffeError(f"transform_param: mean_file '{self.param.mean_file}' has shape {self.mean.shape} "
                             f"but the image is {tuple(image_shape)}")
        if len(self.mean_values) not in (0, 1, channels):
            raise CaffeError(f"transform_param: give 1 mean_value or one per channel ({channels}), "
                             f"not {len(self.mean_values)}")
        return (channels, crop, crop) if crop else (channels, height, width)

    # -- the transform ---------------------------------------------------------------------------
    def transform(self, image: np.ndarray, out: np.ndarray):
        """Write the transformed CxHxW `image` into `out`; returns (h_off, w_off, mirrored)."""
        if image.shape != self._checked_shape:
            self.output_shape(image.shape)
            self._checked_shape = image.shape
        _, height, width = image.shape
        train = self.phase == caffe_pb2.TRAIN
        # Caffe's draw order: the mirror coin first (only when mirroring), then the crop offsets.
        mirrored = bool(self.param.mirror and train and self._random.integers(2))
        h, w, h_off, w_off = height, width, 0, 0
        crop = self.param.crop_size
        if crop:
            h = w = crop
            if train:
                h_off = int(self._random.integers(height - crop + 1))
                w_off = int(self._random.integers(width - crop + 1))
            else:
                h_off, w_off = (height - crop) // 2, (width - crop) // 2
        window = (slice(None), slice(h_off, h_off + h), slice(w_off, w_off + w))
        region = image[window]
        if self.mean is not None:
            mean = self.mean[window]
        elif len(self.mean_values):
            mean = self.mean_values[:, np.newaxis, np.newaxis]
        else:
            mean = None
        if mirrored:
            region = region[:, :, ::-1]
            mean = None if mean is None else mean[:, :, ::-1]
        if mean is None:
            out[...] = region
        else:
            np.subtract(region, mean, out=out, dtype=self.dtype)
        if self.scale != 1:
            out *= self.scale
        return h_off, w_off, mirrored
