"""SSD's training side (weiliu89/caffe ssd branch): matching, encoding, average precision and
DetectionEvaluate against hand-computed values and the scenes of the fork's own tests
(test_bbox_util.cpp, test_detection_evaluate_layer.cpp: their inputs and expected values);
MultiBoxLoss's loss and mining, the batch_sampler's constraints, the solver's detection test and
its errors. (AnnotatedData and the tools: tests/test_annotated_data.py; a whole training run:
tests/test_ssd_synthetic.py.)"""
import logging

import numpy as np
import pytest

import nvcaffe_py as caffe
from nvcaffe_py import formats
from nvcaffe_py.errors import CaffeError
from nvcaffe_py.layers import batch_sampler
from nvcaffe_py.layers.bbox import (decode_boxes, encode_boxes, match_boxes, output_boxes, pairwise_overlaps,
                                    pixel_overlaps)
from nvcaffe_py.proto import caffe_pb2
from nvcaffe_py.solvers.detection_test import DetectionTally, average_precision

CENTER_SIZE = caffe_pb2.PriorBoxParameter.CENTER_SIZE
CORNER = caffe_pb2.PriorBoxParameter.CORNER


# -- matching and encoding ---------------------------------------------------------------------
def test_bipartite_then_per_prediction_matching_by_hand():
    gt = np.array([[0.0, 0.0, 0.5, 0.5], [0.5, 0.5, 1.0, 1.0]])
    priors = np.array([[0.0, 0.0, 0.4, 0.5],     # IoU with gt0 0.8
                       [0.0, 0.0, 0.5, 0.6],     # IoU with gt0 0.25/0.30 = 0.8333 (the best pair)
                       [0.5, 0.5, 0.9, 0.9],     # IoU with gt1 0.16/0.25 = 0.64
                       [0.6, 0.6, 1.0, 1.0],     # IoU with gt1 0.16/0.25 = 0.64 (tie: the first prior wins)
                       [0.2, 0.2, 0.7, 0.7]])    # small overlap with both
    iou = pairwise_overlaps(priors, gt)
    assert iou[1, 0] == pytest.approx(0.25 / 0.30) and iou[0, 0] == pytest.approx(0.8)
    assert iou[4, 0] == pytest.approx(0.09 / 0.41)
    indices, overlaps = match_boxes(gt, priors, per_prediction=False, overlap_threshold=0.5)
    assert indices.tolist() == [-1, 0, 1, -1, -1]
    assert overlaps[1] == pytest.approx(0.25 / 0.30) and overlaps[3] == pytest.approx(0.64)
    indices, _ = match_boxes(gt, priors, per_prediction=True, overlap_threshold=0.5)
    assert indices.tolist() == [0, 0, 1, 1, -1]
    indices, _ = match_boxes(gt, priors, per_prediction=True, overlap_threshold=0.7)
    assert indices.tolist() == [0, 0, 1, -1, -1]
    indices, _ = match_boxes(gt, priors - 0.2, per_prediction=True, overlap_threshold=0.5, ignore_cross_boundary=True)
    assert indices[0] == indices[1] == -2


def test_center_size_encoding_by_hand_and_round_trip():
    prior = np.array([[0.2, 0.2, 0.6, 0.4]])        # centre (0.4, 0.3), 0.4 x 0.2
    variance = np.array([[0.1, 0.1, 0.2, 0.2]])
    box = np.array([[0.3, 0.1, 0.7, 0.5]])          # centre (0.5, 0.3), 0.4 x 0.4
    want = [(0.5 - 0.4) / 0.4 / 0.1, 0.0, np.log(1.0) / 0.2, np.log(2.0) / 0.2]
    got = encode_boxes(prior, variance, box, CENTER_SIZE, False)
    np.testing.assert_allclose(got[0], want, atol=1e-12)
    np.testing.assert_allclose(encode_boxes(prior, variance, box, CENTER_SIZE, True)[0],
                               [0.25, 0.0, 0.0, np.log(2.0)], atol=1e-12)
    np.testing.assert_allclose(encode_boxes(prior, variance, box, CORNER, False)[0], [1.0, -1.0, 0.5, 0.5])
    for code in (CORNER, CENTER_SIZE, caffe_pb2.PriorBoxParameter.CORNER_SIZE):
        for in_target in (False, True):
            offsets = encode_boxes(prior, variance, box, code, in_target)
            np.testing.assert_allclose(decode_boxes(prior, variance, offsets, code, in_target), box, atol=1e-12)


