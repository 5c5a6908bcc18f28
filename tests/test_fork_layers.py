"""The forks' other layers against references written from their sources (DeepLab/PSPNet Interp,
SegNet Upsample and BN, SENet Axpy, Faster R-CNN ROIPooling, R-FCN PSROIPooling, NVCaffe's
BatchNorm scale_bias), against OpenCV dnn 4.14 where it has the layer, and the fork schema's
clashing field numbers in a caffemodel."""
import math

import numpy as np
import pytest
from google.protobuf.internal import encoder

import nvcaffe_py as caffe
from nvcaffe_py.errors import CaffeError
from nvcaffe_py.formats import net_param_from_text, read_caffemodel
from nvcaffe_py.proto import caffe_pb2

from opencv_dnn import opencv_forward

RNG = np.random.default_rng(0)


def net_from(text, phase=caffe.TEST):
    return caffe.Net(net_param_from_text(text), phase)


def input_layer(**shapes):
    tops = " ".join(f'top: "{name}"' for name in shapes)
    dims = " ".join("shape { " + " ".join(f"dim: {d}" for d in shape) + " }" for shape in shapes.values())
    return f'layer {{ name: "input" type: "Input" {tops} input_param {{ {dims} }} }}\n'


# -- Interp ----------------------------------------------------------------------------------------
def interp_by_loops(x, out_h, out_w, crop=0, eff=None):
    """caffe_cpu_interp2 (unpacked), loop by loop: the float32 ratio, the neighbour clamped at the end."""
    eff_h, eff_w = eff or x.shape[2:]
    if (out_h, out_w) == (eff_h, eff_w):
        return x[:, :, crop:crop + out_h, crop:crop + out_w].copy()
    y = np.empty(x.shape[:2] + (out_h, out_w), x.dtype)
    rh = np.float32(eff_h - 1) / np.float32(out_h - 1) if out_h > 1 else np.float32(0)
    rw = np.float32(eff_w - 1) / np.float32(out_w - 1) if out_w > 1 else np.float32(0)
    for h2 in range(out_h):
        h1r = np.float32(rh * h2)
        h1 = int(h1r)
        h1p = 1 if h1 < eff_h - 1 else 0
        lh = h1r - h1
        for w2 in range(out_w):
            w1r = np.float32(rw * w2)
            w1 = int(w1r)
            w1p = 1 if w1 < eff_w - 1 else 0
            lw = w1r - w1
            p = x[:, :, crop + h1:, crop + w1:]
            y[:, :, h2, w2] = ((1 - lh) * ((1 - lw) * p[:, :, 0, 0] + lw * p[:, :, 0, w1p])
                               + lh * ((1 - lw) * p[:, :, h1p, 0] + lw * p[:, :, h1p, w1p]))
    return y


@pytest.mark.parametrize("params, out, crop", [("zoom_factor: 3", (13, 19), 0), ("shrink_factor: 2", (3, 4), 0),
                                               ("height: 9 width: 4", (9, 4), 0),
                                               ("zoom_factor: 2 pad_beg: -1 pad_end: -1", (5, 9), 1)])
def test_interp_follows_the_fork_and_opencv(tmp_path, params, out, crop):
    text = input_layer(x=(2, 3, 5, 7)) + f'layer {{ name: "i" type: "Interp" bottom: "x" top: "i" interp_param {{ {params} }} }}'
    net = net_from(text)
    x = RNG.standard_normal((2, 3, 5, 7)).astype(np.float32)
    ours = net.forward(x=x)["i"].copy()
    assert ours.shape == (2, 3) + out
    np.testing.assert_allclose(ours, interp_by_loops(x, *out, crop, (5 - 2 * crop, 7 - 2 * crop)), rtol=1e-5, atol=1e-6)
    if not crop and "shrink" not in params:  # OpenCV 4.14 ignores the pads, and empties a lone shrink_factor
        np.testing.assert_allclose(ours, opencv_forward(tmp_path, text, net, {"x": x}, ["i"])["i"], rtol=1e-5, atol=1e-6)


