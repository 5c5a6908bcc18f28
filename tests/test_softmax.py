"""Softmax and SoftmaxWithLoss: values against loop references, every normalization mode and
ignore_label, the probabilities top, stability, gradients, and loss_weight through a Net."""
import math

import numpy as np
import pytest

import nvcaffe_py as caffe
from nvcaffe_py.errors import CaffeError
from nvcaffe_py.formats import net_param_from_text
from nvcaffe_py.gradient_check import check_layer_gradient, setup_layer

RNG = np.random.default_rng(7)


def forward(text, arrays, num_tops=1, dtype=np.float64):
    layer, bottoms, tops = setup_layer(text, arrays, num_tops=num_tops, dtype=dtype)
    layer.forward_cpu(bottoms, tops)
    return layer, bottoms, tops


def naive_softmax(x, axis):
    x = np.moveaxis(np.asarray(x, np.float64), axis, -1)
    out = np.empty_like(x)
    for idx in np.ndindex(x.shape[:-1]):
        e = [math.exp(v - max(x[idx])) for v in x[idx]]
        out[idx] = [v / sum(e) for v in e]
    return np.moveaxis(out, -1, axis)


def naive_softmax_loss(x, labels, axis, ignore, mode):
    """Caffe's loop: -log p[label] over counted positions, then the normalizer of `mode`."""
    prob = np.moveaxis(naive_softmax(x, axis), axis, -1)
    labels = np.asarray(labels).reshape(prob.shape[:-1])
    loss, valid = 0.0, 0
    for idx in np.ndindex(labels.shape):
        label = int(labels[idx])
        if ignore is not None and label == ignore:
            continue
        loss -= math.log(prob[idx][label])
        valid += 1
    outer = int(np.prod(x.shape[:axis]))
    normalizer = {"FULL": labels.size, "VALID": valid, "BATCH_SIZE": outer, "NONE": 1}[mode]
    return loss / max(1, normalizer)


@pytest.mark.parametrize("shape,axis", [((2, 5), 1), ((2, 3, 2, 4), 1), ((2, 3, 4), -1), ((3, 2, 4), 0)])
def test_softmax_values(shape, axis):
    x = RNG.standard_normal(shape) * 3
    _, _, tops = forward(f'type: "Softmax" softmax_param {{ axis: {axis} }}', [x])
    np.testing.assert_allclose(tops[0].data, naive_softmax(x, axis), rtol=1e-12)


def test_softmax_is_stable_for_large_inputs_in_float32():
    x = np.array([[1000.0, 1001.0, -1000.0], [-5e4, -5e4, -5e4]])
    _, _, tops = forward('type: "Softmax"', [x], dtype=np.float32)
    assert tops[0].data.dtype == np.float32
    np.testing.assert_allclose(tops[0].data, [[1 / (1 + math.e), math.e / (1 + math.e), 0], [1 / 3] * 3], rtol=1e-6)


@pytest.mark.parametrize("axis", [1, 2])
def test_softmax_gradient(axis):
    check_layer_gradient(f'type: "Softmax" softmax_param {{ axis: {axis} }}', [RNG.standard_normal((2, 3, 4))])


def test_softmax_in_place():
    x = RNG.standard_normal((2, 4))
    layer, bottoms, _ = setup_layer('type: "Softmax"', [x])
    layer.reshape(bottoms, bottoms)
    layer.forward_cpu(bottoms, bottoms)
    np.testing.assert_allclose(bottoms[0].data, naive_softmax(x, 1), rtol=1e-12)


def spatial_case(ignore=None):
    x = RNG.standard_normal((2, 4, 3, 2)) * 2
    labels = RNG.integers(0, 4, (2, 1, 3, 2)).astype(np.float64)
    if ignore is not None:
        labels.reshape(-1)[[0, 3, 7]] = ignore
    return x, labels


def loss_text(loss_param="", axis=1):
    return f'type: "SoftmaxWithLoss" softmax_param {{ axis: {axis} }} loss_param {{ {loss_param} }}'


@pytest.mark.parametrize("mode", ["FULL", "VALID", "BATCH_SIZE", "NONE"])
@pytest.mark.parametrize("ignore", [None, 2])
def test_softmax_loss_normalization_modes(mode, ignore):
    x, labels = spatial_case(ignore)
    ignore_text = "" if ignore is None else f"ignore_label: {ignore}"
    _, _, tops = forward(loss_text(f"normalization: {mode} {ignore_text}"), [x, labels])
    assert tops[0].shape == ()
    assert tops[0].data == pytest.approx(naive_softmax_loss(x, labels, 1, ignore, mode), rel=1e-12)


@pytest.mark.parametrize("loss_param,mode", [("", "VALID"), ("normalize: true", "VALID"),
                                             ("normalize: false", "BATCH_SIZE"),
                                             ("normalize: false normalization: FULL", "FULL")])
def test_softmax_loss_default_and_legacy_normalize(loss_param, mode):
    x, labels = spatial_case(ignore=1)
    _, _, tops = forward(loss_text(f"ignore_label: 1 {loss_param}"), [x, labels])
    assert tops[0].data == pytest.approx(naive_softmax_loss(x, labels, 1, 1, mode), rel=1e-12)


