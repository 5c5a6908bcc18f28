"""ImageData: list file + root_folder, resizing, gray, shuffling per pass, rand_skip, errors."""
import cv2
import numpy as np
import pytest

import nvcaffe_py as caffe
from nvcaffe_py import formats
from nvcaffe_py.datum import image_to_chw
from nvcaffe_py.errors import CaffeError


@pytest.fixture
def image_dir(tmp_path):
    """Six colour images of different sizes under tmp/imgs, listed with labels 0..5."""
    (tmp_path / "imgs").mkdir()
    rng = np.random.default_rng(0)
    images = []
    for i in range(6):
        img = rng.integers(0, 256, size=(6 + i, 8 - i % 3, 3), dtype=np.uint8)
        cv2.imwrite(str(tmp_path / "imgs" / f"im {i}.png"), img)  # spaces in names are allowed
        images.append(img)
    (tmp_path / "list.txt").write_text("".join(f"im {i}.png {i}\n" for i in range(6)))
    return tmp_path, images


def image_net(root, batch, params="", transform="", tops='top: "data" top: "label"', phase=caffe.TRAIN):
    text = (f'layer {{ name: "img" type: "ImageData" {tops} transform_param {{ {transform} }} '
            f'image_data_param {{ source: "{root}/list.txt" root_folder: "{root}/imgs/" batch_size: {batch} '
            f'{params} }} }}')
    return caffe.Net(formats.net_param_from_text(text), phase)


def labels_of(net, passes):
    out = []
    for _ in range(passes):
        net.forward()
        out += [int(v) for v in net.blobs["label"].data]
    return out


def test_resized_colour_images_in_list_order(image_dir):
    root, images = image_dir
    net = image_net(root, 4, "new_height: 5 new_width: 7")
    assert net.blobs["data"].shape == (4, 3, 5, 7)
    assert labels_of(net, 3) == [0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 5]
    for slot, label in enumerate(net.blobs["label"].data):
        expected = image_to_chw(cv2.resize(images[int(label)], (7, 5)))
        assert np.array_equal(net.blobs["data"].data[slot], expected)


def test_gray_with_crop_and_scale(image_dir):
    root, images = image_dir
    net = image_net(root, 1, "is_color: false", transform="crop_size: 4 scale: 0.5", phase=caffe.TEST)
    net.forward()
    gray = cv2.imread(str(root / "imgs" / "im 0.png"), cv2.IMREAD_GRAYSCALE)
    assert net.blobs["data"].shape == (1, 1, 4, 4)
    assert np.array_equal(net.blobs["data"].data[0, 0], gray[1:5, 2:6] * np.float32(0.5))


def test_batch_size_one_allows_images_of_any_size(image_dir):
    root, images = image_dir
    net = image_net(root, 1)
    for img in images:
        net.forward()
        assert net.blobs["data"].shape == (1,) + image_to_chw(img).shape


def test_shuffle_gives_a_new_permutation_every_pass(image_dir):
    root, _ = image_dir
    net = image_net(root, 6, "shuffle: true new_height: 4 new_width: 4")
    passes = [labels_of(net, 1) for _ in range(4)]
    assert all(sorted(p) == list(range(6)) for p in passes)
    assert len({tuple(p) for p in passes}) > 1 and passes[0] != list(range(6))


def test_rand_skip_starts_within_the_first_lines(image_dir):
    root, _ = image_dir
    starts = set()
    for seed in range(30):
        caffe.set_random_seed(seed)
        starts.add(labels_of(image_net(root, 1, "rand_skip: 3"), 1)[0])
    assert starts == {0, 1, 2}


def test_unreadable_image_names_its_line(image_dir):
    root, _ = image_dir
    (root / "list.txt").write_text("im 0.png 0\nim 1.png 1\nmissing.png 2\n")
    net = image_net(root, 3, "new_height: 4 new_width: 4")
    with pytest.raises(CaffeError, match=r"layer 'img' \(ImageData\): record 'line 3: missing.png' of image list "
                                         r"'.*list.txt': could not open or decode image file '.*imgs/missing.png'"):
        net.forward()


@pytest.mark.parametrize("params, tops, message", [
    ("new_height: 4", 'top: "data" top: "label"', "set new_height and new_width together"),
    ("", 'top: "data"', "takes exactly 2 top"),
])
def test_bad_configurations(image_dir, params, tops, message):
    root, _ = image_dir
    with pytest.raises(CaffeError, match=message):
        image_net(root, 2, params, tops=tops)
