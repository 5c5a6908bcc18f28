"""Datum <-> arrays and images, as Caffe's io.cpp (CVMatToDatum, DecodeDatum*, ReadImageToDatum).

Arrays are CxHxW (Caffe's layout): uint8 for `data` bytes and decoded images, float32 for
`float_data`. Images from OpenCV are HxW or HxWxC in BGR order; Caffe keeps BGR, and so do we.
Problems raise CaffeError with a short description; callers prefix where (record key, file:line).
"""
import os

import numpy as np

from . import files
from .errors import CaffeError
from .lazy_import import cv2
from .proto import caffe_pb2


# -- arrays ----------------------------------------------------------------------------------
def image_to_chw(image: np.ndarray) -> np.ndarray:
    """An OpenCV image (HxW or HxWxC) as a contiguous CxHxW array."""
    if image.ndim == 2:
        return image[np.newaxis]
    return np.ascontiguousarray(image.transpose(2, 0, 1))


def chw_to_image(array: np.ndarray) -> np.ndarray:
    """CxHxW back to OpenCV's HxW (one channel) or HxWxC."""
    if array.shape[0] == 1:
        return array[0]
    return np.ascontiguousarray(array.transpose(1, 2, 0))


def array_to_datum(array: np.ndarray, label: int = 0) -> "caffe_pb2.Datum":
    """A CxHxW array as a raw Datum: uint8 goes to `data` bytes, anything else to `float_data`."""
    array = np.asarray(array)
    if array.ndim != 3:
        raise CaffeError(f"a Datum holds a 3-axis (channels, height, width) array, not shape {array.shape}")
    datum = caffe_pb2.Datum()
    datum.channels, datum.height, datum.width = (int(d) for d in array.shape)
    if array.dtype == np.uint8:
        datum.data = array.tobytes()
    else:
        datum.float_data.extend(array.astype(np.float32).ravel())
    datum.label = int(label)
    return datum


def parse_record(payload: bytes, message):
    """`message` (a Datum, an AnnotatedDatum, ...) parsed from a database record's bytes."""
    try:
        message.ParseFromString(payload)
    except Exception as exc:  # protobuf's DecodeError, or worse on truncated input
        raise CaffeError(f"not a valid {type(message).__name__} ({len(payload)} bytes): {exc}") from None
    return message


def parse_datum(payload: bytes) -> "caffe_pb2.Datum":
    return parse_record(payload, caffe_pb2.Datum())


def datum_to_array(datum, color=None) -> np.ndarray:
    """The datum's image as CxHxW. Encoded datums are decoded: color=None keeps the file's own
    channels (Caffe's DecodeDatumToCVMatNative), True forces 3 (BGR), False forces 1 (gray)."""
    if datum.encoded:
        return image_to_chw(decode_image(datum.data, color))
    shape = (datum.channels, datum.height, datum.width)
    if min(shape) <= 0:
        raise CaffeError(f"raw Datum has shape {shape}; channels, height and width must be positive")
    count = shape[0] * shape[1] * shape[2]
    if len(datum.data):
        if len(datum.data) != count:
            raise CaffeError(f"Datum holds {len(datum.data)} data bytes but its shape {shape} needs {count}")
        return np.frombuffer(datum.data, dtype=np.uint8).reshape(shape)
    if len(datum.float_data) != count:
        raise CaffeError(f"Datum holds {len(datum.data)} data bytes and {len(datum.float_data)} float_data "
                         f"values, but its shape {shape} needs {count}")
    return np.asarray(datum.float_data, dtype=np.float32).reshape(shape)


# -- images ----------------------------------------------------------------------------------
def _read_flag(color):
    if color is None:
        return cv2.IMREAD_UNCHANGED
    return cv2.IMREAD_COLOR if color else cv2.IMREAD_GRAYSCALE