# The fork's test_bbox_util.cpp scene: two ground-truth boxes (labels 1, 2), six predictions whose
# overlaps with them are given beside each.
FORK_GT = np.array([[0.1, 0.1, 0.3, 0.3], [0.3, 0.3, 0.6, 0.5]])
FORK_PRED = np.array([[0.1, 0.0, 0.4, 0.3],    # 4/9 with gt 0
                      [0.0, 0.1, 0.2, 0.3],    # 2/6 with gt 0
                      [0.2, 0.1, 0.4, 0.4],    # 2/8 with gt 0, 1/11 with gt 1
                      [0.4, 0.3, 0.7, 0.5],    # 4/8 with gt 1
                      [0.5, 0.4, 0.7, 0.7],    # 1/11 with gt 1
                      [0.7, 0.7, 0.8, 0.8]])   # none


@pytest.mark.parametrize("per_prediction, threshold, want", [
    (False, -1, [0, -1, -1, 1, -1, -1]),     # TestMatchBBoxLableAllBipartite
    (True, 0.3, [0, 0, -1, 1, -1, -1]),      # TestMatchBBoxLableAllPerPrediction
    (True, 0.001, [0, 0, 0, 1, 1, -1]),      # TestMatchBBoxLableAllPerPredictionEx
])
def test_matching_as_the_forks_tests_give_it(per_prediction, threshold, want):
    indices, overlaps = match_boxes(FORK_GT, FORK_PRED, per_prediction, threshold, ignore_cross_boundary=True)
    assert indices.tolist() == want
    np.testing.assert_allclose(overlaps, [4 / 9, 2 / 6, 2 / 8, 4 / 8, 1 / 11, 0], atol=1e-6)
    indices, overlaps = match_boxes(FORK_GT[:1], FORK_PRED, per_prediction, threshold)  # label 1 only
    assert indices.tolist() == {0.001: [0, 0, 0, -1, -1, -1], 0.3: [0, 0, -1, -1, -1, -1]}.get(threshold, [0] + [-1] * 5)
    np.testing.assert_allclose(overlaps, [4 / 9, 2 / 6, 2 / 8, 0, 0, 0], atol=1e-6)


def test_average_precision_as_the_forks_test_gives_it():
    """TestComputeAP: 11 detections (ties at equal scores in the order given), 5 positives."""
    scores = [1.0, 1.0, 0.9, 0.9, 0.8, 0.7, 0.7, 0.6, 0.5, 0.4, 0.4]
    tp = [0, 1, 1, 0, 1, 0, 1, 0, 0, 0, 1]
    assert average_precision(scores, tp, 5, "Integral") == pytest.approx(0.558528, abs=1e-5)
    assert average_precision(scores, tp, 5, "MaxIntegral") == pytest.approx(0.591861, abs=1e-5)
    assert average_precision(scores, tp, 5, "11point") == pytest.approx(0.598662, abs=1e-5)
    last = 5 / 11  # the precision of the full list; the first 7 detections drop it at recall 1
    assert average_precision(scores[:7], tp[:7], 5, "Integral") == pytest.approx(0.558528 - last * 0.2, abs=1e-5)
    assert average_precision(scores[:7], tp[:7], 5, "MaxIntegral") == pytest.approx(0.591861 - last * 0.2, abs=1e-5)
    assert average_precision(scores[:7], tp[:7], 5, "11point") == pytest.approx(0.598662 - last * 2 / 11, abs=1e-5)


# -- MultiBoxLoss -------------------------------------------------------------------------------
def multibox(params, loc, conf, priors, variances, gt, loss_param="", dtype=np.float64):
    text = (f'layer {{ name: "loss" type: "MultiBoxLoss" bottom: "loc" bottom: "conf" bottom: "prior" '
            f'bottom: "gt" top: "loss" multibox_loss_param {{ {params} }} {loss_param} }}')
    shapes = {"loc": (1, loc.size), "conf": (1, conf.size), "prior": (1, 2, priors.size), "gt": (1, 1, len(gt), 8)}
    inputs = "".join(f'input: "{n}" input_shape {{ {" ".join(f"dim: {d}" for d in s)} }} ' for n, s in shapes.items())
    net = caffe.Net(formats.net_param_from_text(inputs + "force_backward: true " + text), caffe.TRAIN)
    net.blobs["loc"].data[...] = loc.reshape(1, -1)
    net.blobs["conf"].data[...] = conf.reshape(1, -1)
    net.blobs["prior"].data[...] = np.stack([priors.reshape(-1), variances.reshape(-1)])[None]
    net.blobs["gt"].data[...] = np.asarray(gt, np.float64).reshape(1, 1, -1, 8)
    loss = float(net.forward()["loss"])
    net.backward()
    return loss, net.blobs["loc"].diff.reshape(loc.shape).copy(), net.blobs["conf"].diff.reshape(conf.shape).copy()


