"""caffe.Classifier and caffe.Detector (pycaffe's classifier.py / detector.py): preprocessing,
ten-crop oversampling against centre-only prediction, windows with and without context padding."""
import numpy as np
import pytest

import nvcaffe_py as caffe

DEPLOY = """
name: "tiny"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 3 dim: 3 dim: 6 dim: 6 } } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
        inner_product_param { num_output: 4 weight_filler { type: "gaussian" std: 0.1 } } }
layer { name: "prob" type: "Softmax" bottom: "ip" top: "prob" }
"""
MEAN = np.array([0.2, 0.4, 0.6], np.float32)


@pytest.fixture
def model(tmp_path):
    deploy = tmp_path / "deploy.prototxt"
    deploy.write_text(DEPLOY)
    weights = tmp_path / "tiny.caffemodel"
    caffe.Net(str(deploy), caffe.TEST).save(str(weights))
    return str(deploy), str(weights)


def reference(net, crop):
    """What the net says for one HxWx3 crop with the settings the tests use."""
    x = crop.transpose(2, 0, 1)[[2, 1, 0]] * 255.0 - MEAN[:, None, None]
    logits = net.params["ip"][0].data @ x.ravel()
    return np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()


def images(count, size=(8, 8)):
    return [np.random.default_rng(i).random(size + (3,)).astype(np.float32) for i in range(count)]


def test_classifier_centre_crop_and_oversampling(model):
    net = caffe.Classifier(*model, image_dims=(8, 8), mean=MEAN, raw_scale=255, channel_swap=(2, 1, 0))
    inputs = images(4)  # more than a batch of 3: forward_all pads the last batch
    centre = net.predict(inputs, oversample=False)
    assert centre.shape == (4, 4)
    for image, row in zip(inputs, centre):
        np.testing.assert_allclose(row, reference(net, image[1:7, 1:7]), rtol=1e-4)
    ten = net.predict(inputs)
    for image, row in zip(inputs, ten):
        crops = [image[y:y + 6, x:x + 6] for y in (0, 2) for x in (0, 2)] + [image[1:7, 1:7]]
        crops += [c[:, ::-1] for c in crops]
        np.testing.assert_allclose(row, np.mean([reference(net, c) for c in crops], axis=0), rtol=1e-4)


def test_classifier_resizes_to_the_input_by_default(model):
    net = caffe.Classifier(*model, mean=MEAN, raw_scale=255, channel_swap=(2, 1, 0))
    image = images(1, (12, 12))[0]
    expected = reference(net, caffe.io.resize_image(image, (6, 6)))
    np.testing.assert_allclose(net.predict([image], oversample=False)[0], expected, rtol=1e-4)


def test_detector_windows_without_context(model, tmp_path):
    import cv2
    image = (np.random.default_rng(5).random((20, 30, 3)) * 255).astype(np.uint8)
    path = str(tmp_path / "photo.png")
    cv2.imwrite(path, image)
    net = caffe.Detector(*model, mean=MEAN, raw_scale=255, channel_swap=(2, 1, 0))
    windows = [(0, 0, 6, 6), (4, 10, 16, 22)]
    detections = net.detect_windows([(path, windows)])
    loaded = caffe.io.load_image(path)
    assert [d["window"] for d in detections] == windows and {d["filename"] for d in detections} == {path}
    for (y0, x0, y1, x1), detection in zip(windows, detections):
        crop = caffe.io.resize_image(loaded[y0:y1, x0:x1], (6, 6))
        np.testing.assert_allclose(detection["prediction"], reference(net, crop), rtol=1e-4)


def test_detector_context_padding_fills_outside_the_image_with_the_mean(model):
    net = caffe.Detector(*model, mean=MEAN, raw_scale=255, channel_swap=(2, 1, 0), context_pad=1)
    image = np.ones((10, 10, 3), np.float32)
    crop = net.crop(image, np.array([0, 0, 4, 4]))  # at the corner: context above and left is outside
    assert crop.shape == (6, 6, 3)
    mean_in_image_space = MEAN[[2, 1, 0]] / 255  # the mean undone: channel order and raw scale
    np.testing.assert_allclose(crop[0, 0], mean_in_image_space, rtol=1e-6)
    np.testing.assert_allclose(crop[-1, -1], 1.0)  # inside the image
    inner = net.crop(image, np.array([3, 3, 7, 7]))  # context all inside the image
    np.testing.assert_allclose(inner, 1.0)