def test_softmax_loss_other_axis_and_probability_top():
    x = RNG.standard_normal((3, 2, 5))
    labels = RNG.integers(0, 5, (3, 2))
    _, _, tops = forward(loss_text(axis=2), [x, labels], num_tops=2)
    assert tops[0].data == pytest.approx(naive_softmax_loss(x, labels, 2, None, "VALID"), rel=1e-12)
    np.testing.assert_allclose(tops[1].data, naive_softmax(x, 2), rtol=1e-12)


def test_softmax_loss_all_ignored_is_zero_not_nan():
    x = RNG.standard_normal((2, 3))
    layer, bottoms, tops = forward(loss_text("ignore_label: 0"), [x, np.zeros(2)])
    assert tops[0].data == 0
    tops[0].diff[...] = 1
    layer.backward_cpu(tops, [True, False], bottoms)
    assert not bottoms[0].diff.any()


def test_softmax_loss_stable_for_extreme_logits():
    x = np.array([[2000.0, 0.0, -2000.0]], np.float32)
    _, _, tops = forward(loss_text(), [x, [2.0]], dtype=np.float32)
    assert tops[0].data == pytest.approx(4000.0)


def test_softmax_loss_labels_are_truncated_floats():
    x = RNG.standard_normal((3, 4))
    _, _, truncated = forward(loss_text(), [x, [1.7, 0.2, 3.9]])
    assert truncated[0].data == pytest.approx(naive_softmax_loss(x, [1, 0, 3], 1, None, "VALID"), rel=1e-12)


@pytest.mark.parametrize("loss_param", ["", "ignore_label: 2", "ignore_label: 2 normalization: FULL",
                                        "normalization: BATCH_SIZE", "normalization: NONE"])
def test_softmax_loss_gradient(loss_param):
    x, labels = spatial_case(ignore=2 if "ignore" in loss_param else None)
    check_layer_gradient(loss_text(loss_param), [x, labels], check_bottoms=[0])


def test_softmax_loss_gradient_other_axis():
    check_layer_gradient(loss_text(axis=2), [RNG.standard_normal((3, 2, 5)), RNG.integers(0, 5, (3, 2))],
                         check_bottoms=[0])


def test_softmax_loss_ignored_positions_get_no_gradient():
    x, labels = spatial_case(ignore=3)
    layer, bottoms, tops = forward(loss_text("ignore_label: 3"), [x, labels])
    tops[0].diff[...] = 1
    layer.backward_cpu(tops, [True, False], bottoms)
    ignored = (labels == 3)[:, 0]
    per_position = np.moveaxis(bottoms[0].diff, 1, -1)
    assert not per_position[ignored].any()
    assert np.abs(per_position[~ignored]).min() > 0


def test_softmax_loss_errors():
    with pytest.raises(CaffeError, match="number of labels must match"):
        setup_layer(loss_text(), [np.zeros((2, 3, 4)), np.zeros(2)])
    with pytest.raises(CaffeError, match="label 3 is outside"):
        forward(loss_text(), [np.zeros((2, 3)), [0, 3]])
    layer, bottoms, tops = forward(loss_text(), [np.zeros((2, 3)), [0, 1]])
    with pytest.raises(CaffeError, match="cannot backpropagate to bottom\\[1\\]"):
        layer.backward_cpu(tops, [True, True], bottoms)


NET = """
force_backward: true
layer {{ name: "in" type: "Input" top: "data" top: "label"
        input_param {{ shape {{ dim: 4 dim: 3 }} shape {{ dim: 4 }} }} }}
layer {{ name: "loss" type: "SoftmaxWithLoss" bottom: "data" bottom: "label" top: "loss" top: "prob" {weight} }}
"""


def test_loss_weight_scales_gradient_through_net():
    x, labels = RNG.standard_normal((4, 3)), np.array([0, 2, 1, 2])
    results = []
    for weight in ("", "loss_weight: 2 loss_weight: 0"):  # once per top, as Caffe requires
        net = caffe.Net(net_param_from_text(NET.format(weight=weight)), phase=caffe.TRAIN, dtype=np.float64)
        net.blobs["data"].data[...] = x
        net.blobs["label"].data[...] = labels
        loss = net.forward_backward()
        results.append((loss, net.blobs["data"].diff.copy(), net.blobs["label"].diff.copy()))
        np.testing.assert_allclose(net.blobs["prob"].data, naive_softmax(x, 1), rtol=1e-12)
    (loss1, grad1, label_grad), (loss2, grad2, _) = results
    assert loss1 == pytest.approx(naive_softmax_loss(x, labels, 1, None, "VALID"), rel=1e-12)
    assert loss2 == pytest.approx(2 * loss1, rel=1e-12)
    assert np.abs(grad1).max() > 0
    np.testing.assert_allclose(grad2, 2 * grad1, rtol=1e-12)
    assert not label_grad.any()  # force_backward never reaches the labels