def test_multibox_loss_by_hand_corner_code_no_mining():
    priors = np.array([[0.0, 0.0, 0.5, 0.5], [0.5, 0.5, 1.0, 1.0], [0.0, 0.5, 0.5, 1.0]])
    variances = np.ones((3, 4))
    gt = [[0, 1, 0, 0.1, 0.0, 0.5, 0.5, 0]]              # matches prior 0 (IoU 0.8)
    loc = np.array([[0.1, 0.0, 0.0, 2.0], [5.0, 5.0, 5.0, 5.0], [0.0, 0.0, 0.0, 0.0]])
    conf = np.array([[0.0, 1.0], [1.0, 0.0], [0.0, 0.0]])
    loss, dloc, dconf = multibox("num_classes: 2 code_type: CORNER mining_type: NONE", loc, conf, priors, variances,
                                 gt, "loss_param { normalization: VALID }")
    # target (0.1, 0, 0, 0); d = (0, 0, 0, 2): smooth L1 = 2 - 0.5 = 1.5
    log_p = lambda row, c: row[c] - np.log(np.exp(row).sum())  # noqa: E731
    conf_loss = -(log_p(conf[0], 1) + log_p(conf[1], 0) + log_p(conf[2], 0))
    assert loss == pytest.approx(1.5 + conf_loss)               # one match: the normalizer is 1
    np.testing.assert_allclose(dloc[0], [0, 0, 0, 1]) and np.testing.assert_allclose(dloc[1:], 0)
    softmax = np.exp(conf) / np.exp(conf).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(dconf, softmax - np.eye(2)[[1, 0, 0]])


def test_multibox_mining_keeps_the_hardest_negatives():
    priors = np.array([[0.0, 0.0, 0.5, 0.5]] + [[0.5 + 0.1 * k, 0.5, 0.6 + 0.1 * k, 0.6] for k in range(4)])
    gt = [[0, 1, 0, 0.0, 0.0, 0.5, 0.5, 0]]
    conf = np.array([[0.0, 0.0], [0.0, 3.0], [0.0, 1.0], [0.0, 2.0], [0.0, -1.0]])  # hardest: priors 1, 3, 2, 4
    _, _, dconf = multibox("num_classes: 2 neg_pos_ratio: 2", np.zeros((5, 4)), conf, priors, np.ones((5, 4)) * 0.1,
                           gt)
    assert np.flatnonzero(np.abs(dconf).sum(axis=1)).tolist() == [0, 1, 3]


def mined_rows(dconf):
    return np.flatnonzero(np.abs(dconf).sum(axis=1)).tolist()


# Five priors: prior 0 is the ground truth's box; the others touch neither it nor each other.
# Confidences [0, s] give an unmatched prior (background) the loss log(1 + e^s).
HARD_PRIORS = np.array([[0.0, 0.0, 0.5, 0.5]] + [[0.5 + 0.1 * k, 0.5, 0.6 + 0.1 * k, 0.6] for k in range(4)])
HARD_CONF = np.array([[0.0, 0.0], [0.0, 3.0], [0.0, 1.0], [0.0, 2.0], [0.0, -1.0]])
HARD_GT = [[0, 1, 0, 0.0, 0.0, 0.5, 0.5, 0]]
softplus = lambda s: np.log1p(np.exp(s))  # noqa: E731


def test_hard_example_mining_ranks_loc_plus_conf_loss_and_may_drop_a_match():
    """Per prior: confidence loss (prior 0: its label 1, log 2) plus, matched, the localization
    loss without loc_weight. CORNER code, variances 1: prior 0's target is 0 and its prediction
    (0, 0, 0, 3) costs smooth L1 2.5, so the table is 3.19, 3.05, 1.31, 2.13, 0.31 (the unmatched
    priors' loc predictions do not count)."""
    loc = np.array([[0, 0, 0, 3.0]] + [[5.0] * 4] * 4)
    params = "num_classes: 2 code_type: CORNER mining_type: HARD_EXAMPLE loc_weight: 0.1 sample_size: 2"
    loss, dloc, dconf = multibox(params, loc, HARD_CONF, HARD_PRIORS, np.ones((5, 4)), HARD_GT)
    assert mined_rows(dconf) == [0, 1]                         # 3.19 and 3.05; loc_weight left out of the ranking
    assert loss == pytest.approx(0.1 * 2.5 + np.log(2) + softplus(3))       # one match
    np.testing.assert_allclose(dloc[0], [0, 0, 0, 0.1]) and np.testing.assert_allclose(dloc[1:], 0)
    # Prior 0 predicting its target costs only log 2 = 0.69: not among the two hardest, it loses its match.
    loss, dloc, dconf = multibox(params, np.zeros((5, 4)), HARD_CONF, HARD_PRIORS, np.ones((5, 4)), HARD_GT)
    assert mined_rows(dconf) == [1, 3]
    assert loss == pytest.approx(softplus(3) + softplus(2))    # no match left: the normalizer is 1
    np.testing.assert_allclose(dloc, 0)
    # sample_size beyond the prior count takes them all
    _, _, dconf = multibox(params.replace("sample_size: 2", "sample_size: 9"), loc, HARD_CONF, HARD_PRIORS,
                           np.ones((5, 4)), HARD_GT)
    assert mined_rows(dconf) == [0, 1, 2, 3, 4]


