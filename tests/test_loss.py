"""Loss layers: the LossLayer contract, then each loss against a loop reference (normalization
modes and ignore_label where the layer has them) and a gradient check of every non-label bottom."""
import math

import numpy as np
import pytest

import nvcaffe_py as caffe
from nvcaffe_py.errors import CaffeError
from nvcaffe_py.formats import blob_to_proto, net_param_from_text, write_binary
from nvcaffe_py.gradient_check import check_layer_gradient, make_layer, setup_layer

RNG = np.random.default_rng(11)
MODES = ["FULL", "VALID", "BATCH_SIZE", "NONE"]


def forward(text, arrays, num_tops=1, dtype=np.float64):
    layer, bottoms, tops = setup_layer(text, arrays, num_tops=num_tops, dtype=dtype)
    layer.forward_cpu(bottoms, tops)
    return layer, bottoms, tops


def normalized(loss, mode, total, valid, batch):
    return loss / max(1, {"FULL": total, "VALID": valid, "BATCH_SIZE": batch, "NONE": 1}[mode])


# -- the LossLayer contract ------------------------------------------------------------------
def test_loss_layer_contract():
    layer = make_layer('type: "EuclideanLoss"')
    assert layer.auto_top_blobs and layer.default_loss_weights == (1.0,)
    assert (layer.exact_num_bottom, layer.exact_num_top) == (2, 1)
    _, _, tops = forward('type: "EuclideanLoss"', [np.ones((2, 3)), np.zeros((2, 3))])
    assert tops[0].shape == () and tops[0].data == pytest.approx(1.5)


@pytest.mark.parametrize("layer_type,allowed", [
    ("SoftmaxWithLoss", [True, False]), ("SigmoidCrossEntropyLoss", [True, False]),
    ("HingeLoss", [True, False]), ("MultinomialLogisticLoss", [True, False]),
    ("EuclideanLoss", [True, True]), ("InfogainLoss", [True, False, False]),
    ("ContrastiveLoss", [True, True, False])])
def test_labels_never_force_backward(layer_type, allowed):
    layer = make_layer(f'type: "{layer_type}"')
    assert [layer.allow_force_backward(i) for i in range(len(allowed))] == allowed


def test_net_adds_the_loss_top_and_weights_it():
    net = caffe.Net(net_param_from_text("""
        layer { name: "in" type: "Input" top: "a" top: "b" input_param { shape { dim: 2 dim: 3 } } }
        layer { name: "loss" type: "EuclideanLoss" bottom: "a" bottom: "b" }"""), phase=caffe.TRAIN)
    net.blobs["a"].data[...] = 1
    net.blobs["b"].data[...] = 0
    assert "(loss)_auto_top_0" in net.blobs
    assert net.forward_backward() == pytest.approx(1.5)


def test_first_dimensions_must_match():
    with pytest.raises(CaffeError, match="same first dimension"):
        setup_layer('type: "EuclideanLoss"', [np.zeros((2, 3)), np.zeros((3, 2))])


# -- EuclideanLoss ---------------------------------------------------------------------------
def test_euclidean_values_and_gradient():
    a, b = RNG.standard_normal((3, 4)), RNG.standard_normal((3, 2, 2))
    expected = sum((a[i, j] - b.reshape(3, 4)[i, j]) ** 2 for i in range(3) for j in range(4)) / 3 / 2
    _, _, tops = forward('type: "EuclideanLoss"', [a, b])
    assert tops[0].data == pytest.approx(expected, rel=1e-12)
    check_layer_gradient('type: "EuclideanLoss"', [a, b])


def test_euclidean_dimension_mismatch():
    with pytest.raises(CaffeError, match="same dimension"):
        setup_layer('type: "EuclideanLoss"', [np.zeros((2, 3)), np.zeros((2, 4))])


# -- SigmoidCrossEntropyLoss ------------------------------------------------------------------
def sigmoid_case():
    x = RNG.standard_normal((3, 2, 2)) * 3
    target = RNG.uniform(0, 1, (3, 2, 2))
    target.reshape(-1)[[1, 6, 7]] = -1
    return x, target


def naive_sigmoid_loss(x, target, ignore, mode):
    loss, valid = 0.0, 0
    for xi, ti in zip(x.reshape(-1), target.reshape(-1)):
        if ignore is not None and int(ti) == ignore:
            continue
        p = 1 / (1 + math.exp(-xi))
        loss -= ti * math.log(p) + (1 - ti) * math.log(1 - p)
        valid += 1
    return normalized(loss, mode, x.size, valid, x.shape[0])


