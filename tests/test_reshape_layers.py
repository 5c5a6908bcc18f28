"""Flatten and Reshape (layers/reshape.py): output shapes (0 copies, -1 infers, axis, num_axes,
end_axis), shared data and diff that follow a growing bottom, gradient checks, and errors."""
import numpy as np
import pytest

import nvcaffe_py as caffe
from nvcaffe_py.errors import CaffeError
from nvcaffe_py.formats import net_param_from_text
from nvcaffe_py.gradient_check import check_layer_gradient, setup_layer

SHAPE = (2, 3, 6, 5)


def top_shape(text, shape=SHAPE):
    layer, bottoms, tops = setup_layer(text, [np.zeros(shape)])
    return tops[0].shape


@pytest.mark.parametrize("param, expected", [
    ("", (2, 90)),
    ("axis: 2", (2, 3, 30)),
    ("axis: 1 end_axis: 2", (2, 18, 5)),
    ("axis: -3 end_axis: -2", (2, 18, 5)),
    ("axis: 0", (180,)),
    ("axis: 3", SHAPE),
])
def test_flatten_shapes(param, expected):
    assert top_shape(f'type: "Flatten" flatten_param {{ {param} }}') == expected


@pytest.mark.parametrize("param, expected", [
    ("shape { dim: 6 dim: 2 dim: 3 dim: 5 }", (6, 2, 3, 5)),
    ("shape { dim: 0 dim: -1 }", (2, 90)),
    ("shape { dim: 0 dim: 0 dim: -1 }", (2, 3, 30)),
    ("shape { dim: -1 dim: 0 dim: 2 }", (30, 3, 2)),
    ("shape { dim: 1 } axis: 1 num_axes: 0", (2, 1, 3, 6, 5)),
    ("shape { dim: 1 } axis: -1 num_axes: 0", (2, 3, 6, 5, 1)),
    ("shape { dim: 2 dim: 3 } axis: 2 num_axes: 1", (2, 3, 2, 3, 5)),
    ("shape { dim: -1 } axis: 1 num_axes: 2", (2, 18, 5)),
    ("shape { dim: 0 dim: 5 dim: -1 } axis: -3", (2, 3, 6, 5, 1)),
    ("shape { } axis: 0 num_axes: 0", SHAPE),
])
def test_reshape_shapes(param, expected):
    assert top_shape(f'type: "Reshape" reshape_param {{ {param} }}') == expected


def test_top_is_a_view_of_the_bottom_and_follows_its_growth():
    x = np.arange(np.prod(SHAPE), dtype=np.float64).reshape(SHAPE)
    for text in ('type: "Flatten"', 'type: "Reshape" reshape_param { shape { dim: -1 dim: 10 } }'):
        layer, bottoms, tops = setup_layer(text, [x])
        layer.forward_cpu(bottoms, tops)
        np.testing.assert_array_equal(tops[0].data.ravel(), x.ravel())
        tops[0].diff[...] = np.arange(tops[0].data.size).reshape(tops[0].shape)
        layer.backward_cpu(tops, [True], bottoms)
        np.testing.assert_array_equal(bottoms[0].diff.ravel(), np.arange(x.size))
        # A bigger bottom gets new buffers; the next reshape must point the top at them.
        bottoms[0].reshape(4, 3, 6, 5)
        bottoms[0].data[...] = 7
        layer.reshape(bottoms, tops)
        assert tops[0].data.size == 360 and (tops[0].data == 7).all()
        tops[0].diff[...] = 5
        assert (bottoms[0].diff == 5).all()


@pytest.mark.parametrize("text", [
    'type: "Flatten"',
    'type: "Flatten" flatten_param { axis: 2 }',
    'type: "Reshape" reshape_param { shape { dim: 0 dim: -1 dim: 3 } }',
])
def test_gradient(text):
    check_layer_gradient(text, [np.random.default_rng(0).standard_normal((2, 3, 2, 3))])


def test_in_a_net_the_flattened_blob_tracks_a_reshaped_input():
    net = caffe.Net(net_param_from_text("""
        force_backward: true
        layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 dim: 2 } } }
        layer { name: "flat" type: "Flatten" bottom: "x" top: "f" }
        layer { name: "r" type: "Reshape" bottom: "f" top: "r" reshape_param { shape { dim: 0 dim: 2 dim: -1 } } }
        layer { name: "sum" type: "Reduction" bottom: "r" top: "loss" loss_weight: 1 }
    """), phase=caffe.TRAIN)
    net.blobs["x"].reshape(5, 3, 2)
    net.reshape()
    x = np.arange(30, dtype=np.float32).reshape(5, 3, 2)
    out = net.forward(x=x)
    assert net.blobs["f"].shape == (5, 6) and net.blobs["r"].shape == (5, 2, 3)
    np.testing.assert_array_equal(net.blobs["r"].data, x.reshape(5, 2, 3))
    assert out["loss"] == x.sum()
    np.testing.assert_array_equal(net.backward()["x"], np.ones((5, 3, 2)))


def test_errors():
    x = [np.zeros(SHAPE)]
    cases = [
        ('type: "Flatten" flatten_param { axis: 2 end_axis: 1 }', "axis 2 comes after end_axis 1"),
        ('type: "Flatten" flatten_param { axis: 4 }', r"axis 4 out of range .*\(2, 3, 6, 5\)"),
        ('type: "Reshape" reshape_param { shape { dim: -1 dim: -1 } }', "more than one -1"),
        ('type: "Reshape" reshape_param { shape { dim: 7 dim: -1 } }',
         r"cannot infer the -1 .*\(2, 3, 6, 5\) \(180 elements\) is not a multiple of 7"),
        ('type: "Reshape" reshape_param { shape { dim: 3 dim: 5 } }', r"\(3, 5\) does not hold the \(2, 3, 6, 5\)"),
        ('type: "Reshape" reshape_param { shape { dim: 0 dim: 0 } axis: 3 }', "copies \\(0\\) axis 4"),
        ('type: "Reshape" reshape_param { shape { dim: 1 } axis: 5 }', "axis 5 out of range"),
        ('type: "Reshape" reshape_param { shape { dim: 1 } axis: 3 num_axes: 2 }', "goes past"),
        ('type: "Reshape" reshape_param { shape { dim: -2 } }', "below -1"),
    ]
    for text, message in cases:
        kind = "Flatten" if "Flatten" in text else "Reshape"
        with pytest.raises(CaffeError, match=rf"layer 'layer' \({kind}\): .*{message}"):
            setup_layer(text, x)


def test_in_place_is_refused():
    layer, bottoms, tops = setup_layer('type: "Flatten"', [np.zeros(SHAPE)])
    with pytest.raises(CaffeError, match="in-place"):
        layer.reshape(bottoms, bottoms)
