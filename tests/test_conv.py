"""Convolution, Deconvolution and Im2col (CPU): known values against naive loops, shapes, errors,
gradient checks, chunking and the propagate_down / param_propagate_down switches; and the GPU
half's chunking, which no conformance case reaches."""
import itertools

import numpy as np
import pytest

from nvcaffe_py import conformance
from nvcaffe_py.backends.cpu import convolution as convolution_engine
from nvcaffe_py.backends.cpu import im2col as im2col_module
from nvcaffe_py.errors import CaffeError
from nvcaffe_py.gradient_check import check_layer_gradient, setup_layer
from nvcaffe_py.layers import conv_gpu

FILLERS = 'weight_filler { type: "gaussian" std: 0.5 } bias_filler { type: "gaussian" std: 0.5 }'


def conv_text(params, kind="Convolution", fillers=FILLERS):
    return f'type: "{kind}" convolution_param {{ {params} {fillers} }}'


def kernel_window(pos, kernel, stride, dilation):
    """The (padded) input slices that the kernel covers for output position `pos`."""
    return tuple(slice(p * s, p * s + d * (k - 1) + 1, d) for p, k, s, d in zip(pos, kernel, stride, dilation))


def naive_conv(x, w, b, pad, stride, dilation, group):
    """Direct loops over outputs: x (N, C, *S), w (O, C/group, *K)."""
    n_img, channels = x.shape[:2]
    out_ch, kernel = w.shape[0], w.shape[2:]
    xp = np.pad(x, [(0, 0), (0, 0)] + [(p, p) for p in pad])
    out = [(xp.shape[2 + i] - dilation[i] * (kernel[i] - 1) - 1) // stride[i] + 1 for i in range(len(kernel))]
    y = np.zeros((n_img, out_ch, *out))
    cg, og = channels // group, out_ch // group
    for n, o in itertools.product(range(n_img), range(out_ch)):
        g = o // og
        for pos in itertools.product(*map(range, out)):
            window = kernel_window(pos, kernel, stride, dilation)
            y[(n, o) + pos] = np.sum(xp[(n, slice(g * cg, (g + 1) * cg)) + window] * w[o])
        if b is not None:
            y[n, o] += b[o]
    return y


def naive_deconv(x, w, b, pad, stride, dilation, group, out_shape):
    """Scatter loops: every input element adds its weighted kernel into the output."""
    n_img, channels = x.shape[:2]
    og, kernel = w.shape[1], w.shape[2:]
    full = [(x.shape[2 + i] - 1) * stride[i] + dilation[i] * (kernel[i] - 1) + 1 for i in range(len(kernel))]
    y = np.zeros((n_img, og * group, *full))
    cg = channels // group
    for n, c in itertools.product(range(n_img), range(channels)):
        g = c // cg
        for pos in itertools.product(*map(range, x.shape[2:])):
            window = kernel_window(pos, kernel, stride, dilation)
            y[(n, slice(g * og, (g + 1) * og)) + window] += x[(n, c) + pos] * w[c]
    y = y[(slice(None), slice(None)) + tuple(slice(p, p + s) for p, s in zip(pad, out_shape))]
    if b is not None:
        y += b.reshape((-1,) + (1,) * len(kernel))
    return y


@pytest.fixture(params=["default", "image-major"])
def column_order(request, monkeypatch):
    """Runs a test with the column order chosen by row length (batch-last for these small
    shapes), then with the image-major order forced on every geometry."""
    if request.param == "image-major":
        monkeypatch.setattr(im2col_module, "IMAGE_MAJOR_ROW", 1)
    return request.param


def forward(text, *arrays, num_tops=1, dtype=np.float64):
    layer, bottom, top = setup_layer(text, list(arrays), num_tops=num_tops, dtype=dtype)
    layer.forward_cpu(bottom, top)
    return layer, bottom, top


def params_of(layer):
    return layer.blobs[0].data, (layer.blobs[1].data if len(layer.blobs) > 1 else None)


CONV_CASES = [
    # (convolution_param text, input shape, pad, stride, dilation, group)
    ("num_output: 3 kernel_size: 3", (2, 2, 5, 6), (0, 0), (1, 1), (1, 1), 1),
    ("num_output: 4 kernel_size: 3 pad: 1 stride: 2", (2, 3, 7, 6), (1, 1), (2, 2), (1, 1), 1),
    ("num_output: 6 group: 2 kernel_h: 3 kernel_w: 2 pad_h: 1 pad_w: 0 stride_h: 2 stride_w: 1",
     (2, 4, 7, 6), (1, 0), (2, 1), (1, 1), 2),
    ("num_output: 4 kernel_size: 3 dilation: 2 pad: 2", (1, 2, 7, 8), (2, 2), (1, 1), (2, 2), 1),
    ("num_output: 6 group: 3 kernel_size: 2 kernel_size: 3 pad: 1 pad: 2 stride: 1 stride: 2 dilation: 2 dilation: 1",
     (2, 6, 6, 7), (1, 2), (1, 2), (2, 1), 3),
    ("num_output: 5 kernel_size: 1", (3, 4, 3, 5), (0, 0), (1, 1), (1, 1), 1),
    ("num_output: 4 group: 2 kernel_size: 1 stride: 2", (2, 4, 5, 5), (0, 0), (2, 2), (1, 1), 2),
]


@pytest.mark.parametrize("params,shape,pad,stride,dilation,group", CONV_CASES)
def test_convolution_matches_naive_loops(params, shape, pad, stride, dilation, group, column_order):
    x = np.random.default_rng(0).standard_normal(shape)
    layer, _, top = forward(conv_text(params), x)
    w, b = params_of(layer)
    np.testing.assert_allclose(top[0].data, naive_conv(x, w, b, pad, stride, dilation, group), atol=1e-12)


def test_wide_rows_take_the_image_major_order():
    x = np.random.default_rng(17).standard_normal((2, 2, 4, 28))
    layer, bottom, top = forward(conv_text("num_output: 3 kernel_size: 3 pad: 1"), x)
    assert layer.engine.im2col.image_major
    w, b = params_of(layer)
    np.testing.assert_allclose(top[0].data, naive_conv(x, w, b, (1, 1), (1, 1), (1, 1), 1), atol=1e-12)
    narrow, _, _ = forward(conv_text("num_output: 3 kernel_size: 3 pad: 1"), x[..., :16])
    assert not narrow.engine.im2col.image_major


def test_convolution_3d_and_1d(column_order):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 2, 4, 5, 6))
    layer, _, top = forward(conv_text("num_output: 3 kernel_size: 2 kernel_size: 3 kernel_size: 2 pad: 1 stride: 2"), x)
    w, b = params_of(layer)
    assert top[0].shape == (2, 3, 3, 3, 4)
    np.testing.assert_allclose(top[0].data, naive_conv(x, w, b, (1,) * 3, (2,) * 3, (1,) * 3, 1), atol=1e-12)
    x1 = rng.standard_normal((3, 2, 9))
    layer, _, top = forward(conv_text("num_output: 2 kernel_size: 3 dilation: 2"), x1)
    w, b = params_of(layer)
    np.testing.assert_allclose(top[0].data, naive_conv(x1, w, b, (0,), (1,), (2,), 1), atol=1e-12)


