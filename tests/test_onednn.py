"""oneDNN's convolution (nvcaffe_py/backends/cpu/onednn.py, the `[onednn]` extra) against the NumPy
engine on every conformance case of the convolution types it takes (2-D, channels on axis 1,
forward only) and in whole deploy-time nets (run as segments in oneDNN's layouts), and
how the deploy-time forward chooses it: Caffe's `engine` field (DEFAULT on oneDNN, CAFFE on
NumPy) or Intel Caffe's layer `engine` string. Skipped, with the reason, where oneDNN is not installed."""
import os

import numpy as np
import pytest

import nvcaffe_py as caffe
from nvcaffe_py import formats
from nvcaffe_py.backends.cpu import onednn
from nvcaffe_py.blob import Blob
from nvcaffe_py.conformance import assert_close, declared_cases
from nvcaffe_py.formats import net_param_from_text
from nvcaffe_py.registry import create_layer, layer_class

from deploy_helpers import CORNERS, assert_same_forward, build_pair

TYPES = ("Convolution", "ConvolutionDepthwise", "DepthwiseConvolution")
CASES = [(t, c) for t in TYPES for c in declared_cases(layer_class(t)) if len(c.specs()[0].shape) == 4]


@pytest.fixture(autouse=True)
def _needs_onednn():
    reason = onednn.unavailable_reason()
    if reason is not None:
        pytest.skip(reason)


def _forward(layer, arrays, tops):
    bottoms = [Blob(a.shape) for a in arrays]
    for blob, array in zip(bottoms, arrays):
        blob.data[...] = array
    outputs = [Blob() for _ in range(tops)]
    layer.set_up(bottoms, outputs)
    return layer, bottoms, outputs


@pytest.mark.parametrize("type_name,case", CASES, ids=[f"{t}-{i}" for i, (t, _) in enumerate(CASES)])
def test_matches_the_numpy_engine(type_name, case):
    arrays = case.arrays()
    reference, bottoms, tops = _forward(create_layer(case.layer_param(type_name), caffe.TEST), arrays, case.tops)
    reference.forward(bottoms, tops)
    want = [t.data.copy() for t in tops]
    fast, bottoms, tops = _forward(create_layer(case.layer_param(type_name), caffe.TEST), arrays, case.tops)
    for blob, source in zip(fast.blobs, reference.blobs):
        blob.data[...] = source.data
    fast.forward_only()
    fast.reshape(bottoms, tops)
    assert fast.onednn_convolution() is not None
    for _ in range(2):  # the second run reuses the reordered weights
        fast.forward(bottoms, tops)
        for k, (top, values) in enumerate(zip(tops, want)):
            assert_close(top.data, values, f"{type_name} {case.params} top {k}", rtol=1e-5)
    fast.blobs[0].data[...] *= 2  # a new version of the weights is reordered again
    fast.forward(bottoms, tops)
    reference.forward(bottoms, [Blob(t.shape) for t in tops])
    assert not np.allclose(tops[0].data, want[0])


@pytest.mark.parametrize("threaded_from", [0, 1 << 62], ids=["openmp-threads", "one-thread"])
def test_small_convolutions_run_on_the_calling_thread(threaded_from, monkeypatch):
    """Below ONEDNN_THREADED_WORK a primitive is created and run on one thread: the same
    results, and OpenMP's thread count as it was after each run."""
    monkeypatch.setattr(onednn, "ONEDNN_THREADED_WORK", threaded_from)
    case = CASES[0][1]
    arrays = case.arrays()
    reference, bottoms, tops = _forward(create_layer(case.layer_param("Convolution"), caffe.TEST), arrays, case.tops)
    reference.forward(bottoms, tops)
    want = tops[0].data.copy()
    fast, bottoms, tops = _forward(create_layer(case.layer_param("Convolution"), caffe.TEST), arrays, case.tops)
    for blob, source in zip(fast.blobs, reference.blobs):
        blob.data[...] = source.data
    fast.forward_only()
    fast.reshape(bottoms, tops)
    openmp = onednn._library.openmp
    before = openmp.omp_get_max_threads() if openmp else None
    assert fast.onednn_convolution().threads == (None if threaded_from == 0 else 1)
    fast.forward(bottoms, tops)
    assert_close(tops[0].data, want, f"{case.params} top 0", rtol=1e-5)
    if openmp:
        assert openmp.omp_get_max_threads() == before


ENGINES = """
input: "data" input_shape { dim: 2 dim: 3 dim: 8 dim: 8 }
layer { name: "default" type: "Convolution" bottom: "data" top: "a"
        convolution_param { num_output: 4 kernel_size: 3 weight_filler { type: "msra" } } }
layer { name: "caffe" type: "Convolution" bottom: "a" top: "b"
        convolution_param { num_output: 4 kernel_size: 3 engine: CAFFE weight_filler { type: "msra" } } }
layer { name: "intel_caffe" type: "Convolution" bottom: "b" top: "c" engine: "CAFFE"
        convolution_param { num_output: 4 kernel_size: 1 weight_filler { type: "msra" } } }
layer { name: "intel_mkldnn" type: "Convolution" bottom: "c" top: "d" engine: "MKLDNN:DLA"
        convolution_param { num_output: 4 kernel_size: 1 engine: CAFFE weight_filler { type: "msra" } } }
"""


def test_the_engine_field_chooses():
    optimised = caffe.Net(net_param_from_text(ENGINES), caffe.TEST)
    reference = caffe.Net(net_param_from_text(ENGINES), caffe.TEST, optimize=False)
    reference.share_with(optimised)
    data = np.random.default_rng(0).standard_normal((2, 3, 8, 8))
    got = optimised.forward(data=data)["d"]
    assert_close(got, reference.forward(data=data)["d"], "d", rtol=1e-5)
    layers = optimised.layer_dict
    assert layers["default"].onednn_convolution() is not None and layers["intel_mkldnn"].onednn_convolution()
    assert layers["caffe"].onednn_convolution() is None and layers["intel_caffe"].onednn_convolution() is None
    assert all(layer.onednn_convolution() is None for layer in reference.layers if layer.type == "Convolution")


@pytest.mark.parametrize("model,batch", [("resnet56_cifar", 2), ("mobilenet_v2", 1), (None, None)])
def test_deploy_nets(model, batch):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    param = (formats.read_net_param(os.path.join(root, "models", model, "deploy.prototxt")) if model
             else net_param_from_text(CORNERS))
    reference, optimised = build_pair(param, batch)
    if model:  # whole nets on oneDNN, in its layouts, in one step (while the user reads the output alone)
        optimised.forward()
        steps = optimised._plan._current_steps()
        assert [type(step).__name__ for _, step, _, _ in steps] == ["PlanStep", "SegmentStep"]
    assert_same_forward(reference, optimised, model or "corners")
