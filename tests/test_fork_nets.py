"""Whole fork nets of models/ (tests/fork_nets.py: random weights) run end to end and agree with
OpenCV dnn 4.14 on the same weights and input: every output and the heads' predictions and priors
to 1e-4 relative; the detections as sets (sorted), of which there must be some."""
import numpy as np
import pytest

import fork_nets
from onnx_helpers import RELATIVE_TOLERANCE, relative_difference
from opencv_dnn import opencv_forward, require_caffe_importer, sorted_detections

# At the published input size: these nets are small enough (ShuffleNet v2 at 224 x 224 is 146 MFLOPs).
SIZES = {"mobilenet_ssd": None, "res10_ssd_face": None, "rfb320_face": None, "shufflenet_v2": None}


def assert_same_detections(mine, theirs):
    mine, theirs = sorted_detections(mine), sorted_detections(theirs)
    assert (mine[:, 1] >= 0).sum() >= 3, f"only {len(mine)} detections: too few to compare"
    assert mine.shape == theirs.shape, f"{len(mine)} detections here, {len(theirs)} in OpenCV"
    np.testing.assert_array_equal(mine[:, :2], theirs[:, :2])  # image, label
    assert relative_difference(mine[:, 2:], theirs[:, 2:]) <= RELATIVE_TOLERANCE  # score, box


@pytest.mark.parametrize("model", sorted(SIZES))
def test_fork_net_agrees_with_opencv(tmp_path, model):
    require_caffe_importer()
    net, text = fork_nets.load(model, SIZES[model])
    data = fork_nets.image(net)
    net.forward(data=data)
    names = fork_nets.OUTPUTS[model]
    theirs = opencv_forward(tmp_path, text, net, {"data": data}, names)
    for name in names:
        ours = net.blobs[name].data_readonly()
        if name == "detection_out":
            assert_same_detections(ours, theirs[name])
        else:
            difference = relative_difference(ours.reshape(theirs[name].shape), theirs[name])
            assert difference <= RELATIVE_TOLERANCE, f"{name} differs by {difference:.3g} (relative)"