def test_convolution_axis_folds_leading_axes_into_the_batch():
    x = np.random.default_rng(2).standard_normal((2, 3, 2, 5, 4))  # axis 2 = channels, (2, 3) = batch
    layer, _, top = forward(conv_text("num_output: 3 kernel_size: 2 axis: 2"), x)
    w, b = params_of(layer)
    assert top[0].shape == (2, 3, 3, 4, 3)
    expected = naive_conv(x.reshape(6, 2, 5, 4), w, b, (0, 0), (1, 1), (1, 1), 1)
    np.testing.assert_allclose(top[0].data, expected.reshape(top[0].shape), atol=1e-12)


def test_convolution_without_bias_and_with_constant_filler():
    x = np.arange(2 * 1 * 3 * 3, dtype=float).reshape(2, 1, 3, 3)
    layer, _, top = forward(conv_text("num_output: 1 kernel_size: 2 bias_term: false",
                                      fillers='weight_filler { type: "constant" value: 1 }'), x)
    assert len(layer.blobs) == 1
    # Each output is the sum of a 2x2 window.
    np.testing.assert_array_equal(top[0].data[0, 0], [[8, 12], [20, 24]])


def test_several_bottoms_share_the_weights():
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((2, 2, 5, 5)), rng.standard_normal((2, 2, 5, 5))
    layer, _, top = forward(conv_text("num_output: 3 kernel_size: 3 pad: 1"), a, b, num_tops=2)
    w, bias = params_of(layer)
    for x, t in zip((a, b), top):
        np.testing.assert_allclose(t.data, naive_conv(x, w, bias, (1, 1), (1, 1), (1, 1), 1), atol=1e-12)


