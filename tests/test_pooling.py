"""Pooling and SPP: Caffe's window rules against a loop-by-loop reference, and gradients."""
import math
import time

import numpy as np
import pytest

from nvcaffe_py.errors import CaffeError
from nvcaffe_py.gradient_check import check_layer_gradient, setup_layer
from nvcaffe_py.proto import caffe_pb2

FLT_MAX = float(np.finfo(np.float32).max)


def caffe_pool(x, kernel, stride, pad, method, ceil=True):
    """Caffe's PoolingLayer::Forward_cpu, one window at a time. Returns (top, mask)."""
    num, channels, height, width = x.shape
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, pad
    rounding = math.ceil if ceil else math.floor
    pooled_h = int(rounding((height + 2 * ph - kh) / sh)) + 1
    pooled_w = int(rounding((width + 2 * pw - kw) / sw)) + 1
    if ph or pw:
        if (pooled_h - 1) * sh >= height + ph:
            pooled_h -= 1
        if (pooled_w - 1) * sw >= width + pw:
            pooled_w -= 1
    top = np.zeros((num, channels, pooled_h, pooled_w))
    mask = np.full(top.shape, -1)
    for n in range(num):
        for c in range(channels):
            for i in range(pooled_h):
                for j in range(pooled_w):
                    hstart, wstart = i * sh - ph, j * sw - pw
                    if method == "MAX":
                        hend, wend = min(hstart + kh, height), min(wstart + kw, width)
                        best = -FLT_MAX
                        for h in range(max(hstart, 0), hend):
                            for w in range(max(wstart, 0), wend):
                                if x[n, c, h, w] > best:
                                    best, mask[n, c, i, j] = x[n, c, h, w], h * width + w
                        top[n, c, i, j] = best
                    else:
                        hend, wend = min(hstart + kh, height + ph), min(wstart + kw, width + pw)
                        size = (hend - hstart) * (wend - wstart)
                        hs, ws, he, we = max(hstart, 0), max(wstart, 0), min(hend, height), min(wend, width)
                        top[n, c, i, j] = x[n, c, hs:he, ws:we].sum() / size
    return top, mask


def distinct_values(shape, seed=0):
    """Inputs without ties, so that MAX pooling is differentiable everywhere."""
    rng = np.random.default_rng(seed)
    return rng.permutation(int(np.prod(shape))).reshape(shape) * 0.05 - 1.0


def pooling(params):
    return f'type: "Pooling" pooling_param {{ {params} }}'


# (prototxt parameters, kernel, stride, pad, ceil, input height x width)
GEOMETRIES = [
    ("kernel_size: 3 stride: 2", (3, 3), (2, 2), (0, 0), True, (7, 6)),
    ("kernel_size: 2 stride: 2", (2, 2), (2, 2), (0, 0), True, (6, 6)),
    ("kernel_size: 3 stride: 2 pad: 1", (3, 3), (2, 2), (1, 1), True, (6, 7)),
    ("kernel_size: 2 stride: 2 pad: 1", (2, 2), (2, 2), (1, 1), True, (5, 5)),  # last window dropped
    ("kernel_h: 3 kernel_w: 2 stride_h: 2 stride_w: 1 pad_h: 2 pad_w: 1", (3, 2), (2, 1), (2, 1), True, (7, 5)),
    ("kernel_size: 3 stride: 2 round_mode: FLOOR", (3, 3), (2, 2), (0, 0), False, (8, 8)),
    ("kernel_size: 3 stride: 3 pad: 1 round_mode: FLOOR", (3, 3), (3, 3), (1, 1), False, (7, 8)),
    # Windows that tile the image: forward-only MAX takes separable passes.
    ("kernel_size: 3 stride: 3", (3, 3), (3, 3), (0, 0), True, (9, 6)),
    ("kernel_h: 2 kernel_w: 3 stride_h: 2 stride_w: 3", (2, 3), (2, 3), (0, 0), True, (4, 9)),
    ("kernel_h: 1 kernel_w: 2 stride_h: 1 stride_w: 2", (1, 2), (1, 2), (0, 0), True, (3, 4)),
]


