"""Datum <-> arrays and images (nvcaffe_py.datum): raw, float_data and encoded, and the errors."""
import cv2
import numpy as np
import pytest

from nvcaffe_py.datum import (array_to_datum, chw_to_image, datum_to_array, decode_image, image_to_chw,
                              parse_datum, read_image, read_image_list, read_image_to_datum)
from nvcaffe_py.errors import CaffeError
from nvcaffe_py.proto import caffe_pb2


def colour_image(h=6, w=5, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def test_raw_uint8_round_trip_is_chw_bytes():
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    datum = array_to_datum(array, label=7)
    assert (datum.channels, datum.height, datum.width, datum.label) == (2, 3, 4, 7)
    assert datum.data == bytes(range(24)) and not datum.encoded and len(datum.float_data) == 0
    back = datum_to_array(parse_datum(datum.SerializeToString()))
    assert back.dtype == np.uint8 and np.array_equal(back, array)


def test_float_data_round_trip():
    array = np.random.default_rng(1).standard_normal((3, 2, 2)).astype(np.float32)
    datum = array_to_datum(array, label=-1)
    assert len(datum.data) == 0 and list(datum.float_data) == array.ravel().tolist()
    back = datum_to_array(datum)
    assert back.dtype == np.float32 and np.array_equal(back, array)


def test_hwc_bgr_to_chw_keeps_channel_order():
    image = colour_image()
    chw = image_to_chw(image)
    assert chw.shape == (3, 6, 5) and chw.flags.c_contiguous
    for c in range(3):
        assert np.array_equal(chw[c], image[:, :, c])
    assert np.array_equal(chw_to_image(chw), image)
    gray = image[:, :, 0]
    assert image_to_chw(gray).shape == (1, 6, 5) and np.array_equal(chw_to_image(image_to_chw(gray)), gray)


def encoded_datum(image, ext=".png", label=3):
    datum = caffe_pb2.Datum()
    datum.data = cv2.imencode(ext, image)[1].tobytes()
    datum.encoded, datum.label = True, label
    return datum


def test_encoded_png_decodes_natively_or_forced():
    image = colour_image()
    datum = encoded_datum(image)
    assert np.array_equal(datum_to_array(datum), image_to_chw(image))  # PNG is lossless
    gray = image[:, :, 1].copy()
    gray_datum = encoded_datum(gray)
    assert datum_to_array(gray_datum).shape == (1, 6, 5)  # native: the file's one channel
    forced = datum_to_array(gray_datum, color=True)
    assert forced.shape == (3, 6, 5) and all(np.array_equal(forced[c], gray) for c in range(3))
    as_gray = datum_to_array(datum, color=False)
    assert np.array_equal(as_gray[0], cv2.imdecode(np.frombuffer(datum.data, np.uint8), cv2.IMREAD_GRAYSCALE))


def test_encoded_jpeg_matches_opencv_decode():
    image = colour_image(16, 16)
    datum = encoded_datum(image, ".jpg")
    expected = cv2.imdecode(np.frombuffer(datum.data, np.uint8), cv2.IMREAD_COLOR)
    assert np.array_equal(datum_to_array(datum), image_to_chw(expected))


@pytest.mark.parametrize("build, message", [
    (lambda d: (setattr(d, "channels", 1), setattr(d, "height", 2), setattr(d, "width", 2),
                setattr(d, "data", b"abc")), "3 data bytes"),
    (lambda d: (setattr(d, "channels", 1), setattr(d, "height", 2), setattr(d, "width", 2),
                d.float_data.extend([1.0])), "1 float_data"),
    (lambda d: (setattr(d, "channels", 0), setattr(d, "data", b"")), "must be positive"),
    (lambda d: (setattr(d, "encoded", True), setattr(d, "data", b"not an image")), "cannot decode"),
])
def test_bad_datums_are_described(build, message):
    datum = caffe_pb2.Datum()
    build(datum)
    with pytest.raises(CaffeError, match=message):
        datum_to_array(datum)


def test_garbage_bytes_are_not_a_datum():
    with pytest.raises(CaffeError, match="not a valid Datum"):
        parse_datum(b"\xff\xff\xff\xff\xff")
    with pytest.raises(CaffeError, match="cannot decode"):
        decode_image(b"\x89PNG broken")


def test_read_image_to_datum_raw_and_encoded(tmp_path):
    image = colour_image(8, 10)
    path = tmp_path / "a b.png"  # a space in the name
    cv2.imwrite(str(path), image)
    raw = read_image_to_datum(path, 4)
    assert (raw.channels, raw.height, raw.width, raw.label) == (3, 8, 10, 4)
    assert raw.data == image_to_chw(image).tobytes()
    # Same format, size and colour: the file's bytes, untouched, and no shape fields (as Caffe).
    stored = read_image_to_datum(path, 4, encoding="png")
    assert stored.data == path.read_bytes() and stored.encoded and stored.channels == 0
    # Resized or converted: re-encoded.
    resized = read_image_to_datum(path, 4, height=4, width=5, encoding="png")
    assert resized.data != path.read_bytes()
    assert np.array_equal(datum_to_array(resized), image_to_chw(cv2.resize(image, (5, 4))))
    # --gray on a colour file: stored gray (Caffe would store the colour file's bytes here).
    gray = read_image_to_datum(path, 4, is_color=False, encoding="png")
    assert datum_to_array(gray).shape == (1, 8, 10)
    gray_path = tmp_path / "g.png"
    cv2.imwrite(str(gray_path), image[:, :, 0])
    assert read_image_to_datum(gray_path, 4, is_color=False, encoding="png").data == gray_path.read_bytes()
    with pytest.raises(CaffeError, match="could not open"):
        read_image(tmp_path / "missing.png")


def test_image_list_parsing(tmp_path):
    listing = tmp_path / "list.txt"
    listing.write_text("a.jpg 0\n\nsub dir/b c.png 12\r\nd.png -1\n")
    assert read_image_list(listing) == [(1, "a.jpg", 0), (3, "sub dir/b c.png", 12), (4, "d.png", -1)]
    listing.write_text("a.jpg 0\nb.jpg\n")
    with pytest.raises(CaffeError, match=r"list.txt:2: expected 'path label'"):
        read_image_list(listing)
    listing.write_text("a.jpg x\n")
    with pytest.raises(CaffeError, match=r"list.txt:1:"):
        read_image_list(listing)
