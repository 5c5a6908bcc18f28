"""pycaffe's caffe.io: BlobProto and Datum conversions, image loading/resizing, oversampling and
the Transformer."""
import cv2
import numpy as np
import pytest

import nvcaffe_py as caffe
from nvcaffe_py.errors import CaffeError
from nvcaffe_py.proto import caffe_pb2

from conftest import shared_path

io = caffe.io
RNG = np.random.default_rng(11)


def image_path(name):
    return shared_path("data", "images", name)


# -- BlobProto ---------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (7,), (2, 3), (1, 2, 3, 4, 5)])
def test_blobproto_round_trip(shape):
    data = RNG.standard_normal(shape).astype(np.float32)
    diff = RNG.standard_normal(shape).astype(np.float32)
    proto = io.array_to_blobproto(data, diff)
    assert tuple(proto.shape.dim) == shape
    np.testing.assert_array_equal(io.blobproto_to_array(proto), data)
    np.testing.assert_array_equal(io.blobproto_to_array(proto, return_diff=True), diff)


def test_blobproto_legacy_4d_shape():
    # Old Caffe wrote num/channels/height/width instead of a shape message.
    proto = caffe_pb2.BlobProto(num=1, channels=2, height=1, width=3, data=[1, 2, 3, 4, 5, 6])
    np.testing.assert_array_equal(io.blobproto_to_array(proto), np.arange(1, 7).reshape(1, 2, 1, 3))


def test_blobproto_with_the_wrong_number_of_values_is_an_error():
    proto = caffe_pb2.BlobProto(data=[1, 2, 3])
    proto.shape.dim.extend([2, 2])
    with pytest.raises(CaffeError, match="holds 3 values.*needs 4"):
        io.blobproto_to_array(proto)


def test_blobprotovector_str_round_trip():
    arrays = [RNG.standard_normal((2, 3)).astype(np.float32), np.arange(24, dtype=np.float32).reshape(1, 2, 3, 4)]
    payload = io.arraylist_to_blobprotovector_str(arrays)
    assert isinstance(payload, bytes)
    back = io.blobprotovector_str_to_arraylist(payload)
    assert len(back) == 2
    for a, b in zip(arrays, back):
        np.testing.assert_array_equal(a, b)


# -- Datum -------------------------------------------------------------------------------------
def test_datum_round_trip_uint8():
    arr = RNG.integers(0, 256, (3, 4, 5), dtype=np.uint8)
    datum = io.array_to_datum(arr, label=7)
    assert (datum.channels, datum.height, datum.width, datum.label) == (3, 4, 5, 7)
    assert datum.data == arr.tobytes() and len(datum.float_data) == 0  # bytes, as Caffe's tools write
    back = io.datum_to_array(datum)
    assert back.dtype == np.uint8
    np.testing.assert_array_equal(back, arr)


def test_datum_round_trip_float():
    arr = RNG.standard_normal((2, 3, 4)).astype(np.float32)
    datum = io.array_to_datum(arr)
    assert len(datum.data) == 0 and len(datum.float_data) == arr.size and datum.label == 0
    np.testing.assert_array_equal(io.datum_to_array(datum), arr)
    # A datum survives serialization (what an LMDB stores).
    parsed = caffe_pb2.Datum.FromString(datum.SerializeToString())
    np.testing.assert_array_equal(io.datum_to_array(parsed), arr)


def test_datum_needs_three_axes():
    with pytest.raises(ValueError, match="shape"):
        io.array_to_datum(np.zeros((2, 3), np.uint8))


# -- images ------------------------------------------------------------------------------------
def test_load_image_color_is_rgb_in_unit_range():
    path = image_path("cat.jpg")
    image = io.load_image(path)
    bgr = cv2.imread(path)
    assert image.shape == bgr.shape and image.dtype == np.float32
    np.testing.assert_allclose(image, bgr[:, :, ::-1] / 255.0, atol=1e-6)


def test_load_image_gray_file():
    path = image_path("cat_gray.jpg")
    gray = cv2.imread(path, cv2.IMREAD_GRAYSCALE) / 255.0
    as_gray = io.load_image(path, color=False)
    assert as_gray.shape == gray.shape + (1,)
    np.testing.assert_allclose(as_gray[:, :, 0], gray, atol=1e-6)
    as_color = io.load_image(path)  # a gray file in color: three equal channels
    assert as_color.shape == gray.shape + (3,)
    for c in range(3):
        np.testing.assert_allclose(as_color[:, :, c], gray, atol=1e-6)


def test_load_color_image_as_gray_uses_skimage_luma():
    path = image_path("cat.jpg")
    gray = io.load_image(path, color=False)
    rgb = cv2.imread(path)[:, :, ::-1] / 255.0
    assert gray.shape == rgb.shape[:2] + (1,)
    np.testing.assert_allclose(gray[:, :, 0], rgb @ [0.2125, 0.7154, 0.0721], atol=1e-5)