# -- SegNet: Upsample and BN -----------------------------------------------------------------------
def test_upsample_puts_each_value_where_the_pooling_found_it():
    net = net_from(input_layer(x=(2, 3, 6, 8))
                   + 'layer { name: "p" type: "Pooling" bottom: "x" top: "p" top: "m" pooling_param { pool: MAX kernel_size: 2 stride: 2 } }\n'
                   'layer { name: "u" type: "Upsample" bottom: "p" bottom: "m" top: "u" upsample_param { scale: 2 } }')
    x = RNG.standard_normal((2, 3, 6, 8)).astype(np.float32)
    up = net.forward(x=x)["u"]
    cells = x.reshape(2, 3, 3, 2, 4, 2).transpose(0, 1, 2, 4, 3, 5).reshape(2, 3, 3, 4, 4)
    keep = cells == cells.max(axis=-1, keepdims=True)
    want = np.where(keep, cells, 0).reshape(2, 3, 3, 4, 2, 2).transpose(0, 1, 2, 4, 3, 5).reshape(2, 3, 6, 8)
    np.testing.assert_array_equal(up, want)


def test_upsample_rejects_a_mask_from_a_bigger_pooling():
    net = net_from(input_layer(x=(1, 1, 2, 2), m=(1, 1, 2, 2))
                   + 'layer { name: "u" type: "Upsample" bottom: "x" bottom: "m" top: "u" upsample_param { upsample_h: 3 upsample_w: 3 } }')
    with pytest.raises(CaffeError, match="names place 12 of a 3x3 plane"):
        net.forward(x=np.ones((1, 1, 2, 2)), m=np.float32([[[[0, 2], [6, 12]]]]))


