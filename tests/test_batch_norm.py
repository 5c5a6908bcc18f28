"""BatchNorm: batch statistics, Caffe's running averages, global statistics, param specs, gradients."""
import numpy as np
import pytest

from nvcaffe_py.blob import Blob
from nvcaffe_py.errors import CaffeError
from nvcaffe_py.formats import parse_text
from nvcaffe_py.gradient_check import check_layer_gradient, make_layer, setup_layer
from nvcaffe_py.net import Net
from nvcaffe_py.proto import caffe_pb2

BN = 'type: "BatchNorm" batch_norm_param { moving_average_fraction: 0.9 eps: 0.001 }'


def normalize(x, mean, variance, eps=0.001):
    shape = (1, -1) + (1,) * (x.ndim - 2)
    return (x - mean.reshape(shape)) / np.sqrt(variance.reshape(shape) + eps)


def test_train_forward_normalizes_each_channel_and_updates_running_stats():
    rng = np.random.default_rng(0)
    batches = [rng.normal(3, 2, (4, 3, 2, 5)), rng.normal(-1, 0.5, (4, 3, 2, 5))]
    layer, bottom, top = setup_layer(BN, batches[:1])
    assert [b.shape for b in layer.blobs] == [(3,), (3,), (1,)]
    for x in batches:
        bottom[0].data[...] = x
        layer.forward_cpu(bottom, top)
        mean, variance = x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3))
        np.testing.assert_allclose(top[0].data, normalize(x, mean, variance), rtol=1e-10)
    # s <- 0.9 s + 1; mean_sum <- mean + 0.9 mean_sum; var_sum <- m/(m-1) var + 0.9 var_sum, m = 40.
    (m0, v0), (m1, v1) = [(x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3))) for x in batches]
    np.testing.assert_allclose(layer.blobs[2].data, [1.9])
    np.testing.assert_allclose(layer.blobs[0].data, m1 + 0.9 * m0)
    np.testing.assert_allclose(layer.blobs[1].data, 40 / 39 * v1 + 0.9 * 40 / 39 * v0)


def test_global_stats_divide_by_the_scale_factor():
    x = np.random.default_rng(1).standard_normal((2, 3, 4))
    # Phase TEST means use_global_stats unless the prototxt says otherwise.
    layer, bottom, top = setup_layer(BN, [x], phase=caffe_pb2.TEST)
    assert layer.use_global_stats
    layer.blobs[0].data[...] = [2.0, 4.0, 6.0]
    layer.blobs[1].data[...] = [8.0, 2.0, 0.5]
    layer.blobs[2].data[...] = 2.0
    layer.forward_cpu(bottom, top)
    np.testing.assert_allclose(top[0].data, normalize(x, np.array([1.0, 2.0, 3.0]), np.array([4.0, 1.0, 0.25])))
    before = [b.data.copy() for b in layer.blobs]
    layer.blobs[2].data[...] = 0  # a never-updated layer: Caffe uses zero statistics
    layer.forward_cpu(bottom, top)
    np.testing.assert_allclose(top[0].data, x / np.sqrt(0.001))
    np.testing.assert_array_equal(layer.blobs[0].data, before[0])


def test_use_global_stats_overrides_the_phase():
    layer, _, _ = setup_layer('type: "BatchNorm" batch_norm_param { use_global_stats: true }', [np.ones((2, 3))])
    assert layer.use_global_stats
    layer, _, _ = setup_layer('type: "BatchNorm" batch_norm_param { use_global_stats: false }', [np.ones((2, 3))],
                              phase=caffe_pb2.TEST)
    assert not layer.use_global_stats


def test_param_specs_get_lr_mult_zero():
    layer, _, _ = setup_layer('type: "BatchNorm" param { lr_mult: 0 }', [np.ones((2, 3, 2))])
    assert [p.lr_mult for p in layer.layer_param.param] == [0, 0, 0]
    with pytest.raises(CaffeError, match="layer 'layer' \\(BatchNorm\\).*lr_mult"):
        setup_layer('type: "BatchNorm" param { lr_mult: 0 } param { lr_mult: 1 }', [np.ones((2, 3, 2))])


def test_net_never_trains_the_statistics():
    net_param = parse_text("""
        layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 4 dim: 3 dim: 2 dim: 2 } } }
        layer { name: "bn" type: "BatchNorm" bottom: "data" top: "data" }
    """, caffe_pb2.NetParameter(), "<test>")
    net = Net(net_param, caffe_pb2.TRAIN)
    bn = net.layers[net.layer_index("bn")]
    assert len(bn.blobs) == 3 and bn.param_propagate_down == [False, False, False]


@pytest.mark.parametrize("shape", [(4, 3, 2, 3), (5, 3), (6,)])
def test_batch_gradient(shape):
    check_layer_gradient(BN, [np.random.default_rng(2).standard_normal(shape)])


def test_global_stats_gradient():
    # The statistics are not parameters of the loss (their lr_mult is 0), so only the input is checked.
    layer = make_layer(BN, phase=caffe_pb2.TEST)
    layer.blobs.extend(layer.new_param_blob(s) for s in ((3,), (3,), (1,)))
    layer.blobs[0].data[...] = [1.0, -2.0, 0.5]
    layer.blobs[1].data[...] = [2.0, 0.3, 1.0]
    layer.blobs[2].data[...] = 1.5
    check_layer_gradient(layer, [np.random.default_rng(3).standard_normal((4, 3, 2))], check_params=False)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_in_place_matches_out_of_place(dtype):
    x = np.random.default_rng(4).standard_normal((4, 3, 2, 2))
    dy = np.random.default_rng(5).standard_normal(x.shape)
    results = []
    for in_place in (False, True):
        layer = make_layer(BN, dtype=dtype)
        bottom = Blob(x.shape, dtype=dtype)
        bottom.data[...] = x
        top = bottom if in_place else Blob(dtype=dtype)
        layer.setup([bottom], [top])
        layer.reshape([bottom], [top])
        layer.forward_cpu([bottom], [top])
        out = top.data.copy()
        if in_place:
            top.data[...] = -1  # as a later in-place Scale would: backward must not depend on it
        top.diff[...] = dy
        layer.backward_cpu([top], [True], [bottom])
        results.append((out, bottom.diff.copy()))
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-5)
    np.testing.assert_allclose(results[0][1], results[1][1], rtol=1e-4, atol=1e-5)