def test_hard_example_mining_with_nms_can_suppress_a_match():
    """Prior 1 nearly covers prior 0 (IoU 0.9) but bipartite matching gives the box to prior 0 only.
    Prior 1's loss (3.05) beats prior 0's (log 2): NMS over the priors drops prior 0, and the two
    kept are 1 and 3 (prior 2's 1.31 < prior 3's 2.13)."""
    priors = HARD_PRIORS.copy()
    priors[1] = [0.0, 0.0, 0.5, 0.45]
    params = ("num_classes: 2 code_type: CORNER match_type: BIPARTITE mining_type: HARD_EXAMPLE sample_size: 2 "
              "use_prior_for_nms: true nms_param { nms_threshold: 0.5 top_k: 10 }")
    _, dloc, dconf = multibox(params, np.zeros((5, 4)), HARD_CONF, priors, np.ones((5, 4)), HARD_GT)
    assert mined_rows(dconf) == [1, 3] and not dloc.any()
    # Prior 0 predicting (0, 0, 0, 3) is the hardest (3.19): without NMS 0 and 1 are kept, with it
    # prior 1 is suppressed and 3 comes next.
    loc = np.zeros((5, 4))
    loc[0] = [0, 0, 0, 3.0]
    _, _, dconf = multibox(params.split(" use_prior")[0], loc, HARD_CONF, priors, np.ones((5, 4)), HARD_GT)
    assert mined_rows(dconf) == [0, 1]
    _, dloc, dconf = multibox(params, loc, HARD_CONF, priors, np.ones((5, 4)), HARD_GT)
    assert mined_rows(dconf) == [0, 3] and dloc[0].any()


def test_negative_mining_with_nms_over_priors_or_decoded_predictions():
    """Negatives 1 and 2 overlap (IoU 0.82 as priors); losses rank them 1, 2, 3, 4; two negatives
    per match. Without NMS: 1 and 2. NMS over the priors suppresses 2: 1 and 3. Over the decoded
    predictions (the default), prior 2's prediction moves it off prior 1: 1 and 2 again; a
    prediction that shrinks prior 1 to no area drops it (ApplyNMS's small boxes): 2 and 3; top_k 1
    leaves one candidate, so one negative."""
    priors = np.array([[0.0, 0.0, 0.5, 0.5], [0.5, 0.5, 0.7, 0.7], [0.52, 0.5, 0.72, 0.7], [0.8, 0.8, 0.9, 0.9],
                       [0.1, 0.7, 0.2, 0.8]])
    conf = np.array([[0.0, 0.0], [0.0, 3.0], [0.0, 2.0], [0.0, 1.0], [0.0, -1.0]])
    loc = np.zeros((5, 4))
    loc[2] = [0.3, 0, 0.3, 0]
    base = "num_classes: 2 code_type: CORNER neg_pos_ratio: 2"
    nms_param = " nms_param { nms_threshold: 0.5 top_k: 10 }"

    def negatives(params, loc=loc):
        return [k for k in mined_rows(multibox(params, loc, conf, priors, np.ones((5, 4)), HARD_GT)[2]) if k]
    assert negatives(base) == [1, 2]
    assert negatives(base + " use_prior_for_nms: true" + nms_param) == [1, 3]
    assert negatives(base + nms_param) == [1, 2]
    shrunk = loc.copy()
    shrunk[1] = [0, 0, -0.2, 0]
    assert negatives(base + nms_param, shrunk) == [2, 3]
    assert negatives(base + " use_prior_for_nms: true nms_param { nms_threshold: 0.5 top_k: 1 }") == [1]


@pytest.mark.parametrize("params, gt, message", [
    ("", [[0, 1, 0, 0, 0, 0.5, 0.5, 0]], "num_classes must be given"),
    ("num_classes: 2", [[0, 0, 0, 0, 0, 0.5, 0.5, 0]], "has the background label 0"),
    ("num_classes: 2", [[0, 5, 0, 0, 0, 0.5, 0.5, 0]], r"has label 5, outside \[0, 2\)"),
    ("num_classes: 2 mining_type: HARD_EXAMPLE sample_size: 0", [[0, 1, 0, 0, 0, 0.5, 0.5, 0]],
     "HARD_EXAMPLE needs a positive sample_size"),
    ("num_classes: 2 nms_param { nms_threshold: 0.5 }", [[0, 1, 0, 0, 0, 0.5, 0.5, 0]],
     "nms_param in mining needs top_k"),
    ("num_classes: 2 share_location: false", [[0, 1, 0, 0, 0, 0.5, 0.5, 0]], "needs share_location"),
])
def test_multibox_loss_errors(params, gt, message):
    priors = np.array([[0.0, 0.0, 0.5, 0.5]])
    with pytest.raises(CaffeError, match=message) as info:
        multibox(params, np.zeros((1, 4)), np.zeros((1, 2)), priors, np.ones((1, 4)), gt)
    assert "\n" not in str(info.value) and "MultiBoxLoss" in str(info.value)


