"""LRN: Caffe's across- and within-channel formulas against loop references, and gradients."""
import numpy as np
import pytest

from nvcaffe_py.errors import CaffeError
from nvcaffe_py.gradient_check import check_layer_gradient, setup_layer

ALPHA, BETA, K = 0.625, 0.75, 2.0  # exact in the float32 proto fields


def lrn(size, region="ACROSS_CHANNELS"):
    return (f'type: "LRN" lrn_param {{ local_size: {size} alpha: {ALPHA} beta: {BETA} k: {K} '
            f'norm_region: {region} }}')


def across_reference(x, size):
    num, channels, height, width = x.shape
    half = (size - 1) // 2
    top = np.empty_like(x)
    for n in range(num):
        for c in range(channels):
            for h in range(height):
                for w in range(width):
                    window = x[n, max(0, c - half):min(channels, c + half + 1), h, w]
                    scale = K + ALPHA / size * np.sum(window ** 2)
                    top[n, c, h, w] = x[n, c, h, w] * scale ** -BETA
    return top


def within_reference(x, size):
    # Caffe: AVE pooling of x^2 (pad (size-1)/2, divisor size^2), then (1 + alpha * that)^-beta; k unused.
    num, channels, height, width = x.shape
    half = (size - 1) // 2
    top = np.empty_like(x)
    for n in range(num):
        for c in range(channels):
            for h in range(height):
                for w in range(width):
                    window = x[n, c, max(0, h - half):h + half + 1, max(0, w - half):w + half + 1]
                    scale = 1 + ALPHA * np.sum(window ** 2) / size ** 2
                    top[n, c, h, w] = x[n, c, h, w] * scale ** -BETA
    return top


@pytest.mark.parametrize("size", [1, 3, 5, 9])
def test_across_channels_forward(size):
    x = np.random.default_rng(0).standard_normal((2, 7, 3, 2))
    layer, bottom, top = setup_layer(lrn(size), [x])
    layer.forward_cpu(bottom, top)
    np.testing.assert_allclose(top[0].data, across_reference(x, size), rtol=1e-12)


@pytest.mark.parametrize("size", [3, 5])
def test_within_channel_forward(size):
    x = np.random.default_rng(1).standard_normal((2, 2, 5, 6))
    layer, bottom, top = setup_layer(lrn(size, "WITHIN_CHANNEL"), [x])
    layer.forward_cpu(bottom, top)
    np.testing.assert_allclose(top[0].data, within_reference(x, size), rtol=1e-12)


def test_float32_matches_float64():
    x = np.random.default_rng(2).standard_normal((2, 6, 4, 4))
    out = {}
    for dtype in (np.float32, np.float64):
        layer, bottom, top = setup_layer(lrn(5), [x], dtype=dtype)
        layer.forward_cpu(bottom, top)
        out[dtype] = top[0].data
    assert out[np.float32].dtype == np.float32
    np.testing.assert_allclose(out[np.float32], out[np.float64], rtol=1e-5)


@pytest.mark.parametrize("size", [1, 3, 5, 9])
def test_across_channels_gradient(size):
    check_layer_gradient(lrn(size), [np.random.default_rng(3).standard_normal((2, 7, 3, 3))])


@pytest.mark.parametrize("size", [3, 5])
def test_within_channel_gradient(size):
    check_layer_gradient(lrn(size, "WITHIN_CHANNEL"), [np.random.default_rng(4).standard_normal((2, 2, 5, 6))])


def test_bad_input():
    with pytest.raises(CaffeError, match="LRN.*odd"):
        setup_layer(lrn(4), [np.zeros((1, 4, 3, 3))])
    with pytest.raises(CaffeError, match="LRN.*4 axes"):
        setup_layer(lrn(3), [np.zeros((4, 3))])