def sigmoid_text(loss_param):
    return f'type: "SigmoidCrossEntropyLoss" loss_param {{ {loss_param} }}'


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("ignore", [None, -1])
def test_sigmoid_cross_entropy_modes(mode, ignore):
    x, target = sigmoid_case()
    if ignore is None:
        target = np.abs(target)
    ignore_text = "" if ignore is None else f"ignore_label: {ignore}"
    _, _, tops = forward(sigmoid_text(f"normalization: {mode} {ignore_text}"), [x, target])
    assert tops[0].data == pytest.approx(naive_sigmoid_loss(x, target, ignore, mode), rel=1e-10)


@pytest.mark.parametrize("loss_param,mode", [("", "BATCH_SIZE"), ("normalize: true", "VALID"),
                                             ("normalize: false", "BATCH_SIZE")])
def test_sigmoid_cross_entropy_default_and_legacy_normalize(loss_param, mode):
    x, target = sigmoid_case()
    _, _, tops = forward(sigmoid_text(f"ignore_label: -1 {loss_param}"), [x, target])
    assert tops[0].data == pytest.approx(naive_sigmoid_loss(x, target, -1, mode), rel=1e-10)


def test_sigmoid_cross_entropy_is_stable_for_large_inputs():
    x = np.array([[100.0, -100.0, 100.0, -100.0]], np.float32)
    layer, bottoms, tops = forward(sigmoid_text(""), [x, [[0.0, 0.0, 1.0, 1.0]]], dtype=np.float32)
    assert tops[0].data == pytest.approx(200.0)
    tops[0].diff[...] = 1
    layer.backward_cpu(tops, [True, False], bottoms)
    np.testing.assert_allclose(bottoms[0].diff, [[1, 0, 0, -1]], atol=1e-6)


@pytest.mark.parametrize("loss_param", ["", "ignore_label: -1", "ignore_label: -1 normalization: VALID",
                                        "normalization: FULL"])
def test_sigmoid_cross_entropy_gradient(loss_param):
    x, target = sigmoid_case()
    if "ignore" not in loss_param:
        target = np.abs(target)
    check_layer_gradient(sigmoid_text(loss_param), [x, target], check_bottoms=[0])


def test_sigmoid_cross_entropy_count_mismatch():
    with pytest.raises(CaffeError, match="same count"):
        setup_layer(sigmoid_text(""), [np.zeros((2, 3)), np.zeros((2, 2))])


# -- HingeLoss -------------------------------------------------------------------------------
def hinge_case():
    """Scores at least 0.2 away from the kinks at +-1."""
    magnitude = np.where(RNG.random((4, 5)) < 0.5, RNG.uniform(0, 0.8, (4, 5)), RNG.uniform(1.2, 2, (4, 5)))
    return magnitude * RNG.choice([-1, 1], (4, 5)), np.array([0, 3, 4, 3], np.float64)


def naive_hinge(x, labels, squared):
    loss = 0.0
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            value = -x[i, j] if j == int(labels[i]) else x[i, j]
            margin = max(0.0, 1 + value)
            loss += margin ** 2 if squared else margin
    return loss / x.shape[0]


@pytest.mark.parametrize("norm", ["L1", "L2"])
def test_hinge_values_and_gradient(norm):
    x, labels = hinge_case()
    text = f'type: "HingeLoss" hinge_loss_param {{ norm: {norm} }}'
    _, _, tops = forward(text, [x.reshape(4, 5, 1, 1), labels])
    assert tops[0].data == pytest.approx(naive_hinge(x, labels, norm == "L2"), rel=1e-12)
    check_layer_gradient(text, [x, labels], check_bottoms=[0])


def test_hinge_needs_one_label_per_item():
    with pytest.raises(CaffeError, match="one label per item"):
        setup_layer('type: "HingeLoss"', [np.zeros((2, 3)), np.zeros((2, 2))])


# -- MultinomialLogisticLoss ------------------------------------------------------------------
def test_multinomial_logistic_values_and_gradient():
    prob = RNG.uniform(0.05, 1, (3, 4))
    labels = np.array([2.0, 0.0, 3.0])
    expected = -sum(math.log(prob[i, int(labels[i])]) for i in range(3)) / 3
    _, _, tops = forward('type: "MultinomialLogisticLoss"', [prob, labels])
    assert tops[0].data == pytest.approx(expected, rel=1e-12)
    check_layer_gradient('type: "MultinomialLogisticLoss"', [prob, labels], check_bottoms=[0])


