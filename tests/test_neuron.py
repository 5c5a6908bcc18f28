"""Element-wise layers (layers/neuron.py): known values against scalar references, gradient
checks in float64, in-place use, PReLU's parameter, and bad parameters."""
import math

import numpy as np
import pytest

from nvcaffe_py import rng
from nvcaffe_py.blob import Blob
from nvcaffe_py.errors import CaffeError
from nvcaffe_py.gradient_check import blobs_from_arrays, check_layer_gradient, make_layer, setup_layer

SHAPE = (2, 3, 4, 5)


def sigmoid(v):
    return 1.0 / (1.0 + math.exp(-v))


def away_from(x, kinks, margin=0.02):
    """x with every value within `margin` of a kink moved 2*margin above it."""
    x = x.copy()
    for k in kinks:
        near = np.abs(x - k) < margin
        x[near] = k + 2 * margin
    return x


def inputs(low=-2.0, high=2.0, kinks=()):
    return away_from(np.random.default_rng(0).uniform(low, high, SHAPE), kinks)


# name: (prototxt, f(x), df/dx, input array). Parameters are exact in float32 so the
# references can use them as written.
CASES = {
    "relu": ('type: "ReLU"', lambda v: max(v, 0.0), lambda v: float(v > 0), inputs(kinks=[0])),
    "relu_leaky": ('type: "ReLU" relu_param { negative_slope: 0.125 }',
                   lambda v: v if v > 0 else 0.125 * v, lambda v: 1.0 if v > 0 else 0.125, inputs(kinks=[0])),
    "relu_negative_slope": ('type: "ReLU" relu_param { negative_slope: -0.5 }',
                            lambda v: v if v > 0 else -0.5 * v, lambda v: 1.0 if v > 0 else -0.5, inputs(kinks=[0])),
    "elu": ('type: "ELU"', lambda v: v if v > 0 else math.expm1(v),
            lambda v: 1.0 if v > 0 else math.exp(v), inputs(kinks=[0])),
    "elu_alpha": ('type: "ELU" elu_param { alpha: 0.5 }', lambda v: v if v > 0 else 0.5 * math.expm1(v),
                  lambda v: 1.0 if v > 0 else 0.5 * math.exp(v), inputs(kinks=[0])),
    "elu_negative_alpha": ('type: "ELU" elu_param { alpha: -0.5 }', lambda v: v if v > 0 else -0.5 * math.expm1(v),
                           lambda v: 1.0 if v > 0 else -0.5 * math.exp(v), inputs(kinks=[0])),
    "sigmoid": ('type: "Sigmoid"', sigmoid, lambda v: sigmoid(v) * (1 - sigmoid(v)), inputs(-6, 6)),
    "tanh": ('type: "TanH"', math.tanh, lambda v: 1 - math.tanh(v) ** 2, inputs(-3, 3)),
    "absval": ('type: "AbsVal"', abs, lambda v: float(np.sign(v)), inputs(kinks=[0])),
    "power_square": ('type: "Power" power_param { power: 2 scale: 0.5 shift: 1 }',
                     lambda v: (1 + 0.5 * v) ** 2, lambda v: 2 * 0.5 * (1 + 0.5 * v), inputs()),
    "power_sqrt": ('type: "Power" power_param { power: 0.5 scale: 2 shift: 5 }',
                   lambda v: math.sqrt(5 + 2 * v), lambda v: 1 / math.sqrt(5 + 2 * v), inputs()),
    "power_cube_no_shift": ('type: "Power" power_param { power: 3 scale: -1.5 }',
                            lambda v: (-1.5 * v) ** 3, lambda v: 3 * -1.5 * (-1.5 * v) ** 2, inputs()),
    "power_linear": ('type: "Power" power_param { power: 1 scale: 3 shift: -1 }',
                     lambda v: 3 * v - 1, lambda v: 3.0, inputs()),
    "power_zero": ('type: "Power" power_param { power: 0 scale: 3 shift: 2 }',
                   lambda v: 1.0, lambda v: 0.0, inputs()),
    "exp": ('type: "Exp"', math.exp, math.exp, inputs()),
    "exp_base": ('type: "Exp" exp_param { base: 2 scale: 0.5 shift: 1 }',
                 lambda v: 2 ** (1 + 0.5 * v), lambda v: 2 ** (1 + 0.5 * v) * math.log(2) * 0.5, inputs()),
    "log": ('type: "Log"', math.log, lambda v: 1 / v, inputs(0.2, 3)),
    "log_base": ('type: "Log" log_param { base: 10 scale: 2 shift: 5 }',
                 lambda v: math.log10(5 + 2 * v), lambda v: 2 / ((5 + 2 * v) * math.log(10)), inputs()),
    "bnll": ('type: "BNLL"', lambda v: math.log1p(math.exp(v)), sigmoid, inputs(-8, 8)),
    "clip": ('type: "Clip" clip_param { min: -0.5 max: 1 }', lambda v: min(max(v, -0.5), 1.0),
             lambda v: float(-0.5 <= v <= 1), inputs(kinks=[-0.5, 1])),
    "swish": ('type: "Swish"', lambda v: v * sigmoid(v),
              lambda v: sigmoid(v) + v * sigmoid(v) * (1 - sigmoid(v)), inputs(-4, 4)),
    "swish_beta": ('type: "Swish" swish_param { beta: 1.5 }', lambda v: v * sigmoid(1.5 * v),
                   lambda v: sigmoid(1.5 * v) + 1.5 * v * sigmoid(1.5 * v) * (1 - sigmoid(1.5 * v)), inputs(-4, 4)),
}
PRELU = 'type: "PReLU" prelu_param { filler { type: "uniform" min: -1 max: 1 } }'
PRELU_SHARED = 'type: "PReLU" prelu_param { channel_shared: true filler { type: "uniform" min: -1 max: 1 } }'


