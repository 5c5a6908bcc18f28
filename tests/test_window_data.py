"""WindowData: the window file, Caffe's window cut (context padding, square mode, clipping,
mirrored padding), sampling background then foreground windows, mean and scale, and the errors
that name the file and line."""
import cv2
import numpy as np
import pytest

import nvcaffe_py as caffe
from nvcaffe_py import formats, rng
from nvcaffe_py.errors import CaffeError
from nvcaffe_py.gradient_check import setup_layer
from nvcaffe_py.layers.window_data import WindowFile, round_half_away, window_geometry
from nvcaffe_py.proto import caffe_pb2


def write_images(folder):
    """Two colour images whose pixels say where they are: B = x, G = y, R = 10 * image number."""
    paths = []
    for number, (height, width) in enumerate([(40, 60), (50, 30)]):
        y, x = np.mgrid[:height, :width]
        image = np.stack([x, y, np.full_like(x, 10 * number)], axis=2).astype(np.uint8)
        path = folder / f"image{number}.png"
        cv2.imwrite(str(path), image)
        paths.append(path)
    return paths


WINDOWS = """# 0
image0.png
3
40
60
3
7 0.9 10 5 17 12
0 0.1 0 0 7 7
3 0.3 1 1 5 5
# 1
image1.png
3
50
30
1
0 0.0 20 30 27 37
"""


def window_layer(folder, batch_size=8, extra="", transform="crop_size: 8", phase=caffe_pb2.TRAIN,
                 windows=WINDOWS):
    (folder / "windows.txt").write_text(windows)
    text = (f'type: "WindowData" transform_param {{ {transform} }} window_data_param {{ '
            f'source: "{folder / "windows.txt"}" root_folder: "{folder}/" batch_size: {batch_size} {extra} }}')
    return setup_layer(text, [], num_tops=2, phase=phase, dtype=np.float32)


def forward(layer, tops):
    layer.forward_cpu([], tops)
    return tops[0].data.copy(), tops[1].data.copy()


def test_window_file_sorts_windows_by_overlap(tmp_path):
    (tmp_path / "w.txt").write_text(WINDOWS)
    windows = WindowFile(str(tmp_path / "w.txt"), "root/", 0.5, 0.2)
    assert [path for path, _, _ in windows.images] == ["root/image0.png", "root/image1.png"]
    assert windows.images[0][1] == (3, 40, 60)
    assert [w[:6] for w in windows.foreground] == [(0, 7, 10, 5, 17, 12)]
    # Background gets label 0; overlap 0.3 (between the thresholds) is used by neither.
    assert [w[:6] for w in windows.background] == [(0, 0, 0, 0, 7, 7), (1, 0, 20, 30, 27, 37)]


def test_batches_take_background_then_foreground_windows_at_full_size(tmp_path):
    write_images(tmp_path)
    rng.set_random_seed(3)
    layer, _, tops = window_layer(tmp_path, batch_size=8, extra="fg_fraction: 0.25 bg_threshold: 0.2")
    assert tops[0].shape == (8, 3, 8, 8) and tops[1].shape == (8,)
    data, labels = forward(layer, tops)
    assert list(labels) == [0] * 6 + [7] * 2  # int(8 * 0.25) = 2 foreground, last
    # An 8x8 window into an 8x8 crop is the window's own pixels, channels B, G, R.
    x, y = np.meshgrid(np.arange(8), np.arange(8))
    foreground = np.stack([10 + x, 5 + y, np.zeros_like(x)])
    np.testing.assert_array_equal(data[6], foreground)
    np.testing.assert_array_equal(data[7], foreground)
    for item in data[:6]:  # one of the two background windows
        assert (np.array_equal(item, np.stack([x, y, 0 * x]))
                or np.array_equal(item, np.stack([20 + x, 30 + y, np.full_like(x, 10)])))
    layer.close()


def test_mean_value_and_scale(tmp_path):
    write_images(tmp_path)
    layer, _, tops = window_layer(tmp_path, batch_size=4, transform="crop_size: 8 mean_value: 1 mean_value: 2 "
                                  "mean_value: 3", extra="fg_fraction: 1 scale: 0.5")
    data, labels = forward(layer, tops)
    x, y = np.meshgrid(np.arange(8), np.arange(8))
    expected = (np.stack([10 + x, 5 + y, np.zeros_like(x)]) - np.array([1, 2, 3]).reshape(3, 1, 1)) * 0.5
    for item in data:
        np.testing.assert_allclose(item, expected)
    layer.close()


