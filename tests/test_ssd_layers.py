"""SSD's deploy layers (weiliu89/caffe, branch ssd): Normalize, PriorBox and DetectionOutput
against references written from the fork's loops, their errors, and OpenCV dnn on an SSD head."""
import math

import numpy as np
import pytest

import nvcaffe_py as caffe
from nvcaffe_py.errors import CaffeError
from nvcaffe_py.formats import net_param_from_text

from opencv_dnn import opencv_forward, sorted_detections


def net_from(text, phase=caffe.TEST):
    return caffe.Net(net_param_from_text(text), phase)


# -- PriorBox ------------------------------------------------------------------------------------
def prior_boxes_by_loops(height, width, image_h, image_w, min_sizes, max_sizes, ratios, flip, clip, variance,
                         offset=0.5):
    """PriorBoxLayer::Forward_cpu, loop by loop (min_size and max_size truncated to int)."""
    all_ratios = [1.0]
    for r in ratios:
        if all(abs(r - a) >= 1e-6 for a in all_ratios):
            all_ratios += [r, 1 / r] if flip else [r]
    step_w, step_h = image_w / width, image_h / height
    out = []
    for h in range(height):
        for w in range(width):
            cx, cy = (w + offset) * step_w, (h + offset) * step_h
            for s, min_size in enumerate(min_sizes):
                size = int(min_size)
                shapes = [(size, size)]
                if max_sizes:
                    shapes.append((math.sqrt(size * int(max_sizes[s])),) * 2)
                shapes += [(size * math.sqrt(r), size / math.sqrt(r)) for r in all_ratios if abs(r - 1) >= 1e-6]
                for bw, bh in shapes:
                    out += [(cx - bw / 2) / image_w, (cy - bh / 2) / image_h, (cx + bw / 2) / image_w,
                            (cy + bh / 2) / image_h]
    out = np.asarray(out)
    if clip:
        out = np.clip(out, 0, 1)
    return np.stack([out, np.resize(variance, out.size)])[None]


PRIOR_NET = """
layer { name: "data" type: "Input" top: "data" top: "feature"
        input_param { shape { dim: 1 dim: 3 dim: 300 dim: 300 } shape { dim: 1 dim: 8 dim: 5 dim: 5 } } }
layer { name: "prior" type: "PriorBox" bottom: "feature" bottom: "data" top: "prior"
        prior_box_param { min_size: 60.9 max_size: 111 aspect_ratio: 2 aspect_ratio: 3 flip: true clip: true
                          variance: 0.1 variance: 0.1 variance: 0.2 variance: 0.2 } }
"""


def test_prior_box_follows_the_fork():
    net = net_from(PRIOR_NET)
    out = net.forward()["prior"]
    want = prior_boxes_by_loops(5, 5, 300, 300, [60.9], [111], [2, 3], True, True, [0.1, 0.1, 0.2, 0.2])
    assert out.shape == (1, 2, 5 * 5 * 6 * 4)
    np.testing.assert_allclose(out, want, rtol=0, atol=1e-6)


def test_prior_box_explicit_image_size_and_step():
    net = net_from(PRIOR_NET.replace("clip: true", "clip: false img_size: 100 step: 10 offset: 0"))
    out = net.forward()["prior"][0, 0].reshape(5, 5, 6, 4)
    np.testing.assert_allclose(out[1, 2, 0], [(20 - 30) / 100, (10 - 30) / 100, (20 + 30) / 100, (10 + 30) / 100],
                               atol=1e-6)


@pytest.mark.parametrize("params, message", [
    ("min_size: 30 max_size: 20", "max_size must be greater"),
    ("max_size: 20", "needs min_size"),
    ("min_size: 30 variance: 0.1 variance: 0.2", "one or four positive variances"),
    ("min_size: 30 img_size: 10 img_h: 10 img_w: 10", "img_size or img_h/img_w"),
])
def test_prior_box_errors(params, message):
    with pytest.raises(CaffeError, match=message):
        net_from(PRIOR_NET.replace(PRIOR_NET[PRIOR_NET.index("min_size: 60.9"):PRIOR_NET.index(" } }\n", 200)],
                                   params))


# -- Normalize ---------------------------------------------------------------------------------
def test_normalize_follows_the_fork():
    net = net_from("""
        layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 3 dim: 2 dim: 2 } } }
        layer { name: "n1" type: "Normalize" bottom: "data" top: "n1"
                norm_param { across_spatial: false channel_shared: false scale_filler { type: "constant" value: 20 } } }
        layer { name: "n2" type: "Normalize" bottom: "data" top: "n2" norm_param { eps: 0.5 } }""")
    x = np.random.default_rng(0).standard_normal((2, 3, 2, 2)).astype(np.float32)
    out = net.forward(data=x)
    # per pixel: norm over the channels (eps inside the root); across: over the whole image
    np.testing.assert_allclose(out["n1"], 20 * x / np.sqrt((x ** 2).sum(axis=1, keepdims=True) + 1e-10), rtol=1e-5)
    np.testing.assert_allclose(out["n2"], x / np.sqrt((x ** 2).sum(axis=(1, 2, 3), keepdims=True) + 0.5), rtol=1e-5)
    assert net.params["n2"][0].data.shape == ()  # the fork's 0-axis shared scale


