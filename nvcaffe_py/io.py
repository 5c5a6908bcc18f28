"""pycaffe's `caffe.io`: BlobProto/Datum <-> arrays, image loading and resizing, and the
Transformer that turns images into network input (HxWxC RGB floats in [0, 1] -> CxHxW)."""
import numpy as np

from . import datum as _datum
from .errors import CaffeError, InvalidValueError
from .formats import array_from_blob_proto, blob_to_proto
from .lazy_import import cv2
from .proto import caffe_pb2


# -- BlobProto ---------------------------------------------------------------------------------
def blobproto_to_array(blob, return_diff=False):
    """The data (or diff) as a float64 array, as pycaffe's; ValueError where the values do not fit
    the shape."""
    return array_from_blob_proto(blob, np.float64, diff=return_diff)


def array_to_blobproto(arr, diff=None):
    return blob_to_proto(np.asarray(arr), None if diff is None else np.asarray(diff))


def arraylist_to_blobprotovector_str(arraylist):
    vec = caffe_pb2.BlobProtoVector()
    vec.blobs.extend(array_to_blobproto(arr) for arr in arraylist)
    return vec.SerializeToString()


def blobprotovector_str_to_arraylist(payload):
    vec = caffe_pb2.BlobProtoVector()
    vec.ParseFromString(payload)
    return [blobproto_to_array(blob) for blob in vec.blobs]


# -- Datum -------------------------------------------------------------------------------------
def array_to_datum(arr, label=None):
    """A CxHxW array as a Datum: uint8 arrays go to `data` bytes, others to `float_data`."""
    if np.ndim(arr) != 3:
        raise ValueError("Incorrect array shape: a datum holds a 3-axis (channels, height, width) array")
    datum = _datum.array_to_datum(arr, 0 if label is None else label)
    if label is None:
        datum.ClearField("label")
    return datum


def datum_to_array(datum):
    return _datum.datum_to_array(datum)


