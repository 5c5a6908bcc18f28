"""Eltwise (layers/eltwise.py): SUM with coeff, PROD (stable and quotient gradients), MAX with
Caffe's tie rule; known values against element loops, float64 gradient checks, bad input."""
import itertools

import numpy as np
import pytest

from nvcaffe_py.errors import CaffeError
from nvcaffe_py.gradient_check import check_layer_gradient, setup_layer

SHAPE = (2, 3, 2, 3)


def run(text, arrays, dtype=np.float64):
    layer, bottoms, tops = setup_layer(text, arrays, dtype=dtype)
    layer.reshape(bottoms, tops)
    layer.forward_cpu(bottoms, tops)
    return layer, bottoms, tops


def backward(layer, bottoms, tops, top_diff, propagate=None):
    tops[0].diff[...] = top_diff
    layer.backward_cpu(tops, propagate or [True] * len(bottoms), bottoms)
    return [b.diff.copy() for b in bottoms]


def separated(n, seed=0):
    """n arrays whose values differ everywhere by at least 0.1 (no near-ties for MAX)."""
    rng = np.random.default_rng(seed)
    size = int(np.prod(SHAPE))
    ranks = np.stack([rng.permutation(n) for _ in range(size)], axis=1)
    return [(0.1 * r + rng.uniform(-1, 1, size)[None]).reshape(SHAPE) for r in ranks]


def inputs(n, seed=0):
    rng = np.random.default_rng(seed)
    # magnitudes in [0.5, 1.5] keep the quotient gradient (top / x) well conditioned
    return [rng.uniform(0.5, 1.5, SHAPE) * rng.choice([-1, 1], SHAPE) for _ in range(n)]


def reference(op, arrays, coeffs=None):
    out, idx = np.empty(SHAPE), np.empty(SHAPE, int)
    for pos in itertools.product(*map(range, SHAPE)):
        values = [a[pos] for a in arrays]
        if op == "SUM":
            out[pos] = sum(c * v for c, v in zip(coeffs or [1] * len(values), values))
        elif op == "PROD":
            out[pos] = np.prod(values)
        else:
            best = 0 if values[0] > values[1] else 1
            for k in range(2, len(values)):
                if values[k] > values[best]:
                    best = k
            out[pos], idx[pos] = values[best], best
    return out, idx


@pytest.mark.parametrize("n", [2, 3])
def test_sum_default_and_coeff(n):
    xs = inputs(n)
    _, _, tops = run('type: "Eltwise"', xs)
    np.testing.assert_allclose(tops[0].data, reference("SUM", xs)[0], rtol=1e-12)
    coeffs = [0.5, -2.0, 3.0][:n]
    text = 'type: "Eltwise" eltwise_param { operation: SUM ' + " ".join(f"coeff: {c}" for c in coeffs) + " }"
    layer, bottoms, tops = run(text, xs)
    np.testing.assert_allclose(tops[0].data, reference("SUM", xs, coeffs)[0], rtol=1e-12)
    g = np.random.default_rng(1).standard_normal(SHAPE)
    for c, diff in zip(coeffs, backward(layer, bottoms, tops, g)):
        np.testing.assert_allclose(diff, c * g, rtol=1e-12)


@pytest.mark.parametrize("n", [2, 3])
def test_prod_values_and_gradient(n):
    xs = inputs(n)
    layer, bottoms, tops = run('type: "Eltwise" eltwise_param { operation: PROD }', xs)
    np.testing.assert_allclose(tops[0].data, reference("PROD", xs)[0], rtol=1e-12)
    g = np.random.default_rng(1).standard_normal(SHAPE)
    for i, diff in enumerate(backward(layer, bottoms, tops, g)):
        others = np.prod([x for j, x in enumerate(xs) if j != i], axis=0)
        np.testing.assert_allclose(diff, g * others, rtol=1e-12)


def test_stable_prod_grad_survives_a_zero_input():
    xs = inputs(3)
    xs[0][0, 0, 0, 0] = 0.0
    grad = {}
    for stable in ("true", "false"):
        text = f'type: "Eltwise" eltwise_param {{ operation: PROD stable_prod_grad: {stable} }}'
        layer, bottoms, tops = run(text, xs)
        with np.errstate(invalid="ignore", divide="ignore"):
            grad[stable] = backward(layer, bottoms, tops, np.ones(SHAPE))[0][0, 0, 0, 0]
    assert grad["true"] == xs[1][0, 0, 0, 0] * xs[2][0, 0, 0, 0]
    assert np.isnan(grad["false"])  # top / x = 0 / 0, as Caffe's quotient form


@pytest.mark.parametrize("n", [2, 3, 4])
def test_max_values_and_routed_gradient(n):
    xs = separated(n)
    layer, bottoms, tops = run('type: "Eltwise" eltwise_param { operation: MAX }', xs)
    out, idx = reference("MAX", xs)
    np.testing.assert_array_equal(tops[0].data, out)
    g = np.random.default_rng(1).standard_normal(SHAPE)
    for i, diff in enumerate(backward(layer, bottoms, tops, g)):
        np.testing.assert_array_equal(diff, np.where(idx == i, g, 0))


def test_max_ties_follow_caffe():
    # bottom[1] wins a tie with bottom[0]; a later input must be strictly larger to win
    a = np.zeros((1, 3))
    b = np.array([[0.0, 1.0, -1.0]])
    c = np.array([[0.0, 1.0, 5.0]])
    layer, bottoms, tops = run('type: "Eltwise" eltwise_param { operation: MAX }', [a, b, c])
    tops[0].diff[...] = 1
    layer.backward_cpu(tops, [True] * 3, bottoms)
    np.testing.assert_array_equal(bottoms[0].diff, [[0, 0, 0]])
    np.testing.assert_array_equal(bottoms[1].diff, [[1, 1, 0]])
    np.testing.assert_array_equal(bottoms[2].diff, [[0, 0, 1]])


def test_float32_and_propagate_down():
    xs = inputs(2)
    layer, bottoms, tops = run('type: "Eltwise" eltwise_param { coeff: 1 coeff: -1 }', xs, dtype=np.float32)
    assert tops[0].data.dtype == np.float32
    np.testing.assert_allclose(tops[0].data, xs[0] - xs[1], rtol=1e-6)
    bottoms[0].diff[...] = 7
    backward(layer, bottoms, tops, np.ones(SHAPE), propagate=[False, True])
    assert (bottoms[0].diff == 7).all() and (bottoms[1].diff == -1).all()


@pytest.mark.parametrize("param", ["", "operation: SUM coeff: 0.5 coeff: -1.5 coeff: 2",
                                   "operation: PROD", "operation: PROD stable_prod_grad: false",
                                   "operation: MAX"])
def test_gradient(param):
    xs = separated(3) if "MAX" in param else inputs(3)
    check_layer_gradient(f'type: "Eltwise" eltwise_param {{ {param} }}', xs)


def test_bad_input():
    x, y = np.ones((2, 3)), np.ones((2, 4))
    with pytest.raises(CaffeError, match=r"layer 'layer' \(Eltwise\).*\(2, 3\).*\(2, 4\)"):
        setup_layer('type: "Eltwise"', [x, y])
    with pytest.raises(CaffeError, match="one coeff per bottom"):
        setup_layer('type: "Eltwise" eltwise_param { coeff: 1 }', [x, x])
    with pytest.raises(CaffeError, match="SUM only"):
        setup_layer('type: "Eltwise" eltwise_param { operation: PROD coeff: 1 coeff: 2 }', [x, x])
    with pytest.raises(CaffeError, match="at least 2 bottom"):
        setup_layer('type: "Eltwise"', [x])