# -- DetectionOutput -----------------------------------------------------------------------------
DETECT = """
layer {{ name: "in" type: "Input" top: "loc" top: "conf" top: "prior"
        input_param {{ shape {{ dim: 1 dim: {loc} }} shape {{ dim: 1 dim: {conf} }} shape {{ dim: 1 dim: 2 dim: {prior} }} }} }}
layer {{ name: "det" type: "DetectionOutput" bottom: "loc" bottom: "conf" bottom: "prior" top: "det"
        detection_output_param {{ num_classes: 3 {params} }} }}
"""


def detect(priors, loc, conf, params="", variance=(0.1, 0.1, 0.2, 0.2)):
    priors = np.asarray(priors, np.float32)
    prior = np.stack([priors.reshape(-1), np.resize(np.float32(variance), priors.size)])[None]
    net = net_from(DETECT.format(loc=loc.size, conf=conf.size, prior=prior.shape[-1], params=params))
    return net.forward(loc=loc.reshape(1, -1), conf=conf.reshape(1, -1), prior=prior)["det"][0, 0]


PRIORS = [[0.1, 0.1, 0.5, 0.5], [0.12, 0.1, 0.52, 0.5], [0.6, 0.6, 0.9, 0.9], [0.1, 0.5, 0.3, 0.9]]
CONF = np.float32([[0.1, 0.8, 0.1],   # class 1, overlapping prior 1 heavily (IoU 0.9)
                   [0.1, 0.7, 0.2],
                   [0.2, 0.3, 0.5],
                   [0.5, 0.05, 0.45]])


def test_nms_keeps_the_best_of_overlapping_boxes_per_class():
    rows = detect(PRIORS, np.zeros((4, 4), np.float32), CONF,
                  "nms_param { nms_threshold: 0.5 } confidence_threshold: 0.25")
    # class 1: prior 0 (0.8) suppresses prior 1 (0.7), prior 2 (0.3) is kept; class 2: 0.5 and 0.45
    np.testing.assert_allclose(rows[:, :3], [[0, 1, 0.8], [0, 1, 0.3], [0, 2, 0.5], [0, 2, 0.45]], rtol=1e-6)
    np.testing.assert_allclose(rows[0, 3:], PRIORS[0], rtol=1e-6)


def test_keep_top_k_and_the_row_order():
    rows = detect(PRIORS, np.zeros((4, 4), np.float32), CONF,
                  "nms_param { nms_threshold: 0.5 } confidence_threshold: 0.25 keep_top_k: 2")
    np.testing.assert_allclose(rows[:, :3], [[0, 1, 0.8], [0, 2, 0.5]], rtol=1e-6)


def test_center_size_decoding_with_variances():
    loc = np.zeros((4, 4), np.float32)
    loc[2] = [1, -1, np.log(2) / 0.2, 0]
    rows = detect(PRIORS, loc, CONF, "code_type: CENTER_SIZE confidence_threshold: 0.4 nms_param { nms_threshold: 0.5 }")
    box = rows[(rows[:, 1] == 2) & np.isclose(rows[:, 2], 0.5)][0, 3:]
    center = (0.75 + 0.1 * 0.3, 0.75 - 0.1 * 0.3)  # centre moved by variance * offset * prior size
    np.testing.assert_allclose(box, [center[0] - 0.3, center[1] - 0.15, center[0] + 0.3, center[1] + 0.15], atol=1e-6)


def test_adaptive_threshold_eta():
    # three boxes in a row, each overlapping the next by IoU 0.6: with threshold 0.7 all are kept;
    # with eta 0.8 the threshold drops to 0.56 after the first, so the second is suppressed.
    priors = [[0.0, 0.0, 0.4, 0.4], [0.1, 0.0, 0.5, 0.4], [0.2, 0.0, 0.6, 0.4], [0.0, 0.5, 0.1, 0.6]]
    conf = np.float32([[0, 0.9, 0], [0, 0.8, 0], [0, 0.7, 0], [1, 0, 0]])
    plain = detect(priors, np.zeros((4, 4), np.float32), conf, "nms_param { nms_threshold: 0.7 } confidence_threshold: 0.1")
    adaptive = detect(priors, np.zeros((4, 4), np.float32), conf,
                      "nms_param { nms_threshold: 0.7 eta: 0.8 } confidence_threshold: 0.1")
    assert plain[:, 2].tolist() == pytest.approx([0.9, 0.8, 0.7])
    assert adaptive[:, 2].tolist() == pytest.approx([0.9, 0.7])


def test_no_detection_gives_one_placeholder_row_per_image():
    rows = detect(PRIORS, np.zeros((4, 4), np.float32), CONF, "confidence_threshold: 0.99")
    np.testing.assert_array_equal(rows, [[0, -1, -1, -1, -1, -1, -1]])


