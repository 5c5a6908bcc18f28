"""Scale and Bias: Caffe's broadcasting rule (axis, num_axes, scalar operands), fillers, gradients."""
import numpy as np
import pytest

from nvcaffe_py.blob import Blob
from nvcaffe_py.errors import CaffeError
from nvcaffe_py.gradient_check import check_layer_gradient, make_layer, setup_layer

SHAPE = (2, 3, 4, 5)


def data(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def broadcast(operand, axis, ndim=len(SHAPE)):
    """The operand reshaped to line up with bottom[0]'s axes [axis, axis + operand.ndim)."""
    return operand.reshape((1,) * axis + operand.shape + (1,) * (ndim - axis - operand.ndim))


# (scale_param / bias_param text, operand shape, axis used for broadcasting)
PARAM_OPERANDS = [
    ("", (3,), 1),
    ("axis: 0 num_axes: 2", (2, 3), 0),
    ("axis: -2 num_axes: -1", (4, 5), 2),
    ("axis: 1 num_axes: 0", (), 0),
    ("axis: 0 num_axes: -1", SHAPE, 0),
]


@pytest.mark.parametrize("params,shape,axis", PARAM_OPERANDS)
def test_scale_parameter_forward(params, shape, axis):
    x = data(*SHAPE)
    layer, bottom, top = setup_layer(f'type: "Scale" scale_param {{ {params} filler {{ type: "gaussian" }} }}', [x])
    assert layer.blobs[0].shape == shape
    layer.forward_cpu(bottom, top)
    np.testing.assert_allclose(top[0].data, x * broadcast(layer.blobs[0].data, axis))


def test_scale_defaults_to_identity_and_bias_to_zero():
    x = data(*SHAPE)
    layer, bottom, top = setup_layer('type: "Scale" scale_param { bias_term: true }', [x])
    assert [b.shape for b in layer.blobs] == [(3,), (3,)]
    np.testing.assert_array_equal(layer.blobs[0].data, 1)
    np.testing.assert_array_equal(layer.blobs[1].data, 0)
    layer.forward_cpu(bottom, top)
    np.testing.assert_allclose(top[0].data, x)


def test_scale_with_bias_term():
    x = data(*SHAPE)
    layer, bottom, top = setup_layer('type: "Scale" scale_param { axis: 1 num_axes: 2 bias_term: true '
                                     'filler { type: "uniform" } bias_filler { type: "gaussian" } }', [x])
    scale, bias = (broadcast(b.data, 1) for b in layer.blobs)
    assert layer.blobs[1].shape == (3, 4)
    layer.forward_cpu(bottom, top)
    np.testing.assert_allclose(top[0].data, x * scale + bias)


@pytest.mark.parametrize("operand_shape,params,axis", [((3, 4), "", 1), ((5,), "axis: -1", 3), ((), "axis: 2", 0)])
def test_scale_by_second_bottom(operand_shape, params, axis):
    x, s = data(*SHAPE), data(*operand_shape, seed=1)
    layer, bottom, top = setup_layer(f'type: "Scale" scale_param {{ {params} }}', [x, s])
    assert not layer.blobs
    layer.forward_cpu(bottom, top)
    np.testing.assert_allclose(top[0].data, x * broadcast(s, axis))


@pytest.mark.parametrize("params,shape,axis", PARAM_OPERANDS)
def test_bias_parameter_forward(params, shape, axis):
    x = data(*SHAPE)
    layer, bottom, top = setup_layer(f'type: "Bias" bias_param {{ {params} filler {{ type: "gaussian" }} }}', [x])
    assert layer.blobs[0].shape == shape
    layer.forward_cpu(bottom, top)
    np.testing.assert_allclose(top[0].data, x + broadcast(layer.blobs[0].data, axis))


def test_bias_by_second_bottom():
    x, b = data(*SHAPE), data(2, 3, seed=1)
    layer, bottom, top = setup_layer('type: "Bias" bias_param { axis: 0 }', [x, b])
    layer.forward_cpu(bottom, top)
    np.testing.assert_allclose(top[0].data, x + broadcast(b, 0))


@pytest.mark.parametrize("params", [p[0] for p in PARAM_OPERANDS])
def test_scale_gradient(params):
    check_layer_gradient(f'type: "Scale" scale_param {{ {params} bias_term: true filler {{ type: "gaussian" }} '
                         'bias_filler { type: "gaussian" } }', [data(*SHAPE)])


@pytest.mark.parametrize("operand_shape,params", [((3, 4), ""), ((), "axis: 3")])
def test_scale_by_second_bottom_gradient(operand_shape, params):
    check_layer_gradient(f'type: "Scale" scale_param {{ {params} bias_term: true }}',
                         [data(*SHAPE), data(*operand_shape, seed=1)])


@pytest.mark.parametrize("params", [p[0] for p in PARAM_OPERANDS])
def test_bias_gradient(params):
    check_layer_gradient(f'type: "Bias" bias_param {{ {params} filler {{ type: "gaussian" }} }}', [data(*SHAPE)])


def test_bias_by_second_bottom_gradient():
    check_layer_gradient('type: "Bias"', [data(*SHAPE), data(3, 4, seed=1)])


def run_once(text, x, in_place, dtype=np.float64):
    """Forward and backward once (in place or not); returns (top data, bottom diff, param diffs)."""
    layer = make_layer(text, dtype=dtype)
    bottom = Blob(x.shape, dtype=dtype)
    bottom.data[...] = x
    top = bottom if in_place else Blob(dtype=dtype)
    layer.setup([bottom], [top])
    for b in layer.blobs:
        b.data[...] = np.linspace(0.5, 2, b.data.size).reshape(b.shape)
    layer.reshape([bottom], [top])
    layer.forward_cpu([bottom], [top])
    out = top.data.copy()
    top.diff[...] = data(*x.shape, seed=9)
    layer.backward_cpu([top], [True], [bottom])
    return out, bottom.diff.copy(), [b.diff.copy() for b in layer.blobs]


@pytest.mark.parametrize("text", ['type: "Scale" scale_param { bias_term: true }', 'type: "Bias"'])
def test_in_place_matches_out_of_place(text):
    x = data(*SHAPE)
    expected, got = run_once(text, x, False), run_once(text, x, True)
    np.testing.assert_allclose(got[0], expected[0])
    np.testing.assert_allclose(got[1], expected[1])
    for a, b in zip(got[2], expected[2]):
        np.testing.assert_allclose(a, b)


def test_parameter_gradients_accumulate():
    layer, bottom, top = setup_layer('type: "Scale" scale_param { bias_term: true }', [data(*SHAPE)])
    layer.forward_cpu(bottom, top)
    top[0].diff[...] = 1
    layer.backward_cpu(top, [True], bottom)
    first = [b.diff.copy() for b in layer.blobs]
    layer.backward_cpu(top, [True], bottom)
    for blob, once in zip(layer.blobs, first):
        np.testing.assert_allclose(blob.diff, 2 * once)
    np.testing.assert_allclose(first[1], np.full(3, 2 * 4 * 5))


def test_float32():
    layer, bottom, top = setup_layer('type: "Scale" scale_param { bias_term: true }', [data(*SHAPE)],
                                     dtype=np.float32)
    layer.forward_cpu(bottom, top)
    assert top[0].data.dtype == np.float32 and layer.blobs[0].data.dtype == np.float32


@pytest.mark.parametrize("text,bottoms,message", [
    ('type: "Scale"', [SHAPE, (4,)], "does not match"),
    ('type: "Bias" bias_param { axis: 2 }', [SHAPE, (4, 5, 1)], "does not match"),
    ('type: "Scale" scale_param { num_axes: -2 }', [SHAPE], "num_axes"),
    ('type: "Bias" bias_param { axis: 2 num_axes: 3 }', [SHAPE], "extend past"),
    ('type: "Scale" scale_param { axis: 4 }', [SHAPE], "axis 4 out of range"),
])
def test_bad_shapes_name_the_layer(text, bottoms, message):
    with pytest.raises(CaffeError, match=f"layer 'layer' .*{message}"):
        setup_layer(text, [np.zeros(s) for s in bottoms])
