"""Dropout (layers/dropout.py): TRAIN masks and scaling, TEST identity, in-place use, gradients;
the device mask (dropout_gpu.py) on a GPU or the CUDA emulator."""
import numpy as np
import pytest

import nvcaffe_py
from nvcaffe_py import rng
from nvcaffe_py.backends.cuda import rng as device_rng
from nvcaffe_py.errors import CaffeError
from nvcaffe_py.gradient_check import check_layer_gradient, setup_layer
from nvcaffe_py.proto import caffe_pb2


DROPOUT = 'type: "Dropout" dropout_param { dropout_ratio: 0.25 }'


def nonzero_inputs(shape, seed=0):
    """Values away from 0, so a zero output can only mean a dropped element."""
    x = np.random.default_rng(seed).uniform(0.5, 2.0, shape)
    return x * np.where(np.arange(x.size).reshape(shape) % 2, 1, -1)


def train_step(text, x, dy, dtype=np.float64, phase=caffe_pb2.TRAIN, seed=3):
    rng.set_random_seed(seed)
    layer, bottom, top = setup_layer(text, [x], phase=phase, dtype=dtype)
    layer.forward_cpu(bottom, top)
    top[0].diff[...] = dy
    layer.backward_cpu(top, [True], bottom)
    return top[0].data.copy(), bottom[0].diff.copy()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("ratio", [0.25, 0.5, 0.8])
def test_train_known_values(ratio, dtype):
    x = nonzero_inputs((100, 50)).astype(dtype)
    dy = np.random.default_rng(1).standard_normal(x.shape).astype(dtype)
    y, dx = train_step(f'type: "Dropout" dropout_param {{ dropout_ratio: {ratio} }}', x, dy, dtype)
    assert y.dtype == dtype
    kept = y != 0
    scale = dtype(1.0) / (dtype(1.0) - dtype(np.float32(ratio)))
    want_y, want_dx = np.zeros_like(x), np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        if kept[idx]:
            want_y[idx] = x[idx] * scale
            want_dx[idx] = dy[idx] * scale
    np.testing.assert_allclose(y, want_y, rtol=1e-6)
    np.testing.assert_allclose(dx, want_dx, rtol=1e-6)
    # 5000 Bernoulli draws: the kept fraction is within ~5 standard deviations of 1 - ratio.
    assert abs(kept.mean() - (1 - ratio)) < 0.03


def test_default_ratio_is_half():
    layer, _, _ = setup_layer('type: "Dropout"', [np.ones((4, 4))])
    assert layer.ratio == 0.5 and layer.scale == 2.0


def test_mask_follows_the_seed():
    x = nonzero_inputs((8, 16))
    dy = np.ones_like(x)
    y1, _ = train_step(DROPOUT, x, dy, seed=3)
    y2, _ = train_step(DROPOUT, x, dy, seed=3)
    y3, _ = train_step(DROPOUT, x, dy, seed=4)
    y4, _ = train_step(DROPOUT, x, dy, np.float32, seed=3)
    np.testing.assert_array_equal(y1, y2)
    assert np.any((y1 == 0) != (y3 == 0))
    np.testing.assert_array_equal(y1 == 0, y4 == 0)  # one mask for both dtypes


def test_each_forward_draws_a_new_mask():
    rng.set_random_seed(5)
    layer, bottom, top = setup_layer(DROPOUT, [nonzero_inputs((8, 16))])
    layer.forward_cpu(bottom, top)
    first = top[0].data == 0
    layer.forward_cpu(bottom, top)
    assert np.any(first != (top[0].data == 0))


@pytest.mark.parametrize("in_place", [False, True])
def test_test_phase_is_identity(in_place):
    x = nonzero_inputs((2, 3, 4))
    dy = np.random.default_rng(1).standard_normal(x.shape)
    layer, bottom, top = setup_layer(DROPOUT, [x], phase=caffe_pb2.TEST)
    if in_place:
        top = bottom
    layer.forward_cpu(bottom, top)
    np.testing.assert_array_equal(top[0].data, x)
    top[0].diff[...] = dy
    layer.backward_cpu(top, [True], bottom)
    np.testing.assert_array_equal(bottom[0].diff, dy)


def test_in_place_train_matches_separate_top():
    x = nonzero_inputs((4, 3, 5))
    dy = np.random.default_rng(1).standard_normal(x.shape)
    y, dx = train_step(DROPOUT, x, dy)
    rng.set_random_seed(3)
    layer, bottom, _ = setup_layer(DROPOUT, [x])
    blob = bottom[0]
    layer.forward_cpu([blob], [blob])
    np.testing.assert_array_equal(blob.data, y)
    blob.diff[...] = dy
    layer.backward_cpu([blob], [True], [blob])
    np.testing.assert_array_equal(blob.diff, dx)
    assert np.any(dx == 0) and np.any(dx != 0)


@pytest.mark.parametrize("ratio", [0.25, 0.5])
def test_gradient_in_train(ratio):
    check_layer_gradient(f'type: "Dropout" dropout_param {{ dropout_ratio: {ratio} }}',
                         [np.random.default_rng(2).standard_normal((2, 3, 4, 5))])


def test_gradient_in_test():
    check_layer_gradient(DROPOUT, [np.random.default_rng(2).standard_normal((2, 3, 4))], phase=caffe_pb2.TEST)


@pytest.mark.parametrize("ratio", [1.0, -0.1, 1.5])
def test_bad_ratio(ratio):
    with pytest.raises(CaffeError, match="dropout_ratio"):
        setup_layer(f'type: "Dropout" dropout_param {{ dropout_ratio: {ratio} }}', [np.ones((2, 2))])


def test_top_takes_bottom_shape():
    layer, bottom, top = setup_layer(DROPOUT, [np.ones((2, 3, 4))])
    assert top[0].shape == (2, 3, 4)
    bottom[0].reshape(5, 6)
    layer.reshape(bottom, top)
    assert top[0].shape == (5, 6)


# -- the GPU half ------------------------------------------------------------------------------
def test_device_mask_and_scaling(device):
    """The device keeps an element where its Philox draw exceeds ratio * 2^32 and scales it by
    1 / (1 - ratio); backward applies the same mask and scale."""
    x = nonzero_inputs((4, 5, 6)).astype(np.float32)
    dy = np.random.default_rng(11).standard_normal(x.shape).astype(np.float32)
    layer, bottom, top = setup_layer('type: "Dropout" dropout_param { dropout_ratio: 0.3 }', [x], dtype=np.float32)
    seed = 77
    rng.set_random_seed(seed)  # the device stream restarts: seed 77, first stream 1
    nvcaffe_py.set_mode_gpu()
    try:
        layer.forward(bottom, top)
        top[0].diff[...] = dy
        layer.backward(top, [True], bottom)
    finally:
        nvcaffe_py.set_mode_cpu()
    assert layer.gpu is not None
    y, dx = top[0].data, bottom[0].diff
    kept = y != 0
    np.testing.assert_allclose(y[kept], x[kept] / 0.7, rtol=1e-6)
    expected = device_rng.host_bits(x.size, seed, 1) > np.uint32(int(0.3 * 2 ** 32))
    np.testing.assert_array_equal(kept.reshape(-1), expected)
    assert 0.6 < kept.mean() < 0.8
    np.testing.assert_allclose(dx, np.where(kept, dy / 0.7, 0), rtol=1e-6)