def test_multibox_loss_without_propagate_down_names_the_fix():
    """As in the fork, the Net decides what needs a gradient from the net's propagate_down; the
    priors come from layers that need backward, so SSD's nets say propagate_down for each bottom."""
    text = ('input: "x" input_shape { dim: 1 dim: 1 dim: 2 dim: 2 } input: "gt" input_shape { dim: 1 dim: 1 dim: 1 '
            'dim: 8 } layer { name: "c" type: "Convolution" bottom: "x" top: "c" convolution_param { num_output: 6 '
            'kernel_size: 1 } } layer { name: "loc" type: "Flatten" bottom: "c" top: "loc" } '
            'layer { name: "p" type: "PriorBox" bottom: "c" bottom: "x" top: "p" prior_box_param { min_size: 1 } } '
            'layer { name: "conf" type: "Slice" bottom: "loc" top: "l" top: "f" slice_param { slice_point: 16 } } '
            'layer { name: "loss" type: "MultiBoxLoss" bottom: "l" bottom: "f" bottom: "p" bottom: "gt" top: "loss" '
            'multibox_loss_param { num_classes: 2 } }')
    net = caffe.Net(formats.net_param_from_text(text), caffe.TRAIN)
    net.blobs["gt"].data[...] = [0, 1, 0, 0.1, 0.1, 0.6, 0.6, 0]
    net.forward()
    with pytest.raises(CaffeError, match="give the layer propagate_down: true true false false"):
        net.backward()


# -- DetectionEvaluate and average precision ------------------------------------------------------
def evaluate(detections, truth, params="num_classes: 3"):
    text = ('input: "det" input_shape { dim: 1 dim: 1 dim: %d dim: 7 } input: "gt" input_shape { dim: 1 dim: 1 '
            'dim: %d dim: 8 } layer { name: "eval" type: "DetectionEvaluate" bottom: "det" bottom: "gt" top: "eval" '
            'detection_evaluate_param { %s } }' % (len(detections), len(truth), params))
    net = caffe.Net(formats.net_param_from_text(text), caffe.TEST)
    net.blobs["det"].data[...] = np.asarray(detections, np.float64)[None, None]
    net.blobs["gt"].data[...] = np.asarray(truth, np.float64)[None, None]
    return net.forward()["eval"][0, 0]


def test_detection_evaluate_rows():
    truth = [[0, 1, 0, 0.1, 0.1, 0.4, 0.4, 0], [0, 1, 1, 0.6, 0.6, 0.9, 0.9, 1], [1, 2, 0, 0.2, 0.2, 0.5, 0.5, 0]]
    detections = [[0, 1, 0.5, 0.6, 0.6, 0.9, 0.9], [0, 1, 0.9, 0.1, 0.1, 0.4, 0.4], [0, 1, 0.8, 0.1, 0.1, 0.4, 0.38],
                  [0, 2, 0.7, 0.1, 0.1, 0.4, 0.4], [1, -1, -1, -1, -1, -1, -1]]
    rows = evaluate(detections, truth)
    np.testing.assert_allclose(rows, [[-1, 1, 2, -1, -1], [-1, 2, 1, -1, -1],
                                      [0, 1, 0.9, 1, 0], [0, 1, 0.8, 0, 1], [0, 1, 0.5, 1, 0],   # by score
                                      [0, 2, 0.7, 0, 1]], rtol=1e-6)                             # no class-2 truth there
    rows = evaluate(detections, truth, "num_classes: 3 evaluate_difficult_gt: false")
    assert rows[0].tolist() == [-1, 1, 1, -1, -1] and rows[4].tolist()[3:] == [0, 0]     # difficult: neither


@pytest.mark.parametrize("difficult, want", [
    ("true", [[-1, 1, 3, -1, -1], [-1, 2, 1, -1, -1], [0, 1, 0.9, 1, 0]]),
    ("false", [[-1, 1, 2, -1, -1], [-1, 2, 1, -1, -1], [0, 1, 0.9, 0, 0]]),
])
def test_detection_evaluate_as_the_forks_test_gives_it(difficult, want):
    """test_detection_evaluate_layer.cpp's scene (3 classes, overlap_threshold 0.3)."""
    truth = [[0, 1, 0, 0.1, 0.1, 0.3, 0.3, 0], [0, 1, 0, 0.6, 0.6, 0.8, 0.8, 1], [1, 2, 0, 0.3, 0.3, 0.6, 0.5, 0],
             [1, 1, 0, 0.7, 0.1, 0.9, 0.3, 0]]
    detections = [[0, 1, 0.3, 0.1, 0.0, 0.4, 0.3], [0, 1, 0.7, 0.0, 0.1, 0.2, 0.3], [0, 1, 0.9, 0.7, 0.6, 0.8, 0.8],
                  [1, 2, 0.8, 0.2, 0.1, 0.4, 0.4], [1, 2, 0.1, 0.4, 0.3, 0.7, 0.5], [1, 1, 0.2, 0.8, 0.1, 1.0, 0.3],
                  [1, 3, 0.2, 0.8, 0.1, 1.0, 0.3], [2, 1, 0.2, 0.8, 0.1, 1.0, 0.3]]
    rows = evaluate(detections, truth, f"num_classes: 3 overlap_threshold: 0.3 evaluate_difficult_gt: {difficult}")
    rest = [[0, 1, 0.7, 1, 0], [0, 1, 0.3, 0, 1], [1, 1, 0.2, 1, 0], [1, 2, 0.8, 0, 1], [1, 2, 0.1, 1, 0],
            [1, 3, 0.2, 0, 1], [2, 1, 0.2, 0, 1]]
    np.testing.assert_allclose(rows, want + rest, atol=1e-6)