def test_multinomial_logistic_floors_zero_probability():
    _, _, tops = forward('type: "MultinomialLogisticLoss"', [[[0.0, 1.0]], [0.0]])
    assert tops[0].data == pytest.approx(-math.log(1e-20))


# -- InfogainLoss ----------------------------------------------------------------------------
def infogain_case(ignore=None):
    x = RNG.standard_normal((2, 3, 2, 2))
    labels = RNG.integers(0, 3, (2, 2, 2)).astype(np.float64)
    if ignore is not None:
        labels.reshape(-1)[[2, 5]] = ignore
    return x, labels, RNG.uniform(0, 2, (3, 3))


def naive_infogain(x, labels, H, axis, ignore, mode):
    prob = np.moveaxis(np.exp(x) / np.exp(x).sum(axis=axis, keepdims=True), axis, -1)
    labels = labels.reshape(prob.shape[:-1])
    loss, valid = 0.0, 0
    for idx in np.ndindex(labels.shape):
        label = int(labels[idx])
        if ignore is not None and label == ignore:
            continue
        loss -= sum(H[label, l] * math.log(prob[idx][l]) for l in range(H.shape[0]))
        valid += 1
    return normalized(loss, mode, labels.size, valid, int(np.prod(x.shape[:axis])))


def infogain_text(source="", loss_param="", axis=1):
    return (f'type: "InfogainLoss" infogain_loss_param {{ source: "{source}" axis: {axis} }} '
            f'loss_param {{ {loss_param} }}')


def write_matrix(tmp_path, H):
    path = tmp_path / "H.binaryproto"
    write_binary(path, blob_to_proto(H.reshape(1, 1, *H.shape)))
    return str(path)


@pytest.mark.parametrize("mode", MODES)
def test_infogain_from_source_with_ignore_label(tmp_path, mode):
    x, labels, H = infogain_case(ignore=1)
    H = H.astype(np.float32).astype(np.float64)  # the file holds float32
    text = infogain_text(write_matrix(tmp_path, H), f"ignore_label: 1 normalization: {mode}")
    _, _, tops = forward(text, [x, labels])
    assert tops[0].data == pytest.approx(naive_infogain(x, labels, H, 1, 1, mode), rel=1e-12)


def test_infogain_matrix_as_third_bottom_and_probability_top():
    x, labels, H = infogain_case()
    _, _, tops = forward(infogain_text(), [x, labels, H], num_tops=2)
    assert tops[0].data == pytest.approx(naive_infogain(x, labels, H, 1, None, "VALID"), rel=1e-12)
    np.testing.assert_allclose(tops[1].data, np.exp(x) / np.exp(x).sum(axis=1, keepdims=True), rtol=1e-12)


def test_infogain_other_axis():
    x = RNG.standard_normal((2, 2, 3))
    labels, H = RNG.integers(0, 3, (2, 2)), RNG.uniform(0, 2, (3, 3))
    _, _, tops = forward(infogain_text(axis=-1), [x, labels, H])
    assert tops[0].data == pytest.approx(naive_infogain(x, labels, H, 2, None, "VALID"), rel=1e-12)


def test_infogain_with_identity_is_softmax_loss():
    x, labels, _ = infogain_case()
    _, _, info = forward(infogain_text(), [x, labels, np.eye(3)])
    _, _, soft = forward('type: "SoftmaxWithLoss"', [x, labels])
    assert info[0].data == pytest.approx(float(soft[0].data), rel=1e-12)


@pytest.mark.parametrize("loss_param", ["", "ignore_label: 0 normalization: FULL"])
def test_infogain_gradient(tmp_path, loss_param):
    x, labels, H = infogain_case(ignore=0 if loss_param else None)
    check_layer_gradient(infogain_text(loss_param=loss_param), [x, labels, H], check_bottoms=[0])
    H = H.astype(np.float32).astype(np.float64)
    check_layer_gradient(infogain_text(write_matrix(tmp_path, H), loss_param), [x, labels], check_bottoms=[0])


def test_infogain_matrix_bottom_is_not_propagated():
    x, labels, H = infogain_case()
    layer, bottoms, tops = forward(infogain_text(), [x, labels, H])
    bottoms[2].diff[...] = 7
    tops[0].diff[...] = 1
    layer.backward_cpu(tops, [True, False, False], bottoms)
    assert (bottoms[2].diff == 7).all() and bottoms[0].diff.any()
    with pytest.raises(CaffeError, match="cannot backpropagate to bottom\\[2\\]"):
        layer.backward_cpu(tops, [True, False, True], bottoms)


