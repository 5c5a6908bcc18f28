"""MVN: per-plane or per-sample mean/variance normalization as Caffe computes it, and gradients."""
import numpy as np
import pytest

from nvcaffe_py.errors import CaffeError
from nvcaffe_py.gradient_check import check_layer_gradient, setup_layer


def mvn(params=""):
    return f'type: "MVN" mvn_param {{ {params} }}'


def reference(x, normalize_variance=True, across_channels=False, eps=1e-9):
    out = np.empty_like(x)
    for n in range(x.shape[0]):
        groups = [(n, slice(None))] if across_channels else [(n, c) for c in range(x.shape[1])]
        for group in groups:
            values = x[group]
            centred = values - values.mean()
            if normalize_variance:
                centred = centred / (np.sqrt(np.mean(centred ** 2)) + eps)  # eps after the root, as Caffe
            out[group] = centred
    return out


@pytest.mark.parametrize("params,kwargs", [
    ("", {}),
    ("across_channels: true", {"across_channels": True}),
    ("normalize_variance: false", {"normalize_variance": False}),
    ("normalize_variance: false across_channels: true", {"normalize_variance": False, "across_channels": True}),
    ("eps: 0.5", {"eps": 0.5}),
])
def test_forward(params, kwargs):
    x = np.random.default_rng(0).normal(2, 3, (2, 3, 4, 5))
    layer, bottom, top = setup_layer(mvn(params), [x])
    layer.forward_cpu(bottom, top)
    np.testing.assert_allclose(top[0].data, reference(x, **kwargs), rtol=1e-10, atol=1e-12)


def test_two_axis_input_normalizes_each_row_across_channels():
    x = np.random.default_rng(1).standard_normal((3, 7))
    layer, bottom, top = setup_layer(mvn("across_channels: true"), [x])
    layer.forward_cpu(bottom, top)
    np.testing.assert_allclose(top[0].data, reference(x[:, :, None], across_channels=True)[:, :, 0], rtol=1e-10)


def test_float32():
    x = np.random.default_rng(2).standard_normal((2, 3, 4, 5))
    layer, bottom, top = setup_layer(mvn(), [x], dtype=np.float32)
    layer.forward_cpu(bottom, top)
    assert top[0].data.dtype == np.float32
    np.testing.assert_allclose(top[0].data, reference(x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("params", ["", "across_channels: true", "normalize_variance: false",
                                    "normalize_variance: false across_channels: true"])
def test_gradient(params):
    check_layer_gradient(mvn(params), [np.random.default_rng(3).standard_normal((2, 3, 3, 4))])


def test_needs_one_bottom():
    with pytest.raises(CaffeError, match="exactly 1 bottom"):
        setup_layer(mvn(), [np.zeros((2, 2)), np.zeros((2, 2))])