def test_mean_file_is_read_centred_on_the_crop(tmp_path):
    write_images(tmp_path)
    mean = np.arange(3 * 10 * 10, dtype=np.float32).reshape(1, 3, 10, 10)
    formats.write_binary(str(tmp_path / "mean.binaryproto"), formats.blob_to_proto(mean))
    layer, _, tops = window_layer(tmp_path, batch_size=2, extra="fg_fraction: 1",
                                  transform=f'crop_size: 8 mean_file: "{tmp_path / "mean.binaryproto"}"')
    data, _ = forward(layer, tops)
    x, y = np.meshgrid(np.arange(8), np.arange(8))
    expected = np.stack([10 + x, 5 + y, np.zeros_like(x)]) - mean[0, :, 1:9, 1:9]  # offset (10 - 8) // 2
    np.testing.assert_allclose(data[0], expected)
    layer.close()


def test_context_padding_geometry_as_caffe():
    # 20x20 box, crop 24 with 2 pixels of context: the box grows by 24/20 around its centre.
    assert window_geometry((10, 10, 29, 29), (100, 100), 24, 2, False, False, np.float32) == \
        ((8, 8, 32, 32), (24, 24), (0, 0))
    # At the image corner the grown box is clipped; the cut part becomes zero padding on the left
    # and top, or on the right when mirrored (the padding mirrors with the window).
    assert window_geometry((0, 0, 19, 19), (100, 100), 24, 2, False, False, np.float32) == \
        ((0, 0, 22, 22), (22, 22), (2, 2))
    assert window_geometry((0, 0, 19, 19), (100, 100), 24, 2, False, True, np.float32) == \
        ((0, 0, 22, 22), (22, 22), (0, 2))
    # Square mode: a 20-wide, 10-tall box is cut as a square around its centre (inclusive
    # corners 10..30: 21 pixels, warped to 20).
    assert window_geometry((10, 20, 29, 29), (100, 100), 20, 0, True, False, np.float32) == \
        ((10, 15, 30, 35), (20, 20), (0, 0))
    # Without context or square mode the box is used as it is.
    assert window_geometry((3, 4, 9, 20), (100, 100), 16, 0, False, False, np.float32) == \
        ((3, 4, 9, 20), (16, 16), (0, 0))
    assert [round_half_away(v) for v in (2.5, -2.5, 1.49, -0.5)] == [3, -3, 1, -1]