# -- images ------------------------------------------------------------------------------------
def load_image(filename, color=True):
    """An image as HxWx3 (or HxWx1 when color=False) float32 RGB in [0, 1], as pycaffe's."""
    image = cv2.imread(str(filename), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise CaffeError(f"{filename}: cannot read image (missing file or unknown format)")
    if image.dtype == np.uint16:
        image = (image / 257).astype(np.uint8)
    image = image.astype(np.float32) / 255.0
    if image.ndim == 2:
        image = image[:, :, np.newaxis]
    elif image.shape[2] == 4:
        image = image[:, :, :3]
    if image.shape[2] == 3:
        image = image[:, :, ::-1]  # OpenCV reads BGR; pycaffe's images are RGB
    if color and image.shape[2] == 1:
        image = np.tile(image, (1, 1, 3))
    elif not color and image.shape[2] == 3:
        # pycaffe reads through skimage's rgb2gray: Rec. 709 luma weights, not OpenCV's 601 ones.
        image = image.dot(np.array([0.2125, 0.7154, 0.0721], np.float32))[:, :, np.newaxis]
    return np.ascontiguousarray(image)


# pycaffe's interp_order (scipy's spline order) as OpenCV's interpolation; orders past 3 are linear
_INTERPOLATION = {0: "INTER_NEAREST", 1: "INTER_LINEAR", 2: "INTER_CUBIC", 3: "INTER_CUBIC"}


def resize_image(im, new_dims, interp_order=1):
    """Resize HxWxK to new_dims (height, width); any number of channels."""
    height, width = int(new_dims[0]), int(new_dims[1])
    interpolation = getattr(cv2, _INTERPOLATION.get(interp_order, "INTER_LINEAR"))
    im = np.asarray(im, np.float32)
    channels = [cv2.resize(im[:, :, c], (width, height), interpolation=interpolation) for c in range(im.shape[2])]
    return np.stack(channels, axis=2)


def oversample(images, crop_dims):
    """Ten crops per image: four corners and centre, and their mirrors (pycaffe's oversample)."""
    crop_dims = np.asarray(crop_dims)
    im_shape = np.asarray(images[0].shape[:2])
    h_indices = (0, im_shape[0] - crop_dims[0])
    w_indices = (0, im_shape[1] - crop_dims[1])
    boxes = [(i, j, i + crop_dims[0], j + crop_dims[1]) for i in h_indices for j in w_indices]
    centre = np.tile(im_shape / 2.0, (1, 2))[0] + np.concatenate([-crop_dims / 2.0, crop_dims / 2.0])
    boxes.append(tuple(centre.astype(int)))
    crops = []
    for im in images:
        own = [im[y0:y1, x0:x1, :] for y0, x0, y1, x1 in boxes]
        crops.extend(own)
        crops.extend(c[:, ::-1, :] for c in own)
    return np.asarray(crops, dtype=np.float32)


class Transformer:
    """Prepares images for a net's input blobs: resize, transpose, channel swap, raw scale,
    mean subtraction, input scale — in pycaffe's order — and undoes it (`deprocess`)."""

    def __init__(self, inputs):
        self.inputs = {name: tuple(shape) for name, shape in inputs.items()}
        self.transpose, self.channel_swap, self.raw_scale = {}, {}, {}
        self.mean, self.input_scale = {}, {}

    def _check_input(self, name):
        if name not in self.inputs:
            raise CaffeError(f"{name} is not one of the net inputs: {', '.join(self.inputs)}")

    def set_transpose(self, name, order):
        self._check_input(name)
        if len(order) != len(self.inputs[name]) - 1:
            raise CaffeError("transpose order needs to have the same number of dimensions as the input")
        self.transpose[name] = order

    def set_channel_swap(self, name, order):
        self._check_input(name)
        if len(order) != self.inputs[name][1]:
            raise CaffeError("channel swap needs to have the same number of dimensions as the input channels")
        self.channel_swap[name] = order

    def set_raw_scale(self, name, scale):
        self._check_input(name)
        self.raw_scale[name] = scale

    def set_mean(self, name, mean):
        """mean: per-channel (C,), a full (C, H, W) mean image or an (H, W) one for every channel; a
        mean image bigger than the input gives its centre (BVLC's refuses it)."""
        self._check_input(name)
        mean = np.asarray(mean, np.float32)
        if mean.ndim == 2:
            mean = mean[np.newaxis]
        if mean.ndim == 1:
            if mean.shape[0] != self.inputs[name][1]:
                raise InvalidValueError("mean channels incompatible with input")
            mean = mean[:, np.newaxis, np.newaxis]
        elif mean.shape[1:] != self.inputs[name][2:]:
            ms = mean.shape[1:]
            if mean.ndim != 3 or ms[0] < self.inputs[name][2] or ms[1] < self.inputs[name][3]:
                raise InvalidValueError(f"mean shape {mean.shape} incompatible with input shape {self.inputs[name]}")
        self.mean[name] = mean

    def set_input_scale(self, name, scale):
        self._check_input(name)
        self.input_scale[name] = scale

    def _mean_like(self, in_, image):
        """The mean to subtract from (or add back to) a CxHxW image; of a bigger mean image, its centre."""
        mean = self.mean[in_]
        (height, width), (mean_height, mean_width) = image.shape[-2:], mean.shape[1:]
        if (mean_height, mean_width) not in ((1, 1), (height, width)):
            top, left = (mean_height - height) // 2, (mean_width - width) // 2
            mean = mean[:, top:top + height, left:left + width]
        return mean

    def preprocess(self, in_, data):
        self._check_input(in_)
        caffe_in = np.asarray(data, np.float32)
        input_dims = self.inputs[in_][2:]
        if caffe_in.shape[:2] != tuple(input_dims):
            caffe_in = resize_image(caffe_in, input_dims)
        if in_ in self.transpose:
            caffe_in = caffe_in.transpose(self.transpose[in_])
        if in_ in self.channel_swap:
            caffe_in = caffe_in[self.channel_swap[in_], :, :]
        if in_ in self.raw_scale:
            caffe_in = caffe_in * self.raw_scale[in_]
        if in_ in self.mean:
            caffe_in = caffe_in - self._mean_like(in_, caffe_in)
        if in_ in self.input_scale:
            caffe_in = caffe_in * self.input_scale[in_]
        return np.ascontiguousarray(caffe_in, dtype=np.float32)

    def deprocess(self, in_, data):
        self._check_input(in_)
        decaf_in = np.array(data, np.float32).squeeze()
        if in_ in self.input_scale:
            decaf_in = decaf_in / self.input_scale[in_]
        if in_ in self.mean:
            decaf_in = decaf_in + self._mean_like(in_, decaf_in)
        if in_ in self.raw_scale:
            decaf_in = decaf_in / self.raw_scale[in_]
        if in_ in self.channel_swap:
            decaf_in = decaf_in[np.argsort(self.channel_swap[in_]), :, :]
        if in_ in self.transpose:
            decaf_in = decaf_in.transpose(np.argsort(self.transpose[in_]))
        return decaf_in