def decode_image(payload: bytes, color=None) -> np.ndarray:
    """JPEG/PNG/... bytes as an 8-bit OpenCV image (see datum_to_array for `color`)."""
    try:
        image = cv2.imdecode(np.frombuffer(payload, dtype=np.uint8), _read_flag(color))
    except cv2.error as exc:  # an empty buffer, a size past OpenCV's limits, ...
        raise CaffeError(f"cannot decode the encoded image ({len(payload)} bytes): {exc.err}") from None
    if image is None:
        raise CaffeError(f"cannot decode the encoded image ({len(payload)} bytes)")
    if image.dtype != np.uint8:
        raise CaffeError(f"encoded image has {image.dtype} pixels; only 8-bit images are supported")
    return image


def encode_image(image: np.ndarray, encoding: str) -> bytes:
    ok, buffer = cv2.imencode("." + encoding, image)
    if not ok:
        raise CaffeError(f"OpenCV cannot encode an image as '{encoding}'")
    return buffer.tobytes()


def read_image(path, height=0, width=0, is_color=True) -> np.ndarray:
    """Caffe's ReadImageToCVMat: read in colour (BGR) or gray, resized when height and width are > 0."""
    if os.path.exists(path) and not os.path.isfile(path):  # OpenCV would block on a FIFO, read a device on
        raise CaffeError(f"image file '{path}' is not a regular file")
    image = cv2.imread(os.fspath(path), cv2.IMREAD_COLOR if is_color else cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise CaffeError(f"could not open or decode image file '{path}'")
    if height > 0 and width > 0:
        image = cv2.resize(image, (width, height))
    return image


def _extension_matches(path, encoding: str) -> bool:
    ext = os.path.splitext(os.fspath(path))[1][1:].lower()
    encoding = encoding.lower()
    return ext == encoding or (encoding == "jpg" and ext == "jpeg")


def read_image_to_datum(path, label, height=0, width=0, is_color=True, encoding="") -> "caffe_pb2.Datum":
    """Caffe's ReadImageToDatum. With an `encoding`, the file's own bytes are stored when they
    already are that format at the wanted size and colour (no re-encoding loss); otherwise the
    image is re-encoded. Encoded datums carry no shape, as in Caffe."""
    image = read_image(path, height, width, is_color)
    if not encoding:
        return array_to_datum(image_to_chw(image), label)
    datum = caffe_pb2.Datum()
    with open(path, "rb") as f:
        payload = f.read()
    # The file's own pixels must be what was asked for: 8-bit, 3 channels iff is_color. (Caffe
    # tests the image as read, which always matches, and so stores colour files under --gray.)
    native = cv2.imdecode(np.frombuffer(payload, np.uint8), cv2.IMREAD_UNCHANGED)
    as_asked = native.dtype == np.uint8 and (native.ndim == 3 and native.shape[2] == 3) == is_color
    if as_asked and not height and not width and _extension_matches(path, encoding):
        datum.data = payload
    else:
        datum.data = encode_image(image, encoding)
    datum.label = int(label)
    datum.encoded = True
    return datum


def list_lines(path, what="image list"):
    """[(line_number, line)] of a text list file, blank lines left out, trailing space removed."""
    try:
        lines = files.read_regular(os.fspath(path)).decode("utf-8").splitlines()
    except (CaffeError, UnicodeDecodeError) as exc:
        raise CaffeError(f"cannot read the {what}: {exc}") from None
    return [(number, line.rstrip()) for number, line in enumerate(lines, start=1) if line.strip()]


def read_image_list(path):
    """Caffe's image list file: one `path label` per line, the label after the last space (so
    paths may contain spaces). Returns [(line_number, path, label)]; blank lines are skipped."""
    path = os.fspath(path)
    entries = []
    for number, line in list_lines(path):
        name, _, label = line.rpartition(" ")
        try:
            if not name:
                raise ValueError
            entries.append((number, name, int(label)))
        except ValueError:
            raise CaffeError(f"{path}:{number}: expected 'path label' with an integer label, got '{line}'") from None
    return entries