DECONV_CASES = [
    ("num_output: 4 group: 2 kernel_size: 3 dilation: 2 pad: 1", (2, 2, 4, 3), (1, 1), (1, 1), (2, 2), 2),
    ("num_output: 3 kernel_size: 3 stride: 2 pad: 1", (2, 2, 3, 4), (1, 1), (2, 2), (1, 1), 1),
    ("num_output: 4 group: 2 kernel_h: 2 kernel_w: 3 stride_h: 1 stride_w: 2 dilation: 2", (1, 4, 3, 3), (0, 0),
     (1, 2), (2, 2), 2),
    ("num_output: 2 kernel_size: 1", (2, 3, 2, 3), (0, 0), (1, 1), (1, 1), 1),
]


@pytest.mark.parametrize("params,shape,pad,stride,dilation,group", DECONV_CASES)
def test_deconvolution_matches_naive_loops(params, shape, pad, stride, dilation, group, column_order):
    x = np.random.default_rng(4).standard_normal(shape)
    layer, _, top = forward(conv_text(params, "Deconvolution"), x)
    w, b = params_of(layer)
    assert w.shape[0] == shape[1] and w.shape[1] * group == top[0].shape[1]
    expected_spatial = tuple((s - 1) * st + d * (k - 1) + 1 - 2 * p
                             for s, st, d, k, p in zip(shape[2:], stride, dilation, w.shape[2:], pad))
    assert top[0].shape[2:] == expected_spatial
    np.testing.assert_allclose(top[0].data, naive_deconv(x, w, b, pad, stride, dilation, group, expected_spatial),
                               atol=1e-12)


@pytest.mark.parametrize("kind,params,shape", [
    ("Convolution", "num_output: 4 group: 2 kernel_size: 3 pad: 1", (3, 4, 5, 6)),
    ("Convolution", "num_output: 2 kernel_h: 3 kernel_w: 2 pad: 2 dilation: 2", (2, 3, 5, 4)),
    ("Convolution", "num_output: 3 kernel_size: 3 pad: 1", (2, 2, 3, 4, 3)),
    ("Deconvolution", "num_output: 4 group: 2 kernel_size: 3 pad: 1", (3, 4, 5, 6)),
])
def test_flipped_kernel_and_col2im_agree(kind, params, shape, column_order):
    """Stride-1 layers may take the data gradient (Deconvolution: the forward) as a convolution
    with the flipped kernel instead of col2im; both must give the same result."""
    rng = np.random.default_rng(14)
    layer, bottom, top = forward(conv_text(params, kind), rng.standard_normal(shape))
    assert layer.engine.flipped is not None
    top[0].diff[...] = rng.standard_normal(top[0].shape)
    results = []
    for flipped in (layer.engine.flipped, None):
        layer.engine.flipped = flipped
        layer.forward_cpu(bottom, top)
        layer.backward_cpu(top, [True], bottom)
        results.append((top[0].data.copy(), bottom[0].diff.copy()))
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, atol=1e-12)


def test_flipped_kernel_is_taken_only_when_cheaper():
    cifar_like, _, _ = forward(conv_text("num_output: 8 kernel_size: 5 pad: 2"), np.zeros((1, 8, 8, 8)))
    assert cifar_like.engine.flipped is not None
    lenet_like, _, _ = forward(conv_text("num_output: 50 kernel_size: 5"), np.zeros((1, 20, 12, 12)))
    assert lenet_like.engine.flipped is None
    strided, _, _ = forward(conv_text("num_output: 8 kernel_size: 3 pad: 1 stride: 2"), np.zeros((1, 8, 8, 8)))
    assert strided.engine.flipped is None