@pytest.mark.parametrize("method", ["MAX", "AVE"])
@pytest.mark.parametrize("params,kernel,stride,pad,ceil,hw", GEOMETRIES)
def test_forward_matches_caffe_loops(method, params, kernel, stride, pad, ceil, hw):
    x = np.random.default_rng(1).standard_normal((2, 3) + hw)
    num_tops = 2 if method == "MAX" else 1
    layer, bottom, top = setup_layer(pooling(f"pool: {method} {params}"), [x], num_tops=num_tops)
    layer.forward_cpu(bottom, top)
    expected, mask = caffe_pool(x, kernel, stride, pad, method, ceil)
    assert top[0].shape == expected.shape
    np.testing.assert_allclose(top[0].data, expected, rtol=1e-12)
    if method == "MAX":
        np.testing.assert_array_equal(top[1].data, mask)


@pytest.mark.parametrize("hw,kernel,stride,pad,ceil,expected", [
    ((32, 32), 3, 2, 0, True, (16, 16)),   # CIFAR-10: rounds up ...
    ((32, 32), 3, 2, 0, False, (15, 15)),  # ... or down
    ((55, 55), 3, 2, 0, True, (27, 27)),   # AlexNet pool1
    ((5, 5), 2, 2, 1, True, (3, 3)),       # ceil gives 4; the 4th window would start in the padding
    ((4, 6), 2, 3, 0, True, (2, 3)),
])
def test_output_shape(hw, kernel, stride, pad, ceil, expected):
    mode = "" if ceil else "round_mode: FLOOR"
    _, _, top = setup_layer(pooling(f"kernel_size: {kernel} stride: {stride} pad: {pad} {mode}"),
                            [np.zeros((1, 2) + hw)])
    assert top[0].shape == (1, 2) + expected


@pytest.mark.parametrize("hw", [(4, 5), (16, 17)])  # 16x17: more kernel offsets than a uint8 counts
def test_global_pooling(hw):
    x = np.random.default_rng(2).standard_normal((2, 3) + hw)
    for method, reduce in (("MAX", np.max), ("AVE", np.mean)):
        layer, bottom, top = setup_layer(pooling(f"pool: {method} global_pooling: true"), [x])
        layer.forward_cpu(bottom, top)
        np.testing.assert_allclose(top[0].data, reduce(x, axis=(2, 3), keepdims=True))
    max_layer, bottom, top = setup_layer(pooling("pool: MAX global_pooling: true"), [x], num_tops=2)
    max_layer.forward_cpu(bottom, top)
    np.testing.assert_array_equal(top[1].data.ravel(), x.reshape(6, -1).argmax(1))


def test_max_ties_keep_the_first_element_and_nan_never_wins():
    x = np.zeros((1, 1, 4, 4))
    x[0, 0, 0, 1] = np.nan
    layer, bottom, top = setup_layer(pooling("pool: MAX kernel_size: 2 stride: 2"), [x], num_tops=2)
    layer.forward_cpu(bottom, top)
    np.testing.assert_array_equal(top[0].data, 0)
    # Caffe's strict `>` scan keeps the first of equal maxima, and a NaN compares false.
    np.testing.assert_array_equal(top[1].data.ravel(), [0, 2, 8, 10])


@pytest.mark.parametrize("params,kernel,stride,pad,ceil,hw", GEOMETRIES)
def test_max_phase_layout_and_strided_passes_agree(params, kernel, stride, pad, ceil, hw):
    """Small windows take the polyphase layout, others a strided pass per offset: both keep
    Caffe's first maximum among ties, ignore NaN, and give -1 where nothing beats -FLT_MAX."""
    x = np.random.default_rng(12).integers(-2, 3, (2, 3) + hw).astype(float)  # many ties
    x[0, 0, :2, :2] = np.nan
    x[1, 2] = -np.inf
    expected, mask = caffe_pool(x, kernel, stride, pad, "MAX", ceil)
    assert (mask == -1).any()
    for phases in (True, False):
        layer, bottom, top = setup_layer(pooling(f"pool: MAX {params}"), [x], num_tops=2)
        assert layer.pool.phases is not None
        if not phases:
            layer.pool.phases = None
        layer.forward_cpu(bottom, top)
        np.testing.assert_array_equal(top[0].data, expected)
        np.testing.assert_array_equal(top[1].data, mask)
        # Forward-only (the deploy-time forward), one top: the maxima alone, no mask computed.
        layer, bottom, top = setup_layer(pooling(f"pool: MAX {params}"), [x])
        if not phases:
            layer.pool.phases = None
        layer.forward_only()
        layer.forward_cpu(bottom, top)
        np.testing.assert_array_equal(top[0].data, expected)
        assert layer.pool.index is None
        assert bool(layer.pool.tile) == (kernel == stride and pad == (0, 0) and hw[0] % kernel[0] == hw[1] % kernel[1] == 0)