def evaluator(params):
    """A DetectionEvaluate net kept across forwards: feed(detections, truth) -> its rows."""
    text = ('input: "det" input_shape { dim: 1 dim: 1 dim: 1 dim: 7 } input: "gt" input_shape { dim: 1 dim: 1 '
            'dim: 1 dim: 8 } layer { name: "eval" type: "DetectionEvaluate" bottom: "det" bottom: "gt" top: "eval" '
            'detection_evaluate_param { %s } }' % params)
    net = caffe.Net(formats.net_param_from_text(text), caffe.TEST)

    def feed(detections, truth):
        for name, rows in (("det", detections), ("gt", truth)):
            net.blobs[name].reshape(1, 1, len(rows), len(rows[0]))
            net.blobs[name].data[...] = np.asarray(rows, np.float64)[None, None]
        net.reshape()
        return net.forward()["eval"][0, 0]
    return feed


# Ground truth (0.1, 0.1, 0.4, 0.4) and a detection (0.1, 0.1, 0.4, 0.5): IoU 0.75 normalized. In a
# 100 x 200 image (height x width) they are (20, 10, 80, 40) and (20, 10, 80, 50), which counting
# end pixels overlap by 61 * 31 / (61 * 41) = 0.756; in a 10 x 10 image (1, 1, 4, 4) and (1, 1, 4, 5):
# 16 / 20 = 0.8. With overlap_threshold 0.79 only the 10 x 10 image makes the detection a true positive.
PIXEL_GT = [0, 1, 0, 0.1, 0.1, 0.4, 0.4, 0]
PIXEL_DET = [0, 1, 0.9, 0.1, 0.1, 0.4, 0.5]


def on_item(row, item):
    return [item] + row[1:]


def test_detection_evaluate_in_the_original_images_pixels(tmp_path):
    sizes = tmp_path / "test_name_size.txt"
    sizes.write_text("a 100 200\nb 10 10\n\nc 10 10\n")
    feed = evaluator(f'num_classes: 2 overlap_threshold: 0.79 name_size_file: "{sizes}"')
    detections = [PIXEL_DET, on_item(PIXEL_DET, 1)]
    truth = [PIXEL_GT, on_item(PIXEL_GT, 1)]
    tp = lambda rows: rows[1:, 3].tolist()  # noqa: E731
    assert tp(feed(detections, truth)) == [0, 1]          # sizes a, b
    assert tp(feed(detections, truth)) == [1, 0]          # c, then a again: the count goes round
    # An image with only a placeholder row takes a size too (b), so item 1 gets c.
    assert tp(feed([[0, -1, -1, -1, -1, -1, -1], on_item(PIXEL_DET, 1)], truth)) == [1]
    assert tp(evaluator("num_classes: 2 overlap_threshold: 0.79")(detections, truth)) == [0, 0]  # normalized


def test_output_boxes_by_resize_mode():
    P = caffe_pb2.ResizeParameter
    boxes = np.array([[0.1, 0.25, 0.5, 0.5], [-0.1, 0.8, 1.0, 0.9]])
    pixels, plus_one = output_boxes(boxes, 100, 200)       # WARP: clipped, scaled
    np.testing.assert_allclose(pixels, [[20, 25, 100, 50], [0, 80, 200, 90]])
    assert plus_one
    # A 100 x 200 image fit into 300 x 300: 300 x 150 with 75 rows of padding above and below, so
    # the image is y in [0.25, 0.75]; a box outside it is left as it is (the fork's ProjectBBox).
    pad = P(resize_mode=P.FIT_LARGE_SIZE_AND_PAD, height=300, width=300)
    np.testing.assert_allclose(output_boxes(boxes, 100, 200, pad)[0], [[20, 0, 100, 50], [0, 80, 200, 90]])
    np.testing.assert_allclose(output_boxes(np.array([[0.25, 0.0, 0.5, 1.0]]), 200, 100, pad)[0], [[0, 0, 50, 200]])
    small = P(resize_mode=P.FIT_SMALL_SIZE, height=300, width=300, height_scale=150, width_scale=300)
    pixels, plus_one = output_boxes(np.array([[0.1, 0.2, 0.5, 1.0]]), 100, 200, small)
    np.testing.assert_allclose(pixels, [[30, 30, 150, 100]])  # scaled to 150 x 300, then clipped to the image
    assert not plus_one
    a, b = np.array([[0.0, 0, 1, 1], [0, 0, 3, 1]]), np.array([[5.0, 5, 6, 6], [0, 0, 1, 1]])
    np.testing.assert_allclose(pixel_overlaps(a, b), [[1 / 7, 1], [1 / 11, 4 / 8]])
    a, b = np.array([[0.0, 0, 10, 10]]), np.array([[0.0, 0, 10, 5]])   # intersection 11 x 6 = 66
    assert pixel_overlaps(a, b)[0, 0] == pytest.approx(66 / 121)
    assert pixel_overlaps(a, b, area_plus_one=False)[0, 0] == pytest.approx(66 / (100 + 50 - 66))


