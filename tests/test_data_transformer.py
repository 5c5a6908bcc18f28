"""DataTransformer: known values against a loop written from Caffe's Transform, for each option
and phase, including crop offsets and mirror."""
import cv2
import numpy as np
import pytest

import nvcaffe_py
from nvcaffe_py import formats
from nvcaffe_py.data_transformer import DataTransformer
from nvcaffe_py.errors import CaffeError
from nvcaffe_py.proto import caffe_pb2

TRAIN, TEST = caffe_pb2.TRAIN, caffe_pb2.TEST


def reference(image, h_off, w_off, h, w, mirror, scale=1.0, mean=None, mean_values=()):
    """Caffe's DataTransformer::Transform, index by index."""
    channels, height, width = image.shape
    out = np.zeros((channels, h, w), np.float64)
    flat, mean_flat = image.ravel(), None if mean is None else mean.ravel()
    values = list(mean_values) * channels if len(mean_values) == 1 else list(mean_values)
    for c in range(channels):
        for y in range(h):
            for x in range(w):
                data_index = (c * height + h_off + y) * width + w_off + x
                top_x = w - 1 - x if mirror else x
                element = float(flat[data_index])
                if mean_flat is not None:
                    value = (element - mean_flat[data_index]) * scale
                elif values:
                    value = (element - values[c]) * scale
                else:
                    value = element * scale
                out[c, y, top_x] = value
    return out


def make(phase=TRAIN, dtype=np.float32, **fields):
    param = caffe_pb2.TransformationParameter()
    for name, value in fields.items():
        if name == "mean_value":
            param.mean_value.extend(value)
        else:
            setattr(param, name, value)
    return DataTransformer(param, phase, dtype)