def test_load_missing_image_is_an_error(tmp_path):
    with pytest.raises(CaffeError, match="nothere.jpg"):
        io.load_image(str(tmp_path / "nothere.jpg"))


@pytest.mark.parametrize("channels", [1, 3, 5])
def test_resize_image(channels):
    image = RNG.random((8, 6, channels)).astype(np.float32)
    out = io.resize_image(image, (16, 9))
    assert out.shape == (16, 9, channels) and out.dtype == np.float32
    assert image.min() - 1e-6 <= out.min() and out.max() <= image.max() + 1e-6  # linear: no overshoot
    constant = np.full((5, 7, channels), 0.25, np.float32)
    np.testing.assert_allclose(io.resize_image(constant, (3, 4)), 0.25)
    np.testing.assert_array_equal(io.resize_image(image, (8, 6)), image)


def test_oversample_ten_crops():
    image = np.arange(6 * 8 * 2, dtype=np.float32).reshape(6, 8, 2)
    crops = io.oversample([image, image + 1000], (4, 4))
    assert crops.shape == (20, 4, 4, 2)
    corners_and_centre = [image[:4, :4], image[:4, 4:], image[2:, :4], image[2:, 4:], image[1:5, 2:6]]
    for k, expected in enumerate(corners_and_centre):
        np.testing.assert_array_equal(crops[k], expected)
        np.testing.assert_array_equal(crops[k + 5], expected[:, ::-1])  # its mirror
        np.testing.assert_array_equal(crops[k + 10], expected + 1000)  # second image follows


# -- Transformer -------------------------------------------------------------------------------
SHAPE = (1, 3, 4, 5)


def transformer():
    t = io.Transformer({"data": SHAPE})
    t.set_transpose("data", (2, 0, 1))
    t.set_channel_swap("data", (2, 1, 0))
    t.set_raw_scale("data", 255)
    t.set_input_scale("data", 0.5)
    return t


def test_transformer_preprocess_order():
    image = RNG.random((4, 5, 3)).astype(np.float32)  # HxWxC RGB in [0, 1]
    mean = np.array([100.0, 110.0, 120.0])
    t = transformer()
    t.set_mean("data", mean)
    out = t.preprocess("data", image)
    # transpose to CxHxW, RGB -> BGR, scale to [0, 255], subtract the mean, scale by 0.5
    expected = (image.transpose(2, 0, 1)[::-1] * 255 - mean[:, None, None]) * 0.5
    assert out.shape == (3, 4, 5) and out.dtype == np.float32
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(t.deprocess("data", out), image, atol=1e-5)
    assert image.max() <= 1  # the caller's array is left alone


def test_transformer_full_mean_image_and_resize():
    image = RNG.random((8, 10, 3)).astype(np.float32)  # resized to the input's 4x5
    mean = RNG.random((3, 4, 5)).astype(np.float32) * 50
    t = transformer()
    t.set_mean("data", mean)
    out = t.preprocess("data", image)
    resized = io.resize_image(image, (4, 5))
    expected = (resized.transpose(2, 0, 1)[::-1] * 255 - mean) * 0.5
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(t.deprocess("data", out), resized, atol=1e-5)


def test_transformer_bigger_mean_image_gives_its_centre():
    image = RNG.random((4, 5, 3)).astype(np.float32)
    mean = RNG.random((3, 8, 9)).astype(np.float32) * 50  # e.g. a 256x256 mean for 227x227 crops
    t = transformer()
    t.set_mean("data", mean)
    out = t.preprocess("data", image)
    expected = (image.transpose(2, 0, 1)[::-1] * 255 - mean[:, 2:6, 2:7]) * 0.5
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(t.deprocess("data", out), image, atol=1e-5)


def test_transformer_checks_its_settings():
    t = io.Transformer({"data": SHAPE})
    with pytest.raises(CaffeError, match="not one of the net inputs"):
        t.set_raw_scale("image", 255)
    with pytest.raises(CaffeError, match="transpose"):
        t.set_transpose("data", (1, 0))
    with pytest.raises(CaffeError, match="channel swap"):
        t.set_channel_swap("data", (1, 0))
    with pytest.raises(CaffeError, match="mean"):
        t.set_mean("data", np.zeros(4))
    with pytest.raises(CaffeError, match="mean"):
        t.set_mean("data", np.zeros((3, 2, 2)))


def test_an_hxw_mean_is_every_channels_and_a_bigger_one_gives_its_centre():
    transformer = caffe.io.Transformer({"data": (1, 3, 4, 4)})
    transformer.set_transpose("data", (2, 0, 1))
    transformer.set_mean("data", np.arange(36, dtype=np.float64).reshape(6, 6))
    out = transformer.preprocess("data", np.zeros((4, 4, 3), np.float32))
    centre = np.arange(36, dtype=np.float32).reshape(6, 6)[1:5, 1:5]
    assert out.shape == (3, 4, 4) and all(np.array_equal(out[c], -centre) for c in range(3))
    with pytest.raises(ValueError, match="incompatible with input shape"):
        transformer.set_mean("data", np.ones((3, 2, 2)))