def test_float32_matches_float64():
    x = np.random.default_rng(3).standard_normal((2, 3, 9, 9))
    results = []
    for dtype in (np.float32, np.float64):
        layer, bottom, top = setup_layer(pooling("pool: AVE kernel_size: 3 stride: 2 pad: 1"), [x], dtype=dtype)
        layer.forward_cpu(bottom, top)
        assert top[0].data.dtype == dtype
        results.append(top[0].data)
    np.testing.assert_allclose(results[0], results[1], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("method", ["MAX", "AVE"])
def test_chunks_of_planes_give_the_one_pass_result(method):
    x = distinct_values((3, 10, 12, 11))
    dy = np.random.default_rng(9).standard_normal((3, 10, 6, 5))
    results = []
    for chunk in (12 * 11 * 7, 1 << 30):  # 7 planes a chunk (the last one partial), then all at once
        layer, bottom, top = setup_layer(pooling(f"pool: {method} kernel_size: 3 stride: 2"), [x])
        layer.pool.CHUNK = chunk
        layer.forward_cpu(bottom, top)
        top[0].diff[...] = dy
        layer.backward_cpu(top, [True], bottom)
        results.append((top[0].data.copy(), bottom[0].diff.copy()))
    np.testing.assert_allclose(results[0][0], caffe_pool(x, (3, 3), (2, 2), (0, 0), method)[0], rtol=1e-12)
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-12)
    np.testing.assert_allclose(results[0][1], results[1][1], rtol=1e-12)


@pytest.mark.parametrize("params", [g[0] for g in GEOMETRIES] + ["global_pooling: true"])
def test_max_gradient(params):
    check_layer_gradient(pooling(f"pool: MAX {params}"), [distinct_values((2, 2, 6, 7))])


def test_max_gradient_through_the_mask_top():
    # With a second top, backward reads the argmax from that top, as Caffe does.
    check_layer_gradient(pooling("pool: MAX kernel_size: 3 stride: 2 pad: 1"), [distinct_values((2, 2, 6, 7))],
                         num_tops=2)


@pytest.mark.parametrize("params", [g[0] for g in GEOMETRIES] + ["global_pooling: true"])
def test_ave_gradient(params):
    check_layer_gradient(pooling(f"pool: AVE {params}"), [np.random.default_rng(4).standard_normal((2, 2, 6, 7))])


def test_window_past_the_image_gets_no_gradient():
    # stride > kernel without padding: Caffe's rounding up makes a window that starts past the image.
    x = distinct_values((1, 1, 4, 4))
    layer, bottom, top = setup_layer(pooling("pool: MAX kernel_size: 1 stride: 2"), [x], num_tops=2)
    layer.forward_cpu(bottom, top)
    assert top[0].shape == (1, 1, 3, 3)
    assert top[0].data[0, 0, 2, 0] == -FLT_MAX and top[1].data[0, 0, 2, 0] == -1
    top[0].diff[...] = 1
    layer.backward_cpu(top, [True], bottom)
    assert bottom[0].diff.sum() == 4


