"""Whole SSD detectors (tests/ssd_nets.py, random weights) run end to end and agree with OpenCV
dnn 4.14: every head's predictions and priors, and the detections."""
import numpy as np
import pytest

import nvcaffe_py as caffe
from nvcaffe_py.formats import net_param_from_text

import ssd_nets
from opencv_dnn import opencv_forward, require_caffe_importer, sorted_detections


@pytest.mark.parametrize("build", [ssd_nets.mobilenet_ssd, ssd_nets.res10_face])
def test_detector_agrees_with_opencv(tmp_path, build):
    require_caffe_importer()
    text = build()
    net = caffe.Net(net_param_from_text(text), caffe.TEST)
    ssd_nets.prepare(net)
    image = np.random.default_rng(3).uniform(-1, 1, net.blobs["data"].shape)
    ours = net.forward(data=image)["detection_out"].copy()
    names = ["mbox_loc", "mbox_conf_flatten", "mbox_prior", "detection_out"]
    theirs = opencv_forward(tmp_path, text, net, {"data": image}, names)
    for name in names[:3]:
        got, want = net.blobs[name].data.reshape(theirs[name].shape), theirs[name]
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4 * np.abs(want).max(), err_msg=name)
    mine, cv = sorted_detections(ours), sorted_detections(theirs["detection_out"])
    assert len(mine) >= 3, "too few detections to compare"
    assert mine.shape == cv.shape
    np.testing.assert_allclose(mine, cv, rtol=1e-3, atol=1e-4)
