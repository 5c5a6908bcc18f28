"""Concat and Slice (layers/concat.py, layers/slice.py): axis and the legacy concat_dim/slice_dim,
slice_point and equal splits, one-blob sharing, known values against index loops, float64
gradient checks, and shape errors."""
import itertools

import numpy as np
import pytest

import nvcaffe_py as caffe
from nvcaffe_py.errors import CaffeError
from nvcaffe_py.formats import net_param_from_text
from nvcaffe_py.gradient_check import check_layer_gradient, setup_layer


def run(text, arrays, num_tops=1):
    layer, bottoms, tops = setup_layer(text, arrays, num_tops=num_tops)
    layer.reshape(bottoms, tops)
    layer.forward_cpu(bottoms, tops)
    return layer, bottoms, tops


def randn(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def concat_reference(arrays, axis):
    """Element by element: an output index maps to (input, index shifted along axis)."""
    shape = list(arrays[0].shape)
    shape[axis] = sum(a.shape[axis] for a in arrays)
    out = np.empty(shape)
    for pos in itertools.product(*map(range, shape)):
        k, at = 0, pos[axis]
        while at >= arrays[k].shape[axis]:
            at -= arrays[k].shape[axis]
            k += 1
        out[pos] = arrays[k][pos[:axis] + (at,) + pos[axis + 1:]]
    return out


CONCAT_CASES = {  # param text: (input shapes, axis)
    "": ([(2, 3, 2, 2), (2, 1, 2, 2), (2, 2, 2, 2)], 1),
    "axis: 0": ([(1, 3, 2), (3, 3, 2)], 0),
    "axis: -1": ([(2, 3, 1), (2, 3, 4)], 2),
    "concat_dim: 0": ([(2, 2, 3), (1, 2, 3)], 0),
    "axis: 2": ([(2, 2, 3), (2, 2, 1)], 2),
}


@pytest.mark.parametrize("param", CONCAT_CASES)
def test_concat_values_and_gradient(param):
    shapes, axis = CONCAT_CASES[param]
    xs = [randn(*s, seed=i) for i, s in enumerate(shapes)]
    text = f'type: "Concat" concat_param {{ {param} }}'
    layer, bottoms, tops = run(text, xs)
    np.testing.assert_array_equal(tops[0].data, concat_reference(xs, axis))
    g = randn(*tops[0].shape, seed=9)
    tops[0].diff[...] = g
    layer.backward_cpu(tops, [True] * len(xs), bottoms)
    start = 0
    for b in bottoms:  # each input's gradient is its own window of the output's
        window = [slice(None)] * len(shapes[0])
        window[axis] = slice(start, start + b.shape[axis])
        np.testing.assert_array_equal(b.diff, g[tuple(window)])
        start += b.shape[axis]
    check_layer_gradient(text, xs)


def test_concat_propagate_down_and_float32():
    xs = [randn(2, 2), randn(2, 3)]
    layer, bottoms, tops = setup_layer('type: "Concat"', xs, dtype=np.float32)
    layer.forward_cpu(bottoms, tops)
    assert tops[0].data.dtype == np.float32 and tops[0].shape == (2, 5)
    bottoms[0].diff[...] = 7
    tops[0].diff[...] = 1
    layer.backward_cpu(tops, [False, True], bottoms)
    assert (bottoms[0].diff == 7).all() and (bottoms[1].diff == 1).all()


def test_single_input_concat_and_slice_share_memory():
    x = randn(2, 3)
    for text, num_tops in (('type: "Concat"', 1), ('type: "Slice"', 1)):
        layer, bottoms, tops = run(text, [x], num_tops)
        assert tops[0].shares_data_with(bottoms[0])
        np.testing.assert_array_equal(tops[0].data, x)
        tops[0].diff[...] = 3
        assert (bottoms[0].diff == 3).all()


def test_concat_errors():
    with pytest.raises(CaffeError, match=r"layer 'layer' \(Concat\).*axis 1.*\(2, 3, 4\).*\(2, 3, 5\)"):
        setup_layer('type: "Concat"', [randn(2, 3, 4), randn(2, 3, 5)])
    with pytest.raises(CaffeError, match=r"\(Concat\).*\(2, 3\).*\(2, 3, 1\)"):
        setup_layer('type: "Concat"', [randn(2, 3), randn(2, 3, 1)])
    with pytest.raises(CaffeError, match="either axis or concat_dim"):
        setup_layer('type: "Concat" concat_param { axis: 0 concat_dim: 0 }', [randn(2), randn(2)])
    with pytest.raises(CaffeError, match=r"\(Concat\).*concat_dim 2 out of range"):
        setup_layer('type: "Concat" concat_param { concat_dim: 2 }', [randn(2, 2), randn(2, 2)])
    with pytest.raises(CaffeError, match=r"\(Concat\).*axis 3 out of range"):
        setup_layer('type: "Concat" concat_param { axis: 3 }', [randn(2, 2), randn(2, 2)])


SLICE_CASES = {  # param text: (input shape, number of tops, axis, sizes)
    "": ((2, 6, 2), 3, 1, [2, 2, 2]),
    "slice_point: 1 slice_point: 4": ((2, 6, 2), 3, 1, [1, 3, 2]),
    "axis: 0 slice_point: 3": ((4, 2, 3), 2, 0, [3, 1]),
    "axis: -1 slice_point: 2": ((2, 3, 5), 2, 2, [2, 3]),
    "slice_dim: 0": ((4, 3), 2, 0, [2, 2]),
}


@pytest.mark.parametrize("param", SLICE_CASES)
def test_slice_values_and_gradient(param):
    shape, num_tops, axis, sizes = SLICE_CASES[param]
    x = randn(*shape)
    text = f'type: "Slice" slice_param {{ {param} }}'
    layer, bottoms, tops = run(text, [x], num_tops)
    start = 0
    for t, size in zip(tops, sizes):
        expected = np.empty(t.shape)
        for pos in itertools.product(*map(range, t.shape)):
            expected[pos] = x[pos[:axis] + (pos[axis] + start,) + pos[axis + 1:]]
        np.testing.assert_array_equal(t.data, expected)
        start += size
    assert start == shape[axis]
    gs = [randn(*t.shape, seed=i) for i, t in enumerate(tops)]
    for t, g in zip(tops, gs):
        t.diff[...] = g
    layer.backward_cpu(tops, [True], bottoms)
    np.testing.assert_array_equal(bottoms[0].diff, concat_reference(gs, axis))
    check_layer_gradient(text, [x], num_tops=num_tops)


def test_slice_errors():
    x = randn(2, 6)
    cases = [
        ("", 4, r"4 tops do not evenly divide axis 1 of input shape \(2, 6\)"),
        ("slice_point: 2", 3, "1 slice_point"),
        ("slice_point: 4 slice_point: 2", 3, r"must increase strictly inside \(0, 6\)"),
        ("slice_point: 6", 2, "must increase strictly"),
        ("axis: 1 slice_dim: 1", 2, "either axis or slice_dim"),
        ("slice_dim: 5", 2, "slice_dim 5 out of range"),
    ]
    for param, num_tops, message in cases:
        with pytest.raises(CaffeError, match=r"layer 'layer' \(Slice\).*" + message):
            setup_layer(f'type: "Slice" slice_param {{ {param} }}', [x], num_tops=num_tops)


def test_slice_then_concat_in_a_net_is_identity():
    net = caffe.Net(net_param_from_text("""
        force_backward: true
        layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 2 dim: 5 dim: 3 } } }
        layer { name: "cut" type: "Slice" bottom: "x" top: "a" top: "b" slice_param { slice_point: 2 } }
        layer { name: "join" type: "Concat" bottom: "b" bottom: "a" top: "y" }
        layer { name: "back" type: "Slice" bottom: "y" top: "b2" top: "a2" slice_param { slice_point: 3 } }
        layer { name: "again" type: "Concat" bottom: "a2" bottom: "b2" top: "z" }
    """), phase=caffe.TRAIN)
    x = randn(2, 5, 3).astype(np.float32)
    out = net.forward(x=x)
    np.testing.assert_array_equal(out["z"], x)
    np.testing.assert_array_equal(net.blobs["y"].data, np.concatenate([x[:, 2:], x[:, :2]], axis=1))
    g = randn(2, 5, 3, seed=3).astype(np.float32)
    np.testing.assert_array_equal(net.backward(z=g)["x"], g)