def test_segnet_bn_learn_and_inference():
    text = input_layer(x=(4, 3, 2, 5)) + ('layer { name: "bn" type: "BN" bottom: "x" top: "bn" top: "mean" top: "var" '
                                          'bn_param { scale_filler { type: "uniform" min: 1 max: 2 } '
                                          'shift_filler { type: "uniform" min: -1 max: 1 } } }')
    net = net_from(text)
    x = RNG.standard_normal((4, 3, 2, 5)).astype(np.float32) * 3 + 1
    out = net.forward(x=x)
    scale, shift = (p.data.reshape(1, 3, 1, 1) for p in net.params["bn"])
    mean, var = x.mean(axis=(0, 2, 3), keepdims=True), x.var(axis=(0, 2, 3), keepdims=True)
    np.testing.assert_allclose(out["bn"], (x - mean) / np.sqrt(var + 1e-9) * scale + shift, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(out["mean"], mean, rtol=1e-5)
    np.testing.assert_allclose(out["var"], var, rtol=1e-4)
    inference = net_from(text.replace("bn_param {", "bn_param { bn_mode: INFERENCE").replace('top: "mean" top: "var" ', ""))
    inference.params["bn"][0].data[...], inference.params["bn"][1].data[...] = scale, shift
    np.testing.assert_allclose(inference.forward(x=x)["bn"], x * scale + shift, rtol=1e-6)


# -- SENet's Axpy ----------------------------------------------------------------------------------
def test_axpy_in_a_squeeze_and_excitation_block():
    net = net_from(input_layer(x=(2, 8, 5, 5)) + """
        layer { name: "pool" type: "Pooling" bottom: "x" top: "pool" pooling_param { pool: AVE global_pooling: true } }
        layer { name: "fc" type: "InnerProduct" bottom: "pool" top: "fc" inner_product_param { num_output: 8 weight_filler { type: "gaussian" std: 1 } } }
        layer { name: "gate" type: "Sigmoid" bottom: "fc" top: "gate" }
        layer { name: "axpy" type: "Axpy" bottom: "gate" bottom: "x" bottom: "x" top: "axpy" }""")
    x = RNG.standard_normal((2, 8, 5, 5)).astype(np.float32)
    out = net.forward(x=x)
    np.testing.assert_allclose(out["axpy"], net.blobs["gate"].data.reshape(2, 8, 1, 1) * x + x, rtol=1e-6)


# -- ROIPooling and PSROIPooling -------------------------------------------------------------------
ROIS = np.float32([[0, 1.2, 2.6, 19.7, 17.4], [1, 0, 0, 8, 7], [1, 13, 3, 30, 25], [0, 5.5, 4.5, 5.5, 4.5]])


def roi_max_by_loops(x, rois, ph_count, pw_count, scale):
    """ROIPoolingLayer::Forward_cpu (caffe-fast-rcnn), loop by loop."""
    c_round = lambda v: int(math.floor(abs(v) + 0.5)) * (1 if v >= 0 else -1)  # noqa: E731
    _, channels, height, width = x.shape
    y = np.empty((len(rois), channels, ph_count, pw_count), np.float32)
    for r, roi in enumerate(rois):
        start_w, start_h, end_w, end_h = (c_round(v * scale) for v in roi[1:])
        bin_h = np.float32(max(end_h - start_h + 1, 1)) / np.float32(ph_count)
        bin_w = np.float32(max(end_w - start_w + 1, 1)) / np.float32(pw_count)
        for ph in range(ph_count):
            for pw in range(pw_count):
                hs = min(max(math.floor(ph * bin_h) + start_h, 0), height)
                he = min(max(math.ceil((ph + 1) * bin_h) + start_h, 0), height)
                ws = min(max(math.floor(pw * bin_w) + start_w, 0), width)
                we = min(max(math.ceil((pw + 1) * bin_w) + start_w, 0), width)
                empty = he <= hs or we <= ws
                y[r, :, ph, pw] = 0 if empty else x[int(roi[0]), :, hs:he, ws:we].max(axis=(1, 2))
    return y


def region_pooling(tmp_path, layer, channels):
    """Our output, OpenCV's and the features, for a region pooling layer on (2, channels, 12, 14)."""
    text = input_layer(x=(2, channels, 12, 14), rois=(4, 5)) + f'layer {{ name: "r" bottom: "x" bottom: "rois" top: "r" {layer} }}'
    net = net_from(text)
    x = RNG.standard_normal((2, channels, 12, 14)).astype(np.float32)
    ours = net.forward(x=x, rois=ROIS)["r"].copy()
    return ours, opencv_forward(tmp_path, text, net, {"x": x, "rois": ROIS}, ["r"])["r"], x


def test_roi_pooling_follows_the_fork_and_opencv(tmp_path):
    ours, theirs, x = region_pooling(tmp_path, 'type: "ROIPooling" roi_pooling_param { pooled_h: 3 pooled_w: 2 '
                                               'spatial_scale: 0.5 }', 3)
    np.testing.assert_array_equal(ours, roi_max_by_loops(x, ROIS, 3, 2, 0.5))
    np.testing.assert_array_equal(ours, theirs)


def test_psroi_pooling_follows_the_fork_and_opencv(tmp_path):
    ours, theirs, x = region_pooling(tmp_path, 'type: "PSROIPooling" psroi_pooling_param { spatial_scale: 0.5 '
                                               'output_dim: 2 group_size: 3 }', 18)
    # region 1 of image 1: corners (0, 0)-(8, 7) -> 4 cells high, 4.5 wide; bins 4/3 high, 1.5 wide
    bin_rows, bin_cols = [(0, 2), (1, 3), (2, 4)], [(0, 2), (1, 3), (3, 5)]
    for ph, (hs, he) in enumerate(bin_rows):
        for pw, (ws, we) in enumerate(bin_cols):
            channels = (np.arange(2) * 3 + ph) * 3 + pw
            np.testing.assert_allclose(ours[1, :, ph, pw], x[1, channels, hs:he, ws:we].mean(axis=(1, 2)), rtol=1e-5)
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)