def elementwise(f, x):
    out = np.empty(x.shape)
    for i, v in enumerate(x.ravel()):
        out.flat[i] = f(float(v))
    return out


def prelu_reference(x, slopes, dy):
    """Forward, bottom gradient and slope gradient of PReLU, element by element."""
    y, dx, dslope = np.empty(x.shape), np.empty(x.shape), np.zeros(slopes.size)
    for idx in np.ndindex(x.shape):
        c = 0 if slopes.size == 1 else idx[1]
        v = x[idx]
        y[idx] = v if v > 0 else slopes.flat[c] * v
        dx[idx] = dy[idx] * (1.0 if v > 0 else slopes.flat[c])
        dslope[c] += dy[idx] * min(v, 0.0)
    return y, dx, dslope


TOLERANCE = {np.float32: dict(rtol=2e-5, atol=2e-6), np.float64: dict(rtol=1e-10, atol=1e-12)}


def forward_backward(layer_text, x, dy, dtype=np.float64, in_place=False):
    """Run one forward and backward; returns (layer, top data, bottom diff, param diffs)."""
    rng.set_random_seed(7)  # the same filler values (and masks) in every call
    layer = make_layer(layer_text, dtype=dtype)
    bottom = blobs_from_arrays([x], dtype)[0]
    top = bottom if in_place else Blob(dtype=dtype)
    layer.setup([bottom], [top])
    layer.reshape([bottom], [top])
    layer.forward_cpu([bottom], [top])
    y = top.data.copy()
    top.diff[...] = dy
    layer.backward_cpu([top], [True], [bottom])
    return layer, y, bottom.diff.copy(), [p.diff.copy() for p in layer.blobs]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", sorted(CASES))
def test_known_values(case, dtype):
    text, f, df, x = CASES[case]
    x = x.astype(dtype)
    dy = np.random.default_rng(1).standard_normal(SHAPE)
    _, y, dx, _ = forward_backward(text, x, dy, dtype)
    assert y.dtype == dtype and dx.dtype == dtype
    np.testing.assert_allclose(y, elementwise(f, x), **TOLERANCE[dtype])
    np.testing.assert_allclose(dx, dy.astype(dtype) * elementwise(df, x), **TOLERANCE[dtype])


@pytest.mark.parametrize("case", sorted(CASES))
def test_gradient(case):
    text, _, _, x = CASES[case]
    check_layer_gradient(text, [x])


@pytest.mark.parametrize("case", sorted(CASES) + ["prelu", "prelu_shared"])
def test_in_place_matches_separate_top(case):
    text = {"prelu": PRELU, "prelu_shared": PRELU_SHARED}.get(case) or CASES[case][0]
    x = CASES.get(case, CASES["relu"])[3]
    dy = np.random.default_rng(2).standard_normal(SHAPE)
    _, y, dx, dparams = forward_backward(text, x, dy)
    _, y_in_place, dx_in_place, dparams_in_place = forward_backward(text, x, dy, in_place=True)
    np.testing.assert_array_equal(y_in_place, y)
    np.testing.assert_array_equal(dx_in_place, dx)
    for a, b in zip(dparams_in_place, dparams):
        np.testing.assert_array_equal(a, b)


def test_relu_kink_arguments_skip_zero():
    x = np.random.default_rng(3).uniform(-1, 1, SHAPE)
    x.flat[:5] = 0.0  # the finite difference there is 0.5, the gradient 0: these must be skipped
    check_layer_gradient('type: "ReLU" relu_param { negative_slope: 0.25 }', [x], kink=0.0, kink_range=0.01)
    with pytest.raises(AssertionError):
        check_layer_gradient('type: "ReLU" relu_param { negative_slope: 0.25 }', [x])