def test_detection_evaluate_name_size_file_errors(tmp_path):
    bad = tmp_path / "sizes.txt"
    bad.write_text("a 100 200\nb 100\n")
    for path, message in ((tmp_path / "none.txt", "no such file"), (bad, r"sizes.txt:2: expected 'name height width'")):
        with pytest.raises(CaffeError, match=message) as info:
            evaluator(f'num_classes: 2 name_size_file: "{path}"')
        assert "\n" not in str(info.value) and "DetectionEvaluate" in str(info.value)


def test_average_precision_by_hand():
    # ranked: tp, fp, tp, fp, tp with 4 positives -> precision 1, .5, .667, .5, .6 at recall .25, .25, .5, .5, .75
    scores, tp = [0.9, 0.8, 0.7, 0.6, 0.5], [1, 0, 1, 0, 1]
    assert average_precision(scores, tp, 4, "Integral") == pytest.approx(0.25 * 1 + 0.25 * 2 / 3 + 0.25 * 0.6)
    assert average_precision(scores, tp, 4, "MaxIntegral") == pytest.approx(0.25 * 1 + 0.25 * 2 / 3 + 0.25 * 0.6)
    # 11 points: recall >= 0, .1, .2 -> 1; .3, .4, .5 -> 2/3; .6, .7 -> .6; .8, .9, 1 -> 0
    assert average_precision(scores, tp, 4, "11point") == pytest.approx((3 * 1 + 3 * 2 / 3 + 2 * 0.6) / 11, rel=1e-6)
    # MaxIntegral takes the best precision at any higher recall
    assert average_precision([0.9, 0.8, 0.7], [0, 1, 1], 2, "MaxIntegral") == pytest.approx(2 / 3)
    assert average_precision([0.9, 0.8, 0.7], [0, 1, 1], 2, "Integral") == pytest.approx(0.5 * 0.5 + 0.5 * 2 / 3)
    assert average_precision([], [], 3, "Integral") == 0.0
    with pytest.raises(CaffeError, match="unknown ap_version 'VOC'"):
        average_precision(scores, tp, 4, "VOC")


def test_tally_over_batches_gives_the_mean_over_classes():
    tally = DetectionTally()
    tally.add([[-1, 1, 1, -1, -1], [-1, 2, 1, -1, -1], [0, 1, 0.9, 1, 0]], "out")
    tally.add([[-1, 1, 1, -1, -1], [-1, 2, 0, -1, -1], [0, 1, 0.4, 1, 0], [0, 1, 0.8, 0, 1], [0, 2, 0.3, 0, 0]], "out")
    seen = {}
    # class 1: tp, fp, tp of 2 -> Integral .5 * 1 + .5 * 2/3; class 2: no detection counted -> 0
    assert tally.mean_average_precision("Integral", seen.__setitem__) == pytest.approx((0.5 + 1 / 3) / 2)
    assert seen == {1: pytest.approx(0.5 + 1 / 3), 2: 0.0}
    with pytest.raises(CaffeError, match="width 5"):
        tally.add(np.zeros((1, 1, 2, 7)), "test net #0 output 'x'")


# -- batch_sampler --------------------------------------------------------------------------------
def constraint(**bounds):
    return caffe_pb2.SampleConstraint(**bounds)