def test_context_padding_leaves_the_outside_zero(tmp_path):
    write_images(tmp_path)
    windows = "# 0\nimage0.png\n3\n40\n60\n1\n5 1.0 0 0 19 19\n"
    layer, _, tops = window_layer(tmp_path, batch_size=1, extra="fg_fraction: 1 context_pad: 2",
                                  transform="crop_size: 24", windows=windows)
    data, _ = forward(layer, tops)
    # ((0, 0, 22, 22), (22, 22), (2, 2)): rows and columns 0-1 are the zero padding.
    assert not data[0, :, :2, :].any() and not data[0, :, :, :2].any()
    image = cv2.imread(str(tmp_path / "image0.png"))
    warped = cv2.resize(image[0:23, 0:23], (22, 22), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_array_equal(data[0, :, 2:24, 2:24], warped.transpose(2, 0, 1))
    layer.close()


def test_mirror_in_train_only_and_cached_images_read_the_same(tmp_path):
    write_images(tmp_path)
    x, y = np.meshgrid(np.arange(8), np.arange(8))
    window = np.stack([10 + x, 5 + y, np.zeros_like(x)])
    layer, _, tops = window_layer(tmp_path, batch_size=16, extra="fg_fraction: 1", transform="crop_size: 8 mirror: true")
    data, _ = forward(layer, tops)
    mirrored = [np.array_equal(item, window[:, :, ::-1]) for item in data]
    assert all(m or np.array_equal(item, window) for m, item in zip(mirrored, data))
    assert 0 < sum(mirrored) < 16
    layer.close()
    layer, _, tops = window_layer(tmp_path, batch_size=4, extra="fg_fraction: 1", phase=caffe_pb2.TEST,
                                  transform="crop_size: 8 mirror: true")
    data, _ = forward(layer, tops)
    assert all(np.array_equal(item, window) for item in data)
    layer.close()
    rng.set_random_seed(5)
    plain, _, tops = window_layer(tmp_path, extra="bg_threshold: 0.2")
    expected = forward(plain, tops)
    plain.close()
    rng.set_random_seed(5)
    cached, _, tops = window_layer(tmp_path, extra="bg_threshold: 0.2 cache_images: true")
    got = forward(cached, tops)
    cached.close()
    np.testing.assert_array_equal(got[0], expected[0])
    np.testing.assert_array_equal(got[1], expected[1])


@pytest.mark.parametrize("windows,message", [
    ("# 0\nimage0.png\n3\n40\n60\n1\n7 0.9 10 5 17\n", "windows.txt:7: the file ends where a window corner"),
    ("# 0\nimage0.png\n3\n40\n60\n1\n7 0.9 10 5 17 x\n", "windows.txt:7: expected a window corner, found 'x'"),
    ("# 1\nimage0.png\n3\n40\n60\n0\n", "windows.txt:1: image index 1 where 0 was due"),
    ("0\nimage0.png\n", "windows.txt:1: expected '#'"),
    ("# 0\nimage0.png\n1\n40\n60\n0\n", "windows.txt:2: image 'image0.png' has 1 channels"),
    ("# 0\nimage0.png\n3\n40\n60\n1\n7 0.9 10 5 60 12\n", "windows.txt:7: window (10, 5, 60, 12) does not lie inside"),
    ("# 0\nimage0.png\n3\n40\n60\n1\n0 0.9 10 5 17 12\n", "windows.txt:7: a foreground window (overlap 0.9 >= 0.5) needs a label > 0"),
    ("# 0\nimage0.png\n3\n40\n60\n1\n0 0.1 10 5 17 12\n", "a batch takes 2 foreground windows but the file has none"),
    ("", "the window file is empty"),
])
def test_bad_window_files_name_file_and_line(tmp_path, windows, message):
    write_images(tmp_path)
    with pytest.raises(CaffeError, match="WindowData") as error:
        window_layer(tmp_path, windows=windows)
    assert message in str(error.value)


def test_bad_parameters_are_named(tmp_path):
    write_images(tmp_path)
    with pytest.raises(CaffeError, match="transform_param.crop_size must be set .*old spelling"):
        window_layer(tmp_path, transform="mirror: false", extra="crop_size: 8")
    with pytest.raises(CaffeError, match='crop_mode must be "warp" or "square"'):
        window_layer(tmp_path, extra='crop_mode: "stretch"')
    with pytest.raises(CaffeError, match="context_pad 4 leaves no room"):
        window_layer(tmp_path, extra="context_pad: 4")
    with pytest.raises(CaffeError, match="cannot read window file"):
        setup_layer('type: "WindowData" transform_param { crop_size: 8 } '
                    f'window_data_param {{ source: "{tmp_path / "missing.txt"}" batch_size: 2 }}', [], num_tops=2)
    (tmp_path / "image1.png").unlink()
    layer, _, tops = window_layer(tmp_path, batch_size=64, extra="bg_threshold: 0.2 fg_fraction: 0")
    with pytest.raises(CaffeError, match=r"windows.txt:11: could not open or decode image '.*image1.png'"):
        forward(layer, tops)
    layer.close()


def test_window_data_in_a_net_feeds_a_classifier(tmp_path):
    write_images(tmp_path)
    (tmp_path / "windows.txt").write_text(WINDOWS)
    net_text = f"""
    layer {{ name: "data" type: "WindowData" top: "data" top: "label"
            transform_param {{ crop_size: 12 mirror: true mean_value: 100 }}
            window_data_param {{ source: "{tmp_path / 'windows.txt'}" root_folder: "{tmp_path}/" batch_size: 6
                                 context_pad: 2 bg_threshold: 0.2 }} }}
    layer {{ name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
            inner_product_param {{ num_output: 8 weight_filler {{ type: "xavier" }} }} }}
    layer {{ name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }}
    """
    net = caffe.Net(formats.net_param_from_text(net_text), caffe.TRAIN)
    loss = net.forward_backward()
    assert np.isfinite(loss) and net.blobs["data"].shape == (6, 3, 12, 12)
    assert list(net.blobs["label"].data) == [0] * 5 + [7]
