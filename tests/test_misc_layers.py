"""Crop, Tile, Reduction, Silence, Filter, BatchReindex, Parameter, DummyData and Split: known
values against loops, float64 gradient checks for every input and parameter, and bad input."""
import itertools

import numpy as np
import pytest

import nvcaffe_py as caffe
from nvcaffe_py.errors import CaffeError
from nvcaffe_py.formats import net_param_from_text
from nvcaffe_py.gradient_check import check_layer_gradient, setup_layer


def run(text, arrays, num_tops=1, dtype=np.float64):
    layer, bottoms, tops = setup_layer(text, arrays, num_tops=num_tops, dtype=dtype)
    layer.reshape(bottoms, tops)
    layer.forward_cpu(bottoms, tops)
    return layer, bottoms, tops


def randn(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def positions(shape):
    return itertools.product(*map(range, shape))


def raises(text, arrays, message, num_tops=1, kind=None):
    kind = kind or text.split('"')[1]
    with pytest.raises(CaffeError, match=rf"layer 'layer' \({kind}\).*{message}"):
        run(text, arrays, num_tops)


# -- Crop ------------------------------------------------------------------------------------
@pytest.mark.parametrize("param, axis, offsets", [
    ("", 2, (0, 0, 0, 0)),
    ("axis: 2 offset: 1", 2, (0, 0, 1, 1)),
    ("axis: 1 offset: 1 offset: 2 offset: 0", 1, (0, 1, 2, 0)),
    ("axis: -1 offset: 2", 3, (0, 0, 0, 2)),
    ("axis: 0 offset: 1", 0, (1, 1, 1, 1)),
])
def test_crop(param, axis, offsets):
    x, ref = randn(3, 4, 5, 5), np.zeros((2, 2, 3, 3))
    text = f'type: "Crop" crop_param {{ {param} }}'
    layer, bottoms, tops = run(text, [x, ref])
    assert tops[0].shape == x.shape[:axis] + ref.shape[axis:]
    for pos in positions(tops[0].shape):
        assert tops[0].data[pos] == x[tuple(p + o for p, o in zip(pos, offsets))]
    tops[0].diff[...] = 1
    bottoms[1].diff[...] = 5
    layer.backward_cpu(tops, [True, True], bottoms)
    assert bottoms[0].diff.sum() == tops[0].data.size and not bottoms[1].diff.any()
    check_layer_gradient(text, [x, ref], check_bottoms=[0])


def test_crop_errors():
    x = np.zeros((2, 3, 5, 5))
    raises('type: "Crop"', [x, np.zeros((2, 3, 5))], r"\(2, 3, 5, 5\) and reference \(2, 3, 5\)")
    raises('type: "Crop" crop_param { offset: 1 }', [x, np.zeros((2, 3, 5, 5))],
           r"out of bounds: input \(2, 3, 5, 5\), reference \(2, 3, 5, 5\), offset 1")
    raises('type: "Crop" crop_param { offset: 1 offset: 1 offset: 1 }', [x, np.zeros((2, 3, 3, 3))],
           "3 offsets for the 2 axes")
    raises('type: "Crop" crop_param { axis: 4 }', [x, x], "axis 4 out of range")


# -- Tile ------------------------------------------------------------------------------------
@pytest.mark.parametrize("param, axis", [("tiles: 3", 1), ("axis: 0 tiles: 2", 0), ("axis: -1 tiles: 4", 2)])
def test_tile(param, axis):
    x = randn(2, 3, 2)
    text = f'type: "Tile" tile_param {{ {param} }}'
    layer, bottoms, tops = run(text, [x])
    assert tops[0].shape[axis] == x.shape[axis] * layer.tiles
    for pos in positions(tops[0].shape):
        # the block of axes from `axis` on repeats: flat index within it wraps around
        inner = x.shape[axis:]
        flat = np.ravel_multi_index(pos[axis:], (tops[0].shape[axis],) + inner[1:]) % int(np.prod(inner))
        assert tops[0].data[pos] == x[pos[:axis] + np.unravel_index(flat, inner)]
    check_layer_gradient(text, [x])


def test_tile_errors():
    raises('type: "Tile" tile_param { axis: 1 }', [randn(2, 2)], "tiles must be given")
    raises('type: "Tile" tile_param { tiles: 0 }', [randn(2, 2)], "must be positive, got 0")


# -- Reduction -------------------------------------------------------------------------------
def reduction_reference(op, x, axis, coeff):
    rows = x.reshape(int(np.prod(x.shape[:axis])), -1)
    out = []
    for row in rows:
        terms = {"SUM": row, "ASUM": np.abs(row), "SUMSQ": row * row, "MEAN": row / row.size}[op]
        out.append(coeff * sum(terms))
    return np.array(out).reshape(x.shape[:axis])


@pytest.mark.parametrize("op", ["SUM", "ASUM", "SUMSQ", "MEAN"])
@pytest.mark.parametrize("axis, coeff", [(0, 1.0), (1, -0.5), (-1, 2.0)])
def test_reduction(op, axis, coeff):
    x = randn(2, 3, 4)
    x[np.abs(x) < 0.05] = 0.1  # away from |x|'s kink
    text = f'type: "Reduction" reduction_param {{ operation: {op} axis: {axis} coeff: {coeff} }}'
    layer, bottoms, tops = run(text, [x])
    canonical = axis % 3
    assert tops[0].shape == x.shape[:canonical]
    np.testing.assert_allclose(tops[0].data, reduction_reference(op, x, canonical, coeff), rtol=1e-12)
    check_layer_gradient(text, [x])


def test_reduction_float32_scalar():
    layer, bottoms, tops = run('type: "Reduction" reduction_param { operation: MEAN }', [np.arange(6.0)],
                               dtype=np.float32)
    assert tops[0].shape == () and tops[0].data.dtype == np.float32 and tops[0].data == 2.5


# -- Silence ---------------------------------------------------------------------------------
def test_silence_zeroes_the_gradients_it_is_asked_for():
    layer, bottoms, tops = run('type: "Silence"', [randn(2, 3), randn(4)], num_tops=0)
    for b in bottoms:
        b.diff[...] = 9
    layer.backward_cpu([], [True, False], bottoms)
    assert not bottoms[0].diff.any() and (bottoms[1].diff == 9).all()
    check_layer_gradient('type: "Silence"', [randn(2, 3)], num_tops=0)


# -- Filter ----------------------------------------------------------------------------------
def test_filter():
    x, y = randn(5, 2, 3), randn(5, 4, seed=1)
    selector = np.array([0, 1, 0, 2.5, 1]).reshape(5, 1, 1, 1)
    keep = [i for i in range(5) if selector.ravel()[i] != 0]
    text = 'type: "Filter"'
    layer, bottoms, tops = setup_layer(text, [x, y, selector], num_tops=2)
    assert tops[0].shape == (5, 2, 3)  # set-up keeps the whole batch (the selector is not known yet)
    layer.reshape(bottoms, tops)
    layer.forward_cpu(bottoms, tops)
    assert tops[0].shape == (3, 2, 3) and tops[1].shape == (3, 4)
    for k, i in enumerate(keep):
        np.testing.assert_array_equal(tops[0].data[k], x[i])
        np.testing.assert_array_equal(tops[1].data[k], y[i])
    tops[0].diff[...] = 1
    layer.backward_cpu(tops, [True, False, False], bottoms)
    np.testing.assert_array_equal(bottoms[0].diff.sum(axis=(1, 2)), [0, 6, 0, 6, 6])
    with pytest.raises(CaffeError, match=r"\(Filter\): cannot backpropagate to the selector"):
        layer.backward_cpu(tops, [True, False, True], bottoms)
    assert not layer.allow_force_backward(2) and layer.allow_force_backward(0)
    check_layer_gradient(text, [x, y, selector], num_tops=2, check_bottoms=[0, 1])


def test_filter_selects_nothing():
    layer, bottoms, tops = run('type: "Filter"', [randn(3, 2), np.zeros(3)])
    assert tops[0].shape == (0, 2)
    layer.backward_cpu(tops, [True, False], bottoms)
    assert not bottoms[0].diff.any()


def test_filter_errors():
    raises('type: "Filter"', [randn(3, 2), np.ones((3, 2))], r"selector .* shape \(N,\) or \(N, 1, ...\), got \(3, 2\)")
    raises('type: "Filter"', [randn(4, 2), np.ones(3)],
           r"bottom\[0\] of shape \(4, 2\) and the selector of shape \(3,\)")
    raises('type: "Filter"', [randn(3, 2), np.ones(3)], "one top per filtered bottom", num_tops=2)


# -- BatchReindex ----------------------------------------------------------------------------
def test_batch_reindex():
    x = randn(4, 2, 3)
    index = np.array([3, 0, 3, 1.0, 3])
    text = 'type: "BatchReindex"'
    layer, bottoms, tops = run(text, [x, index])
    for k, i in enumerate(index.astype(int)):
        np.testing.assert_array_equal(tops[0].data[k], x[i])
    tops[0].diff[...] = 1
    layer.backward_cpu(tops, [True, False], bottoms)
    np.testing.assert_array_equal(bottoms[0].diff[:, 0, 0], [1, 1, 0, 3])  # repeats add up
    with pytest.raises(CaffeError, match="cannot backpropagate to the indices"):
        layer.backward_cpu(tops, [True, True], bottoms)
    check_layer_gradient(text, [x, index], check_bottoms=[0])


def test_batch_reindex_errors():
    raises('type: "BatchReindex"', [randn(4, 2), np.array([0, 4.0])], r"index 4 is outside the batch \[0, 4\)")
    raises('type: "BatchReindex"', [randn(4, 2), np.array([-1.0])], "index -1 is outside")
    raises('type: "BatchReindex"', [randn(4, 2), np.zeros((2, 1))], r"1-D, got shape \(2, 1\)")


# -- Parameter -------------------------------------------------------------------------------
def test_parameter():
    text = 'type: "Parameter" parameter_param { shape { dim: 2 dim: 3 } }'
    layer, bottoms, tops = run(text, [])
    assert len(layer.blobs) == 1 and layer.blobs[0].shape == (2, 3) and not layer.blobs[0].data.any()
    layer.blobs[0].data[...] = np.arange(6).reshape(2, 3)
    np.testing.assert_array_equal(tops[0].data, layer.blobs[0].data)
    tops[0].diff[...] = 1
    layer.backward_cpu(tops, [], bottoms)
    layer.backward_cpu(tops, [], bottoms)
    assert (layer.blobs[0].diff == 2).all()  # parameter gradients accumulate
    check_layer_gradient(text, [])


def test_parameter_in_a_net_learns():
    net = caffe.Net(net_param_from_text("""
        layer { name: "p" type: "Parameter" top: "p" parameter_param { shape { dim: 3 } } }
        layer { name: "sq" type: "Reduction" bottom: "p" top: "loss" loss_weight: 1
                reduction_param { operation: SUMSQ } }
    """), phase=caffe.TRAIN)
    param = net.params["p"][0]
    param.data[...] = [1, -2, 3]
    assert net.forward()["loss"] == 14
    net.backward()
    np.testing.assert_array_equal(param.diff, [2, -4, 6])


# -- DummyData -------------------------------------------------------------------------------
def test_dummy_data_shapes_and_fillers():
    layer, _, tops = run("""type: "DummyData" dummy_data_param {
        shape { dim: 2 dim: 3 } shape { dim: 4 } shape { dim: 1 dim: 1 dim: 2 }
        data_filler { type: "constant" value: 1.5 } data_filler { type: "uniform" min: 2 max: 3 }
        data_filler { } }""", [], num_tops=3)
    assert [t.shape for t in tops] == [(2, 3), (4,), (1, 1, 2)]
    assert (tops[0].data == 1.5).all() and not tops[2].data.any()
    assert ((tops[1].data >= 2) & (tops[1].data <= 3)).all()
    before = tops[1].data.copy()
    tops[0].data[...] = -1  # a constant top is filled once, at set-up ...
    layer.forward_cpu([], tops)
    assert (tops[0].data == -1).all()
    assert not np.array_equal(tops[1].data, before)  # ... the others on every forward


def test_dummy_data_legacy_dims_and_one_filler_for_all():
    layer, _, tops = run("""type: "DummyData" dummy_data_param {
        num: 2 channels: 3 channels: 1 height: 4 width: 5 data_filler { type: "gaussian" } }""", [], num_tops=2)
    assert [t.shape for t in tops] == [(2, 3, 4, 5), (2, 1, 4, 5)]
    assert layer.refill == [True, True] and tops[0].data.std() > 0.5


def test_dummy_data_errors():
    raises('type: "DummyData" dummy_data_param { shape { dim: 2 } num: 2 channels: 1 height: 1 width: 1 }',
           [], "either shape or num/channels/height/width")
    raises('type: "DummyData" dummy_data_param { num: 2 channels: 1 height: 1 }', [], "give 'width' once")
    raises('type: "DummyData" dummy_data_param { shape { dim: 2 } shape { dim: 2 } }', [],
           r"give 'shape' once, or once per top \(3 tops\); got 2", num_tops=3)
    raises('type: "DummyData" dummy_data_param { shape { dim: 2 } data_filler { } data_filler { } }', [],
           "2 data_filler", num_tops=3)


# -- Split -----------------------------------------------------------------------------------
def test_split():
    x = randn(2, 3)
    layer, bottoms, tops = run('type: "Split"', [x], num_tops=3)
    for t in tops:
        assert t.shares_data_with(bottoms[0])
        np.testing.assert_array_equal(t.data, x)
    gs = [randn(2, 3, seed=i) for i in range(3)]
    for t, g in zip(tops, gs):
        t.diff[...] = g
    layer.backward_cpu(tops, [True], bottoms)
    np.testing.assert_allclose(bottoms[0].diff, gs[0] + gs[1] + gs[2], rtol=1e-15)
    check_layer_gradient('type: "Split"', [x], num_tops=3)
    with pytest.raises(CaffeError, match=r"\(Split\).*in-place"):
        layer.reshape(bottoms, [tops[0], bottoms[0]])


def test_split_inserted_by_the_net_sums_gradients():
    # x feeds both inputs of x * x, so the Net adds a Split; d(sum x^2)/dx = 2x needs both branches.
    net = caffe.Net(net_param_from_text("""
        force_backward: true
        layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }
        layer { name: "sq" type: "Eltwise" bottom: "x" bottom: "x" top: "sq" eltwise_param { operation: PROD } }
        layer { name: "sum" type: "Reduction" bottom: "sq" top: "loss" loss_weight: 1 }
    """), phase=caffe.TRAIN)
    assert "Split" in [l.type for l in net.layers]
    x = randn(2, 3).astype(np.float32)
    np.testing.assert_allclose(net.forward(x=x)["loss"], (x * x).sum(), rtol=1e-6)
    np.testing.assert_allclose(net.backward()["x"], 2 * x, rtol=1e-6)
    net.blobs["x"].reshape(4, 3)  # a grown input: the split's tops must follow its new buffer
    net.reshape()
    x = randn(4, 3, seed=1).astype(np.float32)
    np.testing.assert_allclose(net.forward(x=x)["loss"], (x * x).sum(), rtol=1e-6)