def test_stochastic_train_samples_in_proportion_to_activation():
    values = np.array([[1.0, 2.0], [3.0, 4.0]])
    x = np.broadcast_to(values, (1, 20000, 2, 2)).copy()
    layer, bottom, top = setup_layer(pooling("pool: STOCHASTIC kernel_size: 2 stride: 2"), [x])
    layer.forward_cpu(bottom, top)
    picked = top[0].data.ravel()
    frequencies = [(picked == v).mean() for v in (1, 2, 3, 4)]
    np.testing.assert_allclose(frequencies, [0.1, 0.2, 0.3, 0.4], atol=0.015)
    # The remembered index points at the picked element; backward routes the gradient there.
    np.testing.assert_array_equal(values.ravel()[layer.pool.index.ravel()], picked)
    top[0].diff[...] = 1
    layer.backward_cpu(top, [True], bottom)
    np.testing.assert_array_equal(bottom[0].diff.reshape(-1, 4).sum(axis=1), 1)
    np.testing.assert_array_equal(bottom[0].diff.reshape(-1, 4).argmax(axis=1), layer.pool.index.ravel())


def test_stochastic_test_phase_is_the_self_weighted_average():
    x = np.random.default_rng(5).uniform(0.1, 1.0, (2, 2, 5, 5))
    x[0, 0, :2, :2] = 0  # a window summing to 0 gives 0
    layer, bottom, top = setup_layer(pooling("pool: STOCHASTIC kernel_size: 2 stride: 2"), [x],
                                     phase=caffe_pb2.TEST)
    layer.forward_cpu(bottom, top)
    expected = np.zeros(top[0].shape)
    for n, c, i, j in np.ndindex(expected.shape):
        window = x[n, c, 2 * i:2 * i + 2, 2 * j:2 * j + 2]  # the last row/column windows are clipped
        expected[n, c, i, j] = (window ** 2).sum() / window.sum() if window.sum() > 0 else 0
    np.testing.assert_allclose(top[0].data, expected)


@pytest.mark.parametrize("phase", [caffe_pb2.TRAIN, caffe_pb2.TEST])
def test_stochastic_gradient(phase):
    check_layer_gradient(pooling("pool: STOCHASTIC kernel_size: 3 stride: 2"),
                         [np.random.default_rng(6).uniform(0.1, 1.0, (2, 2, 7, 6))], phase=phase)


@pytest.mark.parametrize("params,message", [
    ("kernel_size: 2 kernel_h: 2 kernel_w: 2", "kernel_size or as kernel_h"),
    ("stride: 2", "kernel_size or as kernel_h"),
    ("global_pooling: true kernel_size: 2", "global_pooling"),
    ("global_pooling: true stride: 2", "global_pooling"),
    ("kernel_size: 2 pad: 2", "smaller than the kernel"),
    ("kernel_size: 2 pad: 1 pad_h: 1 pad_w: 1", "pad or as pad_h"),
    ("kernel_size: 2 stride: 1 stride_h: 1", "stride or as stride_h"),
    ("kernel_size: 2 stride: 0", "stride must be positive"),
    ("pool: STOCHASTIC kernel_size: 3 pad: 1", "only for MAX and AVE"),
    ("kernel_size: 5 round_mode: FLOOR", "larger than"),
])
def test_bad_parameters_name_the_layer(params, message):
    with pytest.raises(CaffeError, match=f"layer 'layer' \\(Pooling\\).*{message}"):
        setup_layer(pooling(params), [np.zeros((1, 1, 3, 3))])


def test_bad_inputs():
    with pytest.raises(CaffeError, match="4 axes"):
        setup_layer(pooling("kernel_size: 2"), [np.zeros((1, 3, 3))])
    with pytest.raises(CaffeError, match="at most 1 top"):
        setup_layer(pooling("pool: AVE kernel_size: 2"), [np.zeros((1, 1, 4, 4))], num_tops=2)


# -- SPP ---------------------------------------------------------------------------------------

def spp(height, method):
    return f'type: "SPP" spp_param {{ pyramid_height: {height} pool: {method} }}'


