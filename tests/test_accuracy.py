"""Accuracy (top-k, axis, ignore_label, per-class top) and ArgMax (top_k, out_max_val, axis)
against loop references, Caffe's tie rules, shapes and errors."""
import numpy as np
import pytest

from nvcaffe_py.errors import CaffeError
from nvcaffe_py.gradient_check import make_layer, setup_layer

RNG = np.random.default_rng(5)


def forward(text, arrays, num_tops=1):
    layer, bottoms, tops = setup_layer(text, arrays, num_tops=num_tops)
    layer.forward_cpu(bottoms, tops)
    return tops


def naive_accuracy(scores, labels, axis, top_k, ignore):
    """Caffe's rule: correct when fewer than top_k other classes score at least the true class."""
    scores = np.moveaxis(scores, axis, -1)
    labels = labels.reshape(scores.shape[:-1])
    num_classes = scores.shape[-1]
    hits, totals = np.zeros(num_classes), np.zeros(num_classes)
    for idx in np.ndindex(labels.shape):
        label = int(labels[idx])
        if ignore is not None and label == ignore:
            continue
        rivals = sum(1 for k in range(num_classes) if k != label and scores[idx][k] >= scores[idx][label])
        totals[label] += 1
        hits[label] += rivals < top_k
    per_class = [h / t if t else 0.0 for h, t in zip(hits, totals)]
    return (hits.sum() / totals.sum() if totals.sum() else 0.0), per_class


@pytest.mark.parametrize("top_k", [1, 2, 3])
@pytest.mark.parametrize("ignore", [None, 2])
def test_accuracy_against_reference(top_k, ignore):
    # Rounded scores make ties common.
    scores = np.round(RNG.standard_normal((6, 5, 2)), 1)
    labels = RNG.integers(0, 5, (6, 2)).astype(np.float64)
    ignore_text = "" if ignore is None else f"ignore_label: {ignore}"
    tops = forward(f'type: "Accuracy" accuracy_param {{ top_k: {top_k} {ignore_text} }}', [scores, labels], 2)
    expected, per_class = naive_accuracy(scores, labels, 1, top_k, ignore)
    assert tops[0].shape == () and tops[1].shape == (5,)
    assert tops[0].data == pytest.approx(expected, rel=1e-12)
    np.testing.assert_allclose(tops[1].data, per_class, rtol=1e-12)


def test_accuracy_other_axis():
    scores, labels = RNG.standard_normal((2, 3, 4)), RNG.integers(0, 4, (2, 3))
    tops = forward('type: "Accuracy" accuracy_param { axis: -1 }', [scores, labels])
    assert tops[0].data == pytest.approx(naive_accuracy(scores, labels, 2, 1, None)[0], rel=1e-12)


def test_accuracy_ties_count_against_the_true_class():
    scores = [[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 2.0, 1.0]]
    labels = [0, 1, 1]
    assert forward('type: "Accuracy"', [scores, labels])[0].data == pytest.approx(1 / 3)
    assert forward('type: "Accuracy" accuracy_param { top_k: 2 }', [scores, labels])[0].data == 1


def test_accuracy_all_ignored_and_absent_classes_give_zero():
    tops = forward('type: "Accuracy" accuracy_param { ignore_label: 1 }', [np.eye(3)[:2], [1, 1]], 2)
    assert tops[0].data == 0
    assert not tops[1].data.any()


def test_accuracy_errors():
    with pytest.raises(CaffeError, match="top_k 4 must be less than or equal to the number of classes 3"):
        setup_layer('type: "Accuracy" accuracy_param { top_k: 4 }', [np.zeros((2, 3)), np.zeros(2)])
    with pytest.raises(CaffeError, match="number of labels must match"):
        setup_layer('type: "Accuracy"', [np.zeros((2, 3, 2)), np.zeros(2)])
    with pytest.raises(CaffeError, match="label 3 is outside"):
        forward('type: "Accuracy"', [np.zeros((2, 3)), [0, 3]])


@pytest.mark.parametrize("layer_type", ["Accuracy", "ArgMax"])
def test_no_gradient_even_with_force_backward(layer_type):
    layer = make_layer(f'type: "{layer_type}"')
    assert not layer.allow_force_backward(0)
    with pytest.raises(CaffeError, match="cannot backpropagate"):
        layer.backward_cpu([], [True], [])


# -- ArgMax ----------------------------------------------------------------------------------
def naive_top_k(values, top_k):
    """Caffe sorts (value, index) pairs descending: ties go to the larger index."""
    pairs = sorted(((v, i) for i, v in enumerate(values)), reverse=True)[:top_k]
    return [i for _, i in pairs], [v for v, _ in pairs]


def test_argmax_flattened():
    x = RNG.standard_normal((3, 2, 2, 2))
    tops = forward('type: "ArgMax"', [x])
    assert tops[0].shape == (3, 1, 1, 1)
    np.testing.assert_array_equal(tops[0].data.reshape(3), [naive_top_k(r, 1)[0][0] for r in x.reshape(3, -1)])


def test_argmax_top_k_with_max_values():
    x = np.round(RNG.standard_normal((2, 6)), 1)
    x[0, 1] = x[0, 4] = 5  # a tie at the top
    tops = forward('type: "ArgMax" argmax_param { top_k: 3 out_max_val: true }', [x])
    assert tops[0].shape == (2, 2, 3)
    for i, row in enumerate(x):
        indices, values = naive_top_k(row, 3)
        np.testing.assert_array_equal(tops[0].data[i], [indices, values])
    assert list(tops[0].data[0, 0, :2]) == [4, 1]


@pytest.mark.parametrize("out_max_val", [False, True])
def test_argmax_along_axis(out_max_val):
    x = RNG.standard_normal((2, 5, 3))
    tops = forward(f'type: "ArgMax" argmax_param {{ top_k: 2 axis: 1 out_max_val: {str(out_max_val).lower()} }}', [x])
    assert tops[0].shape == (2, 2, 3)
    for n in range(2):
        for w in range(3):
            indices, values = naive_top_k(x[n, :, w], 2)
            np.testing.assert_array_equal(tops[0].data[n, :, w], values if out_max_val else indices)


def test_argmax_errors():
    with pytest.raises(CaffeError, match="top_k 7 is larger than the 6 entries"):
        setup_layer('type: "ArgMax" argmax_param { top_k: 7 }', [np.zeros((2, 3, 2))])
    with pytest.raises(CaffeError, match="top_k 4 is larger than the 3 entries"):
        setup_layer('type: "ArgMax" argmax_param { top_k: 4 axis: 1 }', [np.zeros((2, 3, 2))])
    with pytest.raises(CaffeError, match="at least 1"):
        setup_layer('type: "ArgMax" argmax_param { top_k: 0 }', [np.zeros((2, 3))])
