"""InnerProduct (CPU): known values with axis and transpose, gradient checks, errors."""
import numpy as np
import pytest

from nvcaffe_py.errors import CaffeError
from nvcaffe_py.gradient_check import check_layer_gradient, setup_layer

FILLERS = 'weight_filler { type: "gaussian" std: 0.5 } bias_filler { type: "gaussian" std: 0.5 }'


def ip_text(params, fillers=FILLERS):
    return f'type: "InnerProduct" inner_product_param {{ {params} {fillers} }}'


def run(text, x):
    layer, bottom, top = setup_layer(text, [x])
    layer.forward_cpu(bottom, top)
    return layer, bottom, top


def reference(x, w, b, axis, transpose):
    rows = int(np.prod(x.shape[:axis]))
    w_nk = w.T if transpose else w
    y = x.reshape(rows, -1) @ w_nk.T
    if b is not None:
        y = y + b
    return y.reshape(x.shape[:axis] + (w_nk.shape[0],))


@pytest.mark.parametrize("params,axis,transpose", [
    ("num_output: 4", 1, False),
    ("num_output: 4 transpose: true", 1, True),
    ("num_output: 3 axis: 2", 2, False),
    ("num_output: 3 axis: -1 transpose: true", 3, True),
    ("num_output: 5 axis: 0 bias_term: false", 0, False),
])
def test_forward_matches_matrix_product(params, axis, transpose):
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 2))
    layer, _, top = run(ip_text(params), x)
    k = int(np.prod(x.shape[axis:]))
    n = top[0].shape[-1]
    assert layer.blobs[0].shape == ((k, n) if transpose else (n, k))
    bias = layer.blobs[1].data if len(layer.blobs) > 1 else None
    assert top[0].shape == x.shape[:axis] + (n,)
    np.testing.assert_allclose(top[0].data, reference(x, layer.blobs[0].data, bias, axis, transpose), atol=1e-12)


def test_known_values():
    x = np.array([[1.0, 2.0, 3.0], [0.0, -1.0, 1.0]])
    layer, _, top = run(ip_text("num_output: 2", 'weight_filler { type: "constant" value: 1 } '
                                                  'bias_filler { type: "constant" value: 0.5 }'), x)
    np.testing.assert_array_equal(top[0].data, [[6.5, 6.5], [0.5, 0.5]])


@pytest.mark.parametrize("params", ["num_output: 3", "num_output: 3 transpose: true", "num_output: 2 axis: 2",
                                    "num_output: 2 bias_term: false"])
def test_gradients(params):
    x = np.random.default_rng(1).standard_normal((2, 3, 2, 2))
    check_layer_gradient(ip_text(params), [x])


def test_weight_gradient_in_blocks(monkeypatch):
    from nvcaffe_py.layers import inner_product

    monkeypatch.setattr(inner_product, "GRADIENT_BLOCK_BYTES", 1)  # one output row per block
    x = np.random.default_rng(4).standard_normal((2, 3, 2))
    check_layer_gradient(ip_text("num_output: 3"), [x])
    check_layer_gradient(ip_text("num_output: 3 transpose: true"), [x])


def test_param_gradients_accumulate_and_switches_skip_work():
    x = np.random.default_rng(2).standard_normal((3, 4))
    layer, bottom, top = run(ip_text("num_output: 2 transpose: true"), x)
    top[0].diff[...] = np.random.default_rng(3).standard_normal(top[0].shape)
    layer.backward_cpu(top, [True], bottom)
    once = [p.diff.copy() for p in layer.blobs]
    np.testing.assert_allclose(once[0], x.T @ top[0].diff)
    np.testing.assert_allclose(once[1], top[0].diff.sum(axis=0))
    layer.backward_cpu(top, [True], bottom)
    for p, first in zip(layer.blobs, once):
        np.testing.assert_allclose(p.diff, 2 * first)
    bottom[0].diff[...] = 7
    layer.param_propagate_down = [False, False]
    layer.backward_cpu(top, [False], bottom)
    assert np.all(bottom[0].diff == 7)
    for p, first in zip(layer.blobs, once):
        np.testing.assert_allclose(p.diff, 2 * first)


def test_input_size_change_is_an_error():
    layer, bottom, top = run(f'name: "fc" {ip_text("num_output: 2")}', np.zeros((2, 3, 4)))
    bottom[0].reshape(5, 3, 4)  # a new batch size is fine
    layer.reshape(bottom, top)
    assert top[0].shape == (5, 2)
    bottom[0].reshape(2, 3, 5)
    with pytest.raises(CaffeError, match="'fc'.*12"):
        layer.reshape(bottom, top)