@pytest.mark.parametrize("method", ["MAX", "AVE"])
def test_spp_concatenates_flattened_levels(method):
    x = np.random.default_rng(7).standard_normal((2, 3, 7, 9))
    layer, bottom, top = setup_layer(spp(3, method), [x])
    layer.forward_cpu(bottom, top)
    parts = []
    for level in range(3):
        bins = 2 ** level
        kh, kw = math.ceil(7 / bins), math.ceil(9 / bins)
        pad = ((kh * bins - 7 + 1) // 2, (kw * bins - 9 + 1) // 2)
        parts.append(caffe_pool(x, (kh, kw), (kh, kw), pad, method)[0].reshape(2, -1))
    expected = np.concatenate(parts, axis=1)
    assert top[0].shape == (2, 3 * (1 + 4 + 16))
    np.testing.assert_allclose(top[0].data, expected, rtol=1e-12)


def test_spp_single_level_keeps_pooling_shape():
    x = np.random.default_rng(8).standard_normal((2, 3, 5, 4))
    layer, bottom, top = setup_layer(spp(1, "MAX"), [x])
    layer.forward_cpu(bottom, top)
    assert top[0].shape == (2, 3, 1, 1)
    np.testing.assert_allclose(top[0].data, x.max(axis=(2, 3), keepdims=True))


@pytest.mark.parametrize("method", ["MAX", "AVE"])
def test_spp_gradient(method):
    check_layer_gradient(spp(3, method), [distinct_values((2, 2, 7, 9))])


def test_spp_too_deep_for_the_input():
    with pytest.raises(CaffeError, match="too fine"):
        setup_layer(spp(3, "MAX"), [np.zeros((1, 1, 3, 3))])


@pytest.mark.parametrize("ceil", [True, False])
@pytest.mark.parametrize("method", ["MAX", "AVE"])
def test_a_kernel_or_stride_past_the_padded_input_is_as_fast_and_as_right_as_one_reaching_its_end(ceil, method):
    """A stride or kernel of 2^32 - 1 looped that often before any check (found by the fuzz test);
    past the padded input it changes nothing, so the result equals the one reaching just its end."""
    x = np.random.default_rng(3).standard_normal((2, 2, 7, 8))
    mode = "" if ceil else "round_mode: FLOOR"
    results = []
    for kernel, stride in (("kernel_h: 9 kernel_w: 10", 9), ("kernel_h: 9 kernel_w: 10", 4294967295)):
        layer = f'type: "Pooling" pooling_param {{ pool: {method} {kernel} stride: {stride} pad: 1 {mode} }}'
        results.append(forward(layer, x))
    np.testing.assert_array_equal(results[0], results[1])
    start = time.perf_counter()
    forward(f'type: "Pooling" pooling_param {{ pool: {method} kernel_size: 3 stride: 4294967295 {mode} }}', x)
    if ceil:
        forward(f'type: "Pooling" pooling_param {{ pool: {method} kernel_size: 2147483647 stride: 2147483647 }}', x)
    assert time.perf_counter() - start < 2


def forward(text, x):
    layer, bottom, top = setup_layer(text, [x])
    layer.forward(bottom, top)
    return top[0].data.copy()


@pytest.mark.parametrize("params,hw", [("kernel_size: 4 stride: 4", (3, 3)),  # one window past the image
                                       ("kernel_h: 3 kernel_w: 8 stride_h: 3 stride_w: 8", (6, 5)),
                                       ("global_pooling: true", (5, 7))])
@pytest.mark.parametrize("method", ["MAX", "AVE"])
def test_forward_only_windows_past_or_over_the_whole_image(params, hw, method):
    """Forward-only MAX over windows that tile the image (one reaching past it included), and AVE
    over whole planes (one sum each), against Caffe's loops."""
    x = np.random.default_rng(4).standard_normal((2, 3) + hw)
    layer, bottom, top = setup_layer(pooling(f"pool: {method} {params}"), [x])
    layer.forward_only()
    layer.forward_cpu(bottom, top)
    pool = layer.pool
    expected, _ = caffe_pool(x, pool.kernel, pool.stride, pool.pad, method)
    np.testing.assert_allclose(top[0].data, expected, rtol=1e-12)
    assert (pool.tile is not None) == ("global" not in params)
    assert pool.whole_plane == (params != "kernel_h: 3 kernel_w: 8 stride_h: 3 stride_w: 8")