def test_infogain_errors(tmp_path):
    x, labels, H = infogain_case()
    with pytest.raises(CaffeError, match="source"):
        setup_layer(infogain_text(), [x, labels])
    with pytest.raises(CaffeError, match="no such file"):
        setup_layer(infogain_text(str(tmp_path / "missing.binaryproto")), [x, labels])
    with pytest.raises(CaffeError, match="3x3"):
        setup_layer(infogain_text(), [x, labels, np.ones((2, 2))])
    with pytest.raises(CaffeError, match="normalize is deprecated"):
        setup_layer(infogain_text(loss_param="normalize: true"), [x, labels, H])


# -- ContrastiveLoss -------------------------------------------------------------------------
def contrastive_case():
    """Pairs at chosen distances, away from the margin (1) where the loss has a kink."""
    distances = np.array([0.3, 0.6, 1.5, 2.0, 0.5, 1.2])
    direction = RNG.standard_normal((6, 3))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    a = RNG.standard_normal((6, 3))
    return a, a + distances[:, None] * direction, np.array([0, 0, 0, 0, 1, 1], np.float64)


def naive_contrastive(a, b, similar, margin, legacy):
    loss = 0.0
    for i in range(a.shape[0]):
        dist_sq = sum((a[i] - b[i]) ** 2)
        if int(similar[i]):
            loss += dist_sq
        elif legacy:
            loss += max(margin - dist_sq, 0.0)
        else:
            loss += max(margin - math.sqrt(dist_sq), 0.0) ** 2
    return loss / a.shape[0] / 2


@pytest.mark.parametrize("legacy", [False, True])
def test_contrastive_values_and_gradient(legacy):
    a, b, similar = contrastive_case()
    text = f'type: "ContrastiveLoss" contrastive_loss_param {{ margin: 1 legacy_version: {str(legacy).lower()} }}'
    _, _, tops = forward(text, [a.reshape(6, 3, 1, 1), b.reshape(6, 3, 1, 1), similar])
    assert tops[0].data == pytest.approx(naive_contrastive(a, b, similar, 1.0, legacy), rel=1e-12)
    # Caffe divides by (d + 1e-4) instead of d in the non-legacy gradient; allow for that.
    check_layer_gradient(text, [a, b, similar], check_bottoms=[0, 1], threshold=1e-5 if legacy else 1e-3)


def test_contrastive_shape_errors():
    with pytest.raises(CaffeError, match="must be equal"):
        setup_layer('type: "ContrastiveLoss"', [np.zeros((2, 3)), np.zeros((2, 4)), np.zeros(2)])
    with pytest.raises(CaffeError, match="one per pair"):
        setup_layer('type: "ContrastiveLoss"', [np.zeros((2, 3)), np.zeros((2, 3)), np.zeros((2, 2))])


# -- float32 ---------------------------------------------------------------------------------
@pytest.mark.parametrize("text,arrays", [
    ('type: "EuclideanLoss"', lambda: [RNG.standard_normal((3, 4)), RNG.standard_normal((3, 4))]),
    (sigmoid_text("ignore_label: -1"), sigmoid_case),
    ('type: "HingeLoss" hinge_loss_param { norm: L2 }', hinge_case),
    ('type: "MultinomialLogisticLoss"', lambda: [RNG.uniform(0.05, 1, (3, 4)), [2, 0, 3]]),
    (infogain_text(loss_param="ignore_label: 1"), lambda: infogain_case(ignore=1)),
    ('type: "ContrastiveLoss"', contrastive_case),
])
def test_float32_matches_float64(text, arrays):
    arrays = arrays()
    results = []
    for dtype in (np.float32, np.float64):
        layer, bottoms, tops = forward(text, arrays, dtype=dtype)
        tops[0].diff[...] = 1.5
        layer.backward_cpu(tops, [True] + [layer.allow_force_backward(i) for i in range(1, len(bottoms))], bottoms)
        assert tops[0].data.dtype == bottoms[0].diff.dtype == dtype
        results.append([tops[0].data.copy(), bottoms[0].diff.copy()])
    for single, double in zip(*results):
        np.testing.assert_allclose(single, double, rtol=1e-4, atol=1e-6)