def test_detection_output_errors():
    with pytest.raises(CaffeError, match="save_output_param"):
        detect(PRIORS, np.zeros((4, 4), np.float32), CONF, 'save_output_param { output_directory: "x" }')
    with pytest.raises(CaffeError, match="16 location values per image for 4 priors .expected 48"):
        detect(PRIORS, np.zeros((4, 4), np.float32), CONF, "share_location: false")


# -- OpenCV on an SSD head -----------------------------------------------------------------------
HEAD = """
layer { name: "data" type: "Input" top: "data" top: "feature"
        input_param { shape { dim: 2 dim: 3 dim: 64 dim: 64 } shape { dim: 2 dim: 8 dim: 4 dim: 4 } } }
layer { name: "norm" type: "Normalize" bottom: "feature" top: "norm"
        norm_param { across_spatial: false channel_shared: false scale_filler { type: "uniform" min: 5 max: 20 } } }
layer { name: "loc" type: "Convolution" bottom: "norm" top: "loc"
        convolution_param { num_output: 16 kernel_size: 3 pad: 1 weight_filler { type: "gaussian" std: 0.05 } } }
layer { name: "loc_perm" type: "Permute" bottom: "loc" top: "loc_perm" permute_param { order: 0 order: 2 order: 3 order: 1 } }
layer { name: "loc_flat" type: "Flatten" bottom: "loc_perm" top: "loc_flat" }
layer { name: "conf" type: "Convolution" bottom: "norm" top: "conf"
        convolution_param { num_output: 12 kernel_size: 3 pad: 1 weight_filler { type: "gaussian" std: 0.3 } } }
layer { name: "conf_perm" type: "Permute" bottom: "conf" top: "conf_perm" permute_param { order: 0 order: 2 order: 3 order: 1 } }
layer { name: "conf_flat" type: "Flatten" bottom: "conf_perm" top: "conf_flat" }
layer { name: "conf_reshape" type: "Reshape" bottom: "conf_flat" top: "conf_reshape" reshape_param { shape { dim: 0 dim: -1 dim: 3 } } }
layer { name: "conf_softmax" type: "Softmax" bottom: "conf_reshape" top: "conf_softmax" softmax_param { axis: 2 } }
layer { name: "conf_out" type: "Flatten" bottom: "conf_softmax" top: "conf_out" }
layer { name: "prior" type: "PriorBox" bottom: "norm" bottom: "data" top: "prior"
        prior_box_param { min_size: 20 max_size: 40 aspect_ratio: 2 flip: true clip: false
                          variance: 0.1 variance: 0.1 variance: 0.2 variance: 0.2 } }
layer { name: "detection_out" type: "DetectionOutput" bottom: "loc_flat" bottom: "conf_out" bottom: "prior"
        top: "detection_out"
        detection_output_param { num_classes: 3 share_location: true background_label_id: 0
          nms_param { nms_threshold: 0.45 top_k: 40 } code_type: CENTER_SIZE keep_top_k: 30 confidence_threshold: 0.3 } }
"""


def test_ssd_head_agrees_with_opencv(tmp_path):
    net = net_from(HEAD)
    rng = np.random.default_rng(5)
    inputs = {"data": rng.standard_normal((2, 3, 64, 64)), "feature": rng.standard_normal((2, 8, 4, 4))}
    ours = {k: v.copy() for k, v in net.forward(**inputs).items()}
    names = ["norm", "loc_flat", "conf_out", "prior", "detection_out"]
    theirs = opencv_forward(tmp_path, HEAD, net, inputs, names)
    for name in names[:3]:
        np.testing.assert_allclose(net.blobs[name].data.reshape(theirs[name].shape), theirs[name], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(net.blobs["prior"].data, theirs["prior"], atol=1e-6)
    mine, cv = sorted_detections(ours["detection_out"]), sorted_detections(theirs["detection_out"])
    assert len(mine) > 5
    np.testing.assert_allclose(mine, cv, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("eta", [1.0, 0.9])
def test_nms_by_a_table_of_overlaps_keeps_the_boxes_one_by_one_keeps(eta, monkeypatch):
    """NMS with every candidate's overlaps computed in one table keeps exactly the boxes that a
    check of each candidate against the kept ones keeps (degenerate boxes and ties included)."""
    from nvcaffe_py.layers import bbox

    rng = np.random.default_rng(7)
    corners = rng.uniform(0, 1, (300, 2)).astype(np.float32)
    boxes = np.concatenate([corners, corners + rng.uniform(-0.05, 0.3, (300, 2)).astype(np.float32)], axis=1)
    scores = np.round(rng.uniform(0, 1, 300), 2).astype(np.float32)  # ties
    by_table = bbox.nms(boxes, scores, 0.2, 0.45, eta, top_k=200)
    monkeypatch.setattr(bbox, "NMS_TABLE_CANDIDATES", 0)
    assert bbox.nms(boxes, scores, 0.2, 0.45, eta, top_k=200) == by_table
    assert 10 < len(by_table) < 200