def image(shape=(3, 7, 6), seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


def run(transformer, img):
    out = np.empty(transformer.output_shape(img.shape), transformer.dtype)
    h_off, w_off, mirrored = transformer.transform(img, out)
    return out, h_off, w_off, mirrored


def close(a, b):
    return np.allclose(a, b, rtol=1e-6, atol=1e-6)


def test_scale_only_is_exact_in_both_phases():
    img = image()
    for phase in (TRAIN, TEST):
        out, h_off, w_off, mirrored = run(make(phase, scale=0.00390625), img)
        assert (h_off, w_off, mirrored) == (0, 0, False)
        assert np.array_equal(out, img.astype(np.float32) * np.float32(0.00390625))


def test_test_phase_centre_crop_and_no_mirror():
    img = image((2, 9, 8))
    t = make(TEST, crop_size=5, mirror=True, scale=0.5)
    for _ in range(5):
        out, h_off, w_off, mirrored = run(t, img)
        assert (h_off, w_off, mirrored) == ((9 - 5) // 2, (8 - 5) // 2, False)
        assert close(out, reference(img, 2, 1, 5, 5, False, 0.5))


def test_train_random_crop_and_mirror_cover_every_offset():
    img = image((3, 7, 6))
    t = make(TRAIN, crop_size=4, mirror=True, scale=2.0)
    seen, mirrors = set(), 0
    for _ in range(300):
        out, h_off, w_off, mirrored = run(t, img)
        assert 0 <= h_off <= 3 and 0 <= w_off <= 2
        assert close(out, reference(img, h_off, w_off, 4, 4, mirrored, 2.0))
        seen.add((h_off, w_off))
        mirrors += mirrored
    assert seen == {(h, w) for h in range(4) for w in range(3)}
    assert 100 < mirrors < 200


def test_mirror_without_crop_flips_width():
    img = image((2, 3, 4))
    t = make(TRAIN, mirror=True)
    results = [run(t, img) for _ in range(40)]
    flipped = [out for out, _, _, mirrored in results if mirrored]
    kept = [out for out, _, _, mirrored in results if not mirrored]
    assert flipped and kept
    assert all(np.array_equal(out, img[:, :, ::-1]) for out in flipped)
    assert all(np.array_equal(out, img) for out in kept)


def write_mean(path, mean):
    proto = caffe_pb2.BlobProto()
    proto.num, (proto.channels, proto.height, proto.width) = 1, mean.shape
    proto.data.extend(mean.ravel())
    formats.write_binary(path, proto)


def test_mean_file_is_cropped_at_the_same_window_then_mirrored(tmp_path):
    img = image((3, 7, 6))
    mean = np.random.default_rng(5).uniform(0, 255, size=(3, 7, 6)).astype(np.float32)
    write_mean(tmp_path / "mean.binaryproto", mean)
    t = make(TRAIN, crop_size=4, mirror=True, scale=0.1, mean_file=str(tmp_path / "mean.binaryproto"))
    kinds = set()
    for _ in range(60):
        out, h_off, w_off, mirrored = run(t, img)
        assert close(out, reference(img, h_off, w_off, 4, 4, mirrored, 0.1, mean=mean))
        kinds.add(mirrored)
    assert kinds == {True, False}
    no_crop = make(TEST, mean_file=str(tmp_path / "mean.binaryproto"))
    assert close(run(no_crop, img)[0], img - mean)


@pytest.mark.parametrize("values", [[100.0], [10.0, 20.0, 30.0]])
def test_mean_values_one_or_per_channel(values):
    img = image((3, 5, 5))
    out, *_ = run(make(TEST, mean_value=values, scale=0.5, crop_size=3), img)
    assert close(out, reference(img, 1, 1, 3, 3, False, 0.5, mean_values=values))


def test_float_data_images_and_float64_output():
    img = np.random.default_rng(2).standard_normal((2, 4, 4)).astype(np.float32)
    out, *_ = run(make(TEST, dtype=np.float64, mean_value=[0.25], scale=3.0), img)
    assert out.dtype == np.float64
    assert close(out, (img.astype(np.float64) - 0.25) * 3.0)


def test_force_color_and_gray_decode_encoded_datums():
    gray = image((5, 4), seed=3)
    datum = caffe_pb2.Datum(data=cv2.imencode(".png", gray)[1].tobytes(), encoded=True)
    assert make(TEST).datum_image(datum).shape == (1, 5, 4)
    colour = make(TEST, force_color=True).datum_image(datum)
    assert colour.shape == (3, 5, 4) and np.array_equal(colour[2], gray)
    colour_datum = caffe_pb2.Datum(data=cv2.imencode(".png", image((5, 4, 3)))[1].tobytes(), encoded=True)
    assert make(TEST, force_gray=True).datum_image(colour_datum).shape == (1, 5, 4)


def test_seeded_runs_repeat():
    img = image()
    draws = []
    for _ in range(2):
        nvcaffe_py.set_random_seed(42)
        t = make(TRAIN, crop_size=3, mirror=True)
        draws.append([run(t, img)[1:] for _ in range(20)])
    assert draws[0] == draws[1]


@pytest.mark.parametrize("fields, shape, message", [
    (dict(force_color=True, force_gray=True), None, "both force_color and force_gray"),
    (dict(mean_file="m.binaryproto", mean_value=[1.0]), None, "mean_file and mean_value"),
    (dict(mean_file="/nonexistent/mean.binaryproto"), None, "no such file"),
    (dict(crop_size=8), (3, 7, 6), "crop_size 8 is larger than the 7x6 image"),
    (dict(mean_value=[1.0, 2.0]), (3, 7, 6), "1 mean_value or one per channel"),
])
def test_bad_options_are_one_line_errors(fields, shape, message):
    with pytest.raises(CaffeError, match=message):
        t = make(TRAIN, **fields)
        t.output_shape(shape)


def test_mean_file_of_another_shape_is_refused(tmp_path):
    write_mean(tmp_path / "mean.binaryproto", np.zeros((3, 4, 4), np.float32))
    t = make(TEST, mean_file=str(tmp_path / "mean.binaryproto"))
    with pytest.raises(CaffeError, match=r"has shape \(3, 4, 4\) but the image is \(3, 7, 6\)"):
        t.output_shape((3, 7, 6))