# -- NVCaffe's BatchNorm scale_bias ----------------------------------------------------------------
def test_batch_norm_scale_bias():
    text = input_layer(x=(4, 3, 2, 2)) + (
        'layer { name: "bn" type: "BatchNorm" bottom: "x" top: "bn" batch_norm_param { use_global_stats: true '
        'scale_filler { type: "uniform" min: 1 max: 2 } bias_filler { type: "uniform" min: -1 max: 1 } } }')
    net = net_from(text)
    assert [p.data.shape for p in net.params["bn"]] == [(3,), (3,), (1,), (3,), (3,)]
    mean, var, factor, scale, bias = (p.data for p in net.params["bn"])
    mean[...], var[...], factor[...] = [2, 4, -2], [1, 4, 9], 2  # stored sums, divided by the factor
    x = RNG.standard_normal((4, 3, 2, 2)).astype(np.float32)
    c = (slice(None), None, None)
    want = (x - (mean / 2)[c]) / np.sqrt((var / 2)[c] + 1e-5) * scale[c] + bias[c]
    np.testing.assert_allclose(net.forward(x=x)["bn"], want, rtol=1e-5, atol=1e-6)
    # the learned scale and bias train (lr_mult 1 by default); the statistics do not
    assert [spec.lr_mult for spec in net.layers[1].layer_param.param[:3]] == [0, 0, 0]


def test_batch_norm_weights_must_match_scale_bias():
    weights = caffe_pb2.NetParameter()
    layer = weights.layer.add(name="bn", type="BatchNorm")
    for shape in ((3,), (3,), (1,)):
        layer.blobs.add().shape.dim.extend(shape)
        layer.blobs[-1].data.extend([1.0] * shape[0])
    text = input_layer(x=(2, 3, 2, 2)) + 'layer { name: "bn" type: "BatchNorm" bottom: "x" top: "bn" batch_norm_param { scale_bias: true } }'
    param = net_param_from_text(text)
    param.layer[1].blobs.extend(layer.blobs)
    with pytest.raises(CaffeError, match="3 parameter blobs in the weights; 5 with scale_bias expected"):
        caffe.Net(param, caffe.TEST)


# -- the schema's moved fields ---------------------------------------------------------------------
def _field(number, payload):
    return encoder._VarintBytes(number << 3 | 2) + encoder._VarintBytes(len(payload)) + payload


def _varint_field(number, value):
    return encoder._VarintBytes(number << 3) + encoder._VarintBytes(value)


def test_a_fork_caffemodel_with_the_clashing_numbers_still_loads(tmp_path):
    """PSPNet writes interp_param at 143 (BVLC's input_param) and SegNet upsample_param at 137
    (BVLC's embed_param): such a caffemodel reads, and its weights load by layer name."""
    interp = _varint_field(1, 5) + _varint_field(3, 2)  # height: 5, zoom_factor: 2
    upsample = _varint_field(1, 2) + _varint_field(4, 1) + _varint_field(6, 10)  # scale, pad_out_h, upsample_h
    conv = caffe_pb2.LayerParameter(name="conv", type="Convolution")
    conv.blobs.add(shape=caffe_pb2.BlobShape(dim=[2, 1, 1, 1]), data=[3.0, 4.0])
    fork_layers = (_field(1, b"interp") + _field(2, b"Interp") + _field(143, interp),
                   _field(1, b"up") + _field(2, b"Upsample") + _field(137, upsample))
    model = tmp_path / "fork.caffemodel"
    model.write_bytes(b"".join(_field(100, layer) for layer in fork_layers) + _field(100, conv.SerializeToString()))
    weights = read_caffemodel(model)
    assert [layer.name for layer in weights.layer] == ["interp", "up", "conv"]
    net = net_from(input_layer(x=(1, 1, 3, 3)) + """
        layer { name: "conv" type: "Convolution" bottom: "x" top: "conv" convolution_param { num_output: 2 kernel_size: 1 bias_term: false } }
        layer { name: "interp" type: "Interp" bottom: "conv" top: "interp" interp_param { zoom_factor: 2 } }""")
    net.copy_from(str(model))
    np.testing.assert_array_equal(net.params["conv"][0].data.reshape(-1), [3, 4])
    assert net.blobs["interp"].shape == (1, 2, 5, 5)
