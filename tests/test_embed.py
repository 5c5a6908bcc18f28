"""Embed (CPU): lookup values, weight and bias gradients (indices have none), bad indices."""
import numpy as np
import pytest

from nvcaffe_py.errors import CaffeError
from nvcaffe_py.gradient_check import check_layer_gradient, setup_layer

TEXT = ('name: "embed" type: "Embed" embed_param { num_output: 3 input_dim: 5 '
        'weight_filler { type: "gaussian" std: 1 } bias_filler { type: "gaussian" std: 1 } }')


def test_forward_looks_up_rows():
    indices = np.array([[4, 0, 2], [2, 2, 1]], dtype=float)
    layer, bottom, top = setup_layer(TEXT, [indices])
    layer.forward_cpu(bottom, top)
    w, b = layer.blobs[0].data, layer.blobs[1].data
    assert w.shape == (5, 3) and top[0].shape == (2, 3, 3)
    for pos in np.ndindex(indices.shape):
        np.testing.assert_allclose(top[0].data[pos], w[int(indices[pos])] + b)


def test_weight_and_bias_gradients():
    indices = np.array([3, 1, 3, 0, 4, 3], dtype=float)  # repeated indices must add up
    layer = check_layer_gradient(TEXT, [indices], check_bottoms=[])
    assert layer.blobs[0].diff.shape == (5, 3)


def test_weight_gradient_adds_rows_and_skips_unused_ones():
    indices = np.array([1, 1, 3], dtype=float)
    layer, bottom, top = setup_layer(TEXT.replace("input_dim: 5", "input_dim: 5 bias_term: false"), [indices])
    layer.forward_cpu(bottom, top)
    top[0].diff[...] = [[1, 2, 3], [10, 20, 30], [5, 5, 5]]
    layer.backward_cpu(top, [False], bottom)
    np.testing.assert_array_equal(layer.blobs[0].diff, [[0, 0, 0], [11, 22, 33], [0, 0, 0], [5, 5, 5], [0, 0, 0]])
    layer.backward_cpu(top, [False], bottom)
    np.testing.assert_array_equal(layer.blobs[0].diff[1], [22, 44, 66])


def test_indices_get_no_gradient():
    layer, bottom, top = setup_layer(TEXT, [np.array([0.0, 1.0])])
    assert not layer.allow_force_backward(0)
    with pytest.raises(CaffeError, match="'embed'.*backpropagate"):
        layer.backward_cpu(top, [True], bottom)


@pytest.mark.parametrize("bad", [5.0, -1.0, 1.5])
def test_bad_indices_are_errors(bad):
    layer, bottom, top = setup_layer(TEXT, [np.array([0.0, bad])])
    with pytest.raises(CaffeError, match="'embed'.*index"):
        layer.forward_cpu(bottom, top)
