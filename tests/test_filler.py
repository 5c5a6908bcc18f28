"""Weight fillers against Caffe's filler.hpp definitions."""
import math

import numpy as np
import pytest

import nvcaffe_py
from nvcaffe_py.blob import Blob
from nvcaffe_py.errors import CaffeError
from nvcaffe_py.filler import fill
from nvcaffe_py.formats import parse_text
from nvcaffe_py.proto import caffe_pb2

# (num_outputs, inputs, kh, kw): fan_in = 50*9 = 450, fan_out = 200*9 = 1800; 90,000 draws make
# the sample moments accurate to about 1%.
CONV_SHAPE = (200, 50, 3, 3)
FAN_IN, FAN_OUT = 450, 1800


def filled(text, shape, dtype=np.float32):
    blob = Blob(shape, dtype=dtype)
    fill(blob, parse_text(text, caffe_pb2.FillerParameter()))
    return blob.data


def test_constant():
    assert np.all(filled('type: "constant" value: 2.5', (3, 4)) == 2.5)
    assert np.all(filled("", (5,)) == 0)  # Caffe's default filler: constant 0


def test_uniform_range():
    values = filled('type: "uniform" min: -0.5 max: 2', (100, 100))
    assert values.min() >= -0.5 and values.max() <= 2
    # Both ends are reached, i.e. the range is not narrower than asked.
    assert values.min() < -0.49 and values.max() > 1.99
    assert values.mean() == pytest.approx(0.75, abs=0.02)


def test_gaussian_mean_and_std():
    values = filled('type: "gaussian" mean: 3 std: 0.5', (200, 500))
    assert values.mean() == pytest.approx(3, abs=0.01)
    assert values.std() == pytest.approx(0.5, rel=0.02)


def test_sparse_gaussian_keeps_sparse_over_num_outputs():
    # num_outputs = shape[0] = 10, sparse = 3: each weight is non-zero with probability 0.3.
    values = filled('type: "gaussian" std: 1 sparse: 3', (10, 5000))
    fraction = np.count_nonzero(values) / values.size
    assert fraction == pytest.approx(0.3, abs=0.01)
    assert values[values != 0].std() == pytest.approx(1, rel=0.03)


def test_positive_unitball_rows_sum_to_one():
    values = filled('type: "positive_unitball"', (6, 3, 4, 5))
    assert np.all(values >= 0)
    np.testing.assert_allclose(values.reshape(6, -1).sum(axis=1), 1, rtol=1e-5)
    assert len(np.unique(values)) > 300  # random, not a constant 1/60


VARIANCE_NORMS = [("FAN_IN", FAN_IN), ("FAN_OUT", FAN_OUT), ("AVERAGE", (FAN_IN + FAN_OUT) / 2)]


@pytest.mark.parametrize("norm, n", VARIANCE_NORMS)
def test_xavier_is_uniform_with_variance_one_over_n(norm, n):
    values = filled(f'type: "xavier" variance_norm: {norm}', CONV_SHAPE)
    scale = math.sqrt(3.0 / n)
    assert np.abs(values).max() <= scale * (1 + 1e-6)
    assert np.abs(values).max() > 0.99 * scale
    assert values.var() == pytest.approx(1.0 / n, rel=0.03)


@pytest.mark.parametrize("norm, n", VARIANCE_NORMS)
def test_msra_is_gaussian_with_variance_two_over_n(norm, n):
    values = filled(f'type: "msra" variance_norm: {norm}', CONV_SHAPE)
    assert values.mean() == pytest.approx(0, abs=0.01 * math.sqrt(2.0 / n))
    assert values.var() == pytest.approx(2.0 / n, rel=0.03)


def test_xavier_defaults_to_fan_in_and_one_axis_blobs_use_the_count():
    default = filled('type: "xavier"', CONV_SHAPE)
    assert np.abs(default).max() <= math.sqrt(3.0 / FAN_IN) * (1 + 1e-6)
    # A 1-axis blob of 1000: fan_in = 1000 / 1000 = 1, fan_out = count = 1000.
    bias = filled('type: "xavier" variance_norm: FAN_OUT', (1000,))
    assert np.abs(bias).max() <= math.sqrt(3.0 / 1000) * (1 + 1e-6)
    assert np.abs(bias).max() > 0.9 * math.sqrt(3.0 / 1000)


def test_bilinear_4x4_known_values():
    # f = 2, c = 3/4: the 1-d profile is (1/4, 3/4, 3/4, 1/4), the kernel its outer product.
    values = filled('type: "bilinear"', (2, 3, 4, 4))
    profile = np.array([0.25, 0.75, 0.75, 0.25])
    for kernel in values.reshape(6, 4, 4):
        np.testing.assert_allclose(kernel, np.outer(profile, profile), rtol=1e-6)


@pytest.mark.parametrize("shape", [(1, 1, 3, 4), (4, 4)])
def test_bilinear_needs_square_4d_kernels(shape):
    with pytest.raises(CaffeError, match="bilinear"):
        filled('type: "bilinear"', shape)


def test_unknown_filler_type_is_an_error():
    with pytest.raises(CaffeError, match="unknown filler type 'glorot'.*xavier"):
        filled('type: "glorot"', (2, 2))


@pytest.mark.parametrize("kind", ["uniform", "gaussian", "xavier", "msra", "positive_unitball"])
def test_random_fillers_repeat_under_the_same_seed(kind):
    def draw(seed):
        nvcaffe_py.set_random_seed(seed)
        return filled(f'type: "{kind}"', (4, 3, 2, 2)).copy()

    np.testing.assert_array_equal(draw(7), draw(7))
    assert not np.array_equal(draw(7), draw(8))


def test_float64_blobs_are_filled_without_a_float32_detour():
    # float32 holds only ~8 distinct values in [1, 1 + 1e-6]; float64 keeps every draw distinct.
    values = filled('type: "uniform" min: 1 max: 1.000001', (1000,), dtype=np.float64)
    assert values.dtype == np.float64
    assert len(np.unique(values)) == 1000


def test_new_param_blob_fills_in_the_layer_dtype():
    param = caffe_pb2.LayerParameter(name="ip", type="InnerProduct")
    layer = nvcaffe_py.Layer(param, dtype=np.float64)
    blob = layer.new_param_blob((3, 2), caffe_pb2.FillerParameter(type="constant", value=0.5))
    assert blob.dtype == np.float64 and np.all(blob.data == 0.5)
    assert np.all(layer.new_param_blob((2,)).data == 0)