# -- PReLU -------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("text", [PRELU, PRELU_SHARED], ids=["per_channel", "shared"])
def test_prelu_known_values(text, dtype):
    x = inputs(kinks=[0]).astype(dtype)
    dy = np.random.default_rng(1).standard_normal(SHAPE)
    layer, y, dx, (dslope,) = forward_backward(text, x, dy, dtype)
    slopes = layer.blobs[0].data.astype(np.float64)
    assert len(set(slopes.ravel())) == slopes.size  # distinct per-channel values
    want_y, want_dx, want_dslope = prelu_reference(x.astype(np.float64), slopes, dy.astype(dtype))
    np.testing.assert_allclose(y, want_y, **TOLERANCE[dtype])
    np.testing.assert_allclose(dx, want_dx, **TOLERANCE[dtype])
    np.testing.assert_allclose(dslope.ravel(), want_dslope, rtol=1e-4 if dtype == np.float32 else 1e-10)


@pytest.mark.parametrize("text", [PRELU, PRELU_SHARED], ids=["per_channel", "shared"])
def test_prelu_gradient(text):
    check_layer_gradient(text, [inputs(kinks=[0])])


def test_prelu_gradient_2d_bottom():
    check_layer_gradient(PRELU, [away_from(np.random.default_rng(4).uniform(-2, 2, (4, 3)), [0])])


def test_prelu_default_filler_and_shapes():
    layer, _, _ = setup_layer('type: "PReLU"', [np.ones(SHAPE)])
    assert layer.blobs[0].shape == (3,)
    np.testing.assert_array_equal(layer.blobs[0].data, 0.25)
    assert layer.param_propagate_down == [True]
    shared, _, _ = setup_layer('type: "PReLU" prelu_param { channel_shared: true }', [np.ones(SHAPE)])
    assert shared.blobs[0].shape == () and shared.blobs[0].count() == 1


def test_prelu_slope_gradient_accumulates():
    layer, bottom, top = setup_layer(PRELU, [inputs()])
    layer.forward_cpu(bottom, top)
    top[0].diff[...] = 1.0
    layer.backward_cpu(top, [True], bottom)
    once = layer.blobs[0].diff.copy()
    assert np.all(once != 0)
    layer.backward_cpu(top, [False], bottom)
    np.testing.assert_allclose(layer.blobs[0].diff, 2 * once)


def test_prelu_respects_param_propagate_down():
    layer, bottom, top = setup_layer(PRELU, [inputs()])
    layer.param_propagate_down = [False]
    layer.forward_cpu(bottom, top)
    top[0].diff[...] = 1.0
    layer.backward_cpu(top, [True], bottom)
    np.testing.assert_array_equal(layer.blobs[0].diff, 0)


def test_prelu_errors():
    with pytest.raises(CaffeError, match="at least 2 axes"):
        setup_layer('type: "PReLU"', [np.ones(4)])
    layer, bottom, top = setup_layer('type: "PReLU"', [np.ones(SHAPE)])
    bottom[0].reshape(2, 5, 4)
    with pytest.raises(CaffeError, match="5 channels"):
        layer.reshape(bottom, top)


# -- Threshold and bad parameters ----------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_threshold_known_values(dtype):
    x = np.array([[-1.0, 0.0, 0.25, 0.5, 0.75, 2.0]], dtype)
    layer, bottom, top = setup_layer('type: "Threshold" threshold_param { threshold: 0.5 }', [x], dtype=dtype)
    layer.forward_cpu(bottom, top)
    assert top[0].data.dtype == dtype
    np.testing.assert_array_equal(top[0].data, elementwise(lambda v: float(v > 0.5), x))
    with pytest.raises(CaffeError, match="cannot backpropagate"):
        layer.backward_cpu(top, [True], bottom)


@pytest.mark.parametrize("text, message", [
    ('type: "Exp" exp_param { base: 0 }', "strictly positive"),
    ('type: "Log" log_param { base: -2 }', "strictly positive"),
    ('type: "Log" log_param { base: 1 }', "base 1"),
    ('type: "Clip" clip_param { min: 0 }', "min and max"),
])
def test_bad_parameters(text, message):
    with pytest.raises(CaffeError, match=message):
        setup_layer(text, [np.ones(SHAPE)])


def test_one_bottom_one_top():
    layer = make_layer('type: "ReLU"')
    with pytest.raises(CaffeError, match="exactly 1 bottom"):
        layer.check_blob_counts([Blob(2), Blob(2)], [Blob()])