def test_deconvolution_is_the_transpose_of_convolution():
    """<conv(x), y> == <x, deconv(y)> with the same weights (no bias)."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 4, 7, 7))
    params = "num_output: 6 group: 2 kernel_size: 3 stride: 2 pad: 1 bias_term: false"
    conv, _, conv_top = forward(conv_text(params), x)
    y = rng.standard_normal(conv_top[0].shape)
    deconv, bottom, top = setup_layer(conv_text(params.replace("num_output: 6", "num_output: 4"), "Deconvolution"), [y])
    deconv.blobs[0].data[...] = conv.blobs[0].data
    deconv.forward_cpu(bottom, top)
    assert top[0].shape == x.shape
    assert np.isclose(np.sum(conv_top[0].data * y), np.sum(x * top[0].data))


def test_im2col_layer_matches_naive_windows(column_order):
    x = np.random.default_rng(6).standard_normal((2, 3, 6, 5))
    _, _, top = forward('type: "Im2col" convolution_param { kernel_h: 3 kernel_w: 2 pad: 1 stride: 2 dilation: 1 }', x)
    assert top[0].shape == (2, 3 * 3 * 2, 3, 3)
    xp = np.pad(x, [(0, 0), (0, 0), (1, 1), (1, 1)])
    for n, c, i, j, oh, ow in itertools.product(range(2), range(3), range(3), range(2), range(3), range(3)):
        assert top[0].data[n, (c * 3 + i) * 2 + j, oh, ow] == xp[n, c, oh * 2 + i, ow * 2 + j]


def test_force_nd_im2col_and_chunking_give_the_same_results(monkeypatch):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((5, 4, 6, 6))
    params = "num_output: 4 group: 2 kernel_size: 3 pad: 1 stride: 2"
    reference, _, ref_top = forward(conv_text(params), x)
    monkeypatch.setattr(convolution_engine, "COLUMN_BUFFER_BYTES", 1)  # one image per chunk
    for extra in ("", "force_nd_im2col: true"):
        layer, bottom, top = setup_layer(conv_text(f"{params} {extra}"), [x])
        assert len(layer.engine.chunks) == 5
        for mine, theirs in zip(layer.blobs, reference.blobs):
            mine.data[...] = theirs.data
        layer.forward_cpu(bottom, top)
        np.testing.assert_allclose(top[0].data, ref_top[0].data, atol=1e-12)


@pytest.mark.parametrize("tile", [1, 7, 1 << 20])
def test_batch_transposes_in_every_tiling(monkeypatch, tile):
    monkeypatch.setattr(im2col_module, "BATCH_FIRST_TILE", tile)
    monkeypatch.setattr(im2col_module, "BATCH_LAST_TILE", tile)
    a = np.random.default_rng(16).standard_normal((3, 4, 5, 6))  # (n, C, H, W)
    padded = np.zeros((4, 7, 8, 3))
    im2col_module.batch_last(a, padded[:, 1:6, 1:7])  # into a strided interior, as im2col does
    np.testing.assert_array_equal(padded[:, 1:6, 1:7], np.moveaxis(a, 0, -1))
    assert not padded[:, 0].any() and not padded[:, :, 7].any()
    back = np.empty_like(a)
    bias = np.arange(4.0)
    im2col_module.batch_first(padded[:, 1:6, 1:7], back, bias)
    np.testing.assert_array_equal(back, a + bias[:, None, None])


def test_float32_matches_float64():
    x = np.random.default_rng(8).standard_normal((3, 3, 9, 9))
    text = conv_text("num_output: 5 kernel_size: 3 pad: 1")
    l64, _, top64 = forward(text, x)
    l32, b32, top32 = setup_layer(text, [x], dtype=np.float32)
    for mine, theirs in zip(l32.blobs, l64.blobs):
        mine.data[...] = theirs.data
    l32.forward_cpu(b32, top32)
    assert top32[0].data.dtype == np.float32
    np.testing.assert_allclose(top32[0].data, top64[0].data, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("kind", ["Convolution", "Deconvolution"])
def test_gpu_half_in_chunks_of_one_image(device, monkeypatch, kind):
    """conv_gpu runs a batch in chunks of CHUNK_ELEMENTS column elements, 256 MB: the whole batch
    of any conformance case. Forced to one image per chunk, it still agrees with the CPU."""
    monkeypatch.setattr(conv_gpu, "CHUNK_ELEMENTS", 1)
    params = f"num_output: 4 group: 2 kernel_size: 3 pad: 1 stride: 2 {FILLERS}"
    conformance.check_gpu_parity(kind, conformance.Case(f"convolution_param {{ {params} }}", [(3, 4, 6, 5)]))


# -- gradients ----------------------------------------------------------------------------------
GRADIENT_CASES = [
    ("Convolution", "num_output: 4 group: 2 kernel_h: 3 kernel_w: 2 pad: 1 stride_h: 2 stride_w: 1 dilation: 2",
     (2, 4, 6, 5)),
    ("Convolution", "num_output: 3 kernel_size: 3 pad: 1", (2, 2, 4, 4)),
    ("Convolution", "num_output: 3 kernel_size: 1", (2, 4, 3, 3)),
    ("Convolution", "num_output: 2 kernel_size: 2 pad: 1 stride: 2", (1, 2, 3, 4, 3)),
    ("Deconvolution", "num_output: 4 group: 2 kernel_size: 3 stride: 2 pad: 1 dilation: 1", (2, 2, 3, 3)),
    ("Deconvolution", "num_output: 2 kernel_h: 2 kernel_w: 3 stride_h: 2 stride_w: 1 dilation: 2", (1, 3, 3, 2)),
]


@pytest.mark.parametrize("kind,params,shape", GRADIENT_CASES)
def test_gradients(kind, params, shape, column_order):
    x = np.random.default_rng(9).standard_normal(shape)
    check_layer_gradient(conv_text(params, kind), [x])


def test_gradients_with_several_bottoms_and_chunks(monkeypatch, column_order):
    monkeypatch.setattr(convolution_engine, "COLUMN_BUFFER_BYTES", 1)
    rng = np.random.default_rng(10)
    arrays = [rng.standard_normal((3, 2, 4, 4)) for _ in range(2)]
    check_layer_gradient(conv_text("num_output: 2 kernel_size: 3 pad: 1 stride: 2"), arrays, num_tops=2)


def test_im2col_layer_gradient(column_order):
    x = np.random.default_rng(11).standard_normal((2, 2, 5, 4))
    check_layer_gradient('type: "Im2col" convolution_param { kernel_size: 3 pad: 1 stride: 2 dilation: 1 }', [x])


def test_param_gradients_accumulate():
    x = np.random.default_rng(12).standard_normal((2, 2, 5, 5))
    layer, bottom, top = forward(conv_text("num_output: 3 kernel_size: 3"), x)
    top[0].diff[...] = 1
    layer.backward_cpu(top, [True], bottom)
    once = [p.diff.copy() for p in layer.blobs]
    layer.backward_cpu(top, [True], bottom)
    for p, first in zip(layer.blobs, once):
        np.testing.assert_allclose(p.diff, 2 * first)
    np.testing.assert_allclose(layer.blobs[1].diff, 2 * 2 * 3 * 3)  # twice 2 images x 3x3 outputs


@pytest.mark.parametrize("kind", ["Convolution", "Deconvolution"])
def test_propagate_down_switches_skip_their_work(kind):
    x = np.random.default_rng(13).standard_normal((2, 2, 4, 4))
    layer, bottom, top = forward(conv_text("num_output: 2 kernel_size: 3 pad: 1", kind), x)
    top[0].diff[...] = 1
    bottom[0].diff[...] = 7
    layer.param_propagate_down = [False, True]
    layer.backward_cpu(top, [False], bottom)
    assert np.all(bottom[0].diff == 7)
    assert np.all(layer.blobs[0].diff == 0)
    assert np.all(layer.blobs[1].diff != 0)
    layer.param_propagate_down = [True, False]
    layer.blobs[1].diff[...] = 0
    layer.backward_cpu(top, [True], bottom)
    assert np.all(layer.blobs[1].diff == 0)
    assert np.any(layer.blobs[0].diff != 0) and np.all(bottom[0].diff != 7)


# -- shapes and errors --------------------------------------------------------------------------
def test_output_shapes_round_down():
    _, _, top = forward(conv_text("num_output: 2 kernel_size: 3 stride: 2"), np.zeros((1, 1, 8, 7)))
    assert top[0].shape == (1, 2, 3, 3)
    layer, _, top = forward(conv_text("num_output: 2 kernel_size: 4 stride: 3 pad: 1", "Deconvolution"),
                            np.zeros((1, 3, 5, 2)))
    assert top[0].shape == (1, 2, 14, 5)
    assert layer.blobs[0].shape == (3, 2, 4, 4)


def test_reshape_follows_a_new_input_size():
    layer, bottom, top = forward(conv_text("num_output: 2 kernel_size: 3"), np.zeros((1, 2, 5, 5)))
    bottom[0].reshape(3, 2, 7, 6)
    layer.reshape(bottom, top)
    assert top[0].shape == (3, 2, 5, 4)
    layer.forward_cpu(bottom, top)


@pytest.mark.parametrize("kind,params,shapes,message", [
    ("Convolution", "num_output: 4 group: 2 kernel_size: 1", [(1, 3, 4, 4)], "not divisible by group"),
    ("Convolution", "num_output: 3 group: 2 kernel_size: 1", [(1, 4, 4, 4)], "not divisible by group"),
    ("Convolution", "num_output: 2 kernel_size: 5", [(1, 1, 4, 8)], "larger than the padded input"),
    ("Convolution", "num_output: 2 kernel_size: 3 dilation: 3", [(1, 1, 6, 8)], "larger than the padded input"),
    ("Convolution", "num_output: 2 kernel_size: 3", [(1, 1, 5, 5), (1, 1, 5, 6)], "same shape"),
    ("Convolution", "num_output: 2 kernel_h: 3 kernel_w: 3", [(1, 1, 5, 5, 5)], "2-D"),
    ("Convolution", "num_output: 2 kernel_size: 3 kernel_h: 3 kernel_w: 3", [(1, 1, 5, 5)], "not both"),
    ("Convolution", "num_output: 2 kernel_size: 3 kernel_size: 3", [(1, 1, 5, 5, 5)], "once per spatial axis"),
    ("Convolution", "num_output: 2 kernel_size: 3 stride: 0", [(1, 1, 5, 5)], "stride must be positive"),
    ("Convolution", "kernel_size: 3", [(1, 1, 5, 5)], "num_output"),
    ("Convolution", "num_output: 2 kernel_size: 1 axis: 4", [(1, 1, 5, 5)], "axis"),
    ("Deconvolution", "num_output: 2 kernel_size: 2 pad: 3", [(1, 1, 2, 2)], "leaves no output"),
])
def test_errors_name_the_layer(kind, params, shapes, message):
    text = f'name: "bad" {conv_text(params, kind)}'
    with pytest.raises(CaffeError, match=message) as info:
        setup_layer(text, [np.zeros(s) for s in shapes], num_tops=len(shapes))
    assert "'bad'" in str(info.value)


def test_changed_channels_and_wrong_weight_shapes_are_errors():
    layer, bottom, top = forward(conv_text("num_output: 2 kernel_size: 3"), np.zeros((1, 2, 5, 5)))
    bottom[0].reshape(1, 3, 5, 5)
    with pytest.raises(CaffeError, match="channels"):
        layer.reshape(bottom, top)
    from nvcaffe_py.gradient_check import layer_param_from_text

    param = layer_param_from_text(conv_text("num_output: 2 kernel_size: 3"))
    blob = param.blobs.add()
    blob.shape.dim.extend([2, 2, 2, 2])
    blob.data.extend([0.0] * 16)
    bias = param.blobs.add()
    bias.shape.dim.extend([2])
    bias.data.extend([0.0] * 2)
    with pytest.raises(CaffeError, match="weight shape"):
        setup_layer(param, [np.zeros((1, 2, 5, 5))])


@pytest.mark.parametrize("pixels,num,fit,expected", [
    (3025, 256, 61, [52, 52, 52, 52, 48]),  # AlexNet conv1 at batch 256: odd pixels, chunks of 4k images
    (729, 10, 4, [4, 4, 2]),  # the last chunk is what is left
    (50, 9, 5, [4, 4, 1]),  # pixels = 2 mod 4: even counts
    (64, 7, 3, [3, 3, 1]),  # pixels a multiple of 4: any count, balanced
    (3025, 9, 2, [2, 2, 2, 2, 1]),  # fewer images fit than 4: as many as fit
])
def test_gpu_chunks_keep_column_counts_multiples_of_4(monkeypatch, pixels, num, fit, expected):
    g = conv_gpu.Geometry(1, 1, 1, 1, pixels, 1, (1, 1), (0, 0), (1, 1), (1, 1), 1)
    monkeypatch.setattr(conv_gpu, "CHUNK_ELEMENTS", fit * pixels)
    counts = [count for _, count in conv_gpu._chunks(num, g)]
    assert counts == expected
    assert [start for start, _ in conv_gpu._chunks(num, g)] == list(np.cumsum([0] + counts[:-1]))