def test_sample_constraints_against_objects():
    windows = np.array([[0.0, 0.0, 0.5, 0.5], [0.5, 0.5, 1.0, 1.0]])
    objects = np.array([[0.0, 0.0, 0.25, 0.5], [0.4, 0.4, 0.9, 0.9]])   # first window: IoU .5 and 0.01/0.49

    def check(bounds, want, chosen=objects):
        assert batch_sampler.satisfies(windows, chosen, constraint(**bounds)).tolist() == want

    check({}, [True, True])
    check({"min_jaccard_overlap": 0.5}, [True, False])         # second window: IoU 0.16/0.34 with object 2
    check({"min_jaccard_overlap": 0.45}, [True, True])
    check({"min_jaccard_overlap": 0.51}, [False, False])
    check({"max_jaccard_overlap": 0.1}, [True, True])          # each has an object it hardly overlaps
    check({"min_object_coverage": 1.0}, [True, False])         # object 1 lies inside the first window
    check({"min_object_coverage": 0.1}, [False, True], objects[1:])
    check({"min_sample_coverage": 0.5, "max_sample_coverage": 0.5}, [True, False])
    # one object must meet every bound: in the first window object 1 meets the IoU, only object 2 the low coverage
    check({"min_jaccard_overlap": 0.5, "max_sample_coverage": 0.1}, [False, False])
    check({"min_jaccard_overlap": 0.1}, [False, False], np.zeros((0, 4)))


def test_generated_samples_meet_their_constraints_and_max_sample():
    text = ("sampler { min_scale: 0.3 max_scale: 1 min_aspect_ratio: 0.5 max_aspect_ratio: 2 } "
            "sample_constraint { min_jaccard_overlap: 0.5 } max_sample: 3 max_trials: 200")
    sampler = formats.parse_text(text, caffe_pb2.BatchSampler())
    objects = np.array([[0.2, 0.2, 0.6, 0.7]])
    windows = batch_sampler.generate_samples([sampler], objects, np.random.default_rng(3))
    assert len(windows) == 3
    for window in windows:
        assert pairwise_overlaps(window[None], objects)[0, 0] >= 0.5
        assert window.min() >= 0 and window.max() <= 1 + 1e-12
        width, height = window[2] - window[0], window[3] - window[1]
        assert 0.3 - 1e-9 <= np.sqrt(width * height) <= 1 + 1e-9 and 0.5 - 1e-9 <= width / height <= 2 + 1e-9
    free = formats.parse_text("sampler { min_scale: 0.3 } max_trials: 5", caffe_pb2.BatchSampler())
    unused = formats.parse_text("use_original_image: false max_trials: 5", caffe_pb2.BatchSampler())
    assert len(batch_sampler.generate_samples([free, unused], objects, np.random.default_rng(0))) == 5
    with pytest.raises(CaffeError, match="min_scale <= max_scale"):
        batch_sampler.check(formats.parse_text("sampler { min_scale: 0.6 max_scale: 0.5 }", caffe_pb2.BatchSampler()),
                            "batch_sampler #1")


# -- the solver's detection test --------------------------------------------------------------------
def test_unknown_eval_type_and_ap_version_are_errors(tmp_path):
    net = tmp_path / "net.prototxt"
    net.write_text('input: "x" input_shape { dim: 1 dim: 1 } layer { name: "s" type: "Silence" bottom: "x" }')
    for extra, message in (('eval_type: "segmentation"', "unknown eval_type 'segmentation'"),
                           ('eval_type: "detection" ap_version: "VOC"', "unknown ap_version 'VOC'")):
        solver = tmp_path / "solver.prototxt"
        solver.write_text(f'net: "{net}" base_lr: 0.1 lr_policy: "fixed" max_iter: 1 snapshot_after_train: false {extra}')
        with pytest.raises(CaffeError, match=message):
            caffe.SGDSolver(str(solver))


def test_detection_eval_is_logged_as_the_fork_logs_it(tmp_path, caplog):
    """A test net whose output is fixed DetectionEvaluate rows: the log shows the mAP."""
    rows = [[-1, 1, 2, -1, -1], [0, 1, 0.9, 1, 0], [0, 1, 0.5, 0, 1]]
    test_net = tmp_path / "test.prototxt"
    test_net.write_text('layer { name: "rows" type: "Parameter" top: "rows" parameter_param { shape { dim: 1 dim: 1 '
                        'dim: 3 dim: 5 } } } layer { name: "eval" type: "Split" bottom: "rows" top: "detection_eval" }')
    train_net = tmp_path / "train.prototxt"
    train_net.write_text('input: "x" input_shape { dim: 1 dim: 1 } layer { name: "s" type: "Silence" bottom: "x" }')
    solver = tmp_path / "solver.prototxt"
    solver.write_text(f'train_net: "{train_net}" test_net: "{test_net}" test_iter: 1 test_interval: 1 base_lr: 0.1 lr_policy: "fixed" '
                      f'max_iter: 0 snapshot_after_train: false eval_type: "detection" ap_version: "Integral" '
                      f'show_per_class_result: true')
    s = caffe.SGDSolver(str(solver))
    s.test_nets[0].params["rows"][0].data[...] = np.asarray(rows).reshape(1, 1, 3, 5)
    with caplog.at_level(logging.INFO):
        s.test(0)
    assert s.test_scores[0] == [pytest.approx(0.5)]
    assert "Test net output #0: detection_eval = 0.5" in caplog.text and "class1: 0.5" in caplog.text
