"""oneDNN's primitives (nvcaffe_py/backends/cpu/onednn.py, the `[onednn]` extra) against the NumPy
engine on every conformance case of the convolution types, Pooling and InnerProduct they take
(2-D, channels on axis 1, forward only) and in whole deploy-time nets (run as segments in
oneDNN's layouts, nvcaffe_py/onednn_segment.py), and
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
        assert [type(step).__name__ for _, step, _, _ in steps] == ["PlanStep", "SegmentStep", "PlanStep"]
    assert_same_forward(reference, optimised, model or "corners")


# -- the other primitives a segment runs, alone -------------------------------------------------
OTHERS = [(t, c) for t in ("Pooling", "InnerProduct") for c in declared_cases(layer_class(t))
          if c.tops == 1 and not c.in_place]


def _run_alone(layer, bottoms, tops):
    """The layer's oneDNN primitive on its NCHW bottom, its output reordered to NCHW; None where
    the layer does not take oneDNN for this case."""
    library = onednn.library()
    x = bottoms[0].data_readonly()
    operation = layer.onednn_operation(library.desc(x.shape), x.shape, None)
    if operation is None:
        return None
    output = np.empty(operation.dst_size, np.float32)
    arguments = [onednn.address(x)]
    if operation.parameters:
        arguments += operation.set_parameters(*layer.onednn_parameters())
    operation.step.run(*arguments, onednn.address(output))
    result = np.empty(tops[0].shape, np.float32)
    library.reorder(operation.dst, library.desc(result.shape)).run(onednn.address(output), onednn.address(result))
    operation.step.wait()
    return result


def _refused_by_design(layer, shape):
    """What the layers' onednn_operation documents it leaves to NumPy: an InnerProduct on another
    axis than 1, STOCHASTIC pooling, AVE pooling whose last window passes the padded image (oneDNN
    divides by the whole window, Caffe by the part inside it)."""
    if layer.type == "InnerProduct":
        return layer.axis != 1
    if layer.method == caffe.params.Pooling.STOCHASTIC:
        return True
    kernel = shape[2:] if layer.global_pooling else layer.kernel
    return layer.method == caffe.params.Pooling.AVE and any(
        (out - 1) * stride - pad + size > length + pad
        for out, stride, size, length, pad in zip(layer.pool.pooled, layer.stride, kernel, shape[2:], layer.pad))


@pytest.mark.parametrize("type_name,case", OTHERS, ids=[f"{t}-{i}" for i, (t, _) in enumerate(OTHERS)])
def test_other_primitives_match_the_numpy_engine(type_name, case):
    arrays = case.arrays()
    layer, bottoms, tops = _forward(create_layer(case.layer_param(type_name), caffe.TEST), arrays, 1)
    layer.forward(bottoms, tops)
    want = tops[0].data.copy()
    layer.forward_only()
    got = _run_alone(layer, bottoms, tops)
    params = case.params
    if got is None:
        assert _refused_by_design(layer, bottoms[0].shape), f"{type_name} {params} refused"
        return
    assert_close(got, want, f"{type_name} {params}", rtol=1e-5)


# A net of what segments take and where they end: a padded MAX pooling with a leaky ReLU after it,
# residual adds with a projection (both inputs from held convolutions) and with a residual
# coefficient, a global AVE pooling, inner products (one transposed); a softmax (NumPy) after
# them, and a Power layer (NumPy) reading a value from the middle, so that it leaves the segment.
SEGMENTS = """
name: "segments"
input: "data" input_shape { dim: 2 dim: 3 dim: 12 dim: 12 }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 8 kernel_size: 3 pad: 1 weight_filler { type: "msra" } } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1"
        pooling_param { pool: MAX kernel_size: 3 stride: 2 pad: 1 } }
layer { name: "pool1_relu" type: "ReLU" bottom: "pool1" top: "pool1" relu_param { negative_slope: 0.1 } }
layer { name: "b_conv1" type: "Convolution" bottom: "pool1" top: "b_conv1"
        convolution_param { num_output: 16 kernel_size: 3 pad: 1 weight_filler { type: "msra" } } }
layer { name: "b_relu1" type: "ReLU" bottom: "b_conv1" top: "b_conv1" }
layer { name: "b_conv2" type: "Convolution" bottom: "b_conv1" top: "b_conv2"
        convolution_param { num_output: 16 kernel_size: 3 pad: 1 weight_filler { type: "msra" } } }
layer { name: "proj" type: "Convolution" bottom: "pool1" top: "proj"
        convolution_param { num_output: 16 kernel_size: 1 weight_filler { type: "msra" } } }
layer { name: "sum1" type: "Eltwise" bottom: "b_conv2" bottom: "proj" top: "sum1" }
layer { name: "sum1_relu" type: "ReLU" bottom: "sum1" top: "sum1" }
layer { name: "c_conv" type: "Convolution" bottom: "sum1" top: "c_conv"
        convolution_param { num_output: 16 kernel_size: 3 pad: 1 weight_filler { type: "msra" } } }
layer { name: "sum2" type: "Eltwise" bottom: "sum1" bottom: "c_conv" top: "sum2"
        eltwise_param { operation: SUM coeff: 0.5 coeff: 1 } }
layer { name: "drop" type: "Dropout" bottom: "sum2" top: "sum2" }
layer { name: "pool2" type: "Pooling" bottom: "sum2" top: "pool2" pooling_param { pool: AVE global_pooling: true } }
layer { name: "ip1" type: "InnerProduct" bottom: "pool2" top: "ip1"
        inner_product_param { num_output: 10 weight_filler { type: "msra" } } }
layer { name: "ip1_relu" type: "ReLU" bottom: "ip1" top: "ip1" }
layer { name: "ip2" type: "InnerProduct" bottom: "ip1" top: "ip2"
        inner_product_param { num_output: 5 transpose: true weight_filler { type: "msra" } } }
layer { name: "prob" type: "Softmax" bottom: "ip2" top: "prob" }
layer { name: "side" type: "Power" bottom: "pool1" top: "side" power_param { scale: 2 } }
"""


def test_a_segment_runs_the_net_and_what_leaves_it():
    reference, optimised = build_pair(net_param_from_text(SEGMENTS))
    want = {name: array.copy() for name, array in reference.forward().items()}
    got = optimised.forward()
    steps = optimised._plan._current_steps()
    kinds = [type(step).__name__ for _, step, _, _ in steps]
    assert kinds == ["PlanStep", "SegmentStep", "PlanStep", "PlanStep"], kinds
    segment = steps[1][1]
    names = {optimised._plan.name_of(blob) for blob in segment.outputs}
    assert names == {"pool1", "ip2"}  # read by the Power and Softmax layers after it
    # Two residual adds fused: 5 convolutions, 2 poolings, 2 products.
    assert sum(operation is not None for operation, *_ in segment._program) == 9
    for name in want:
        assert_close(got[name], want[name], f"output {name}")
    optimised.blobs["ip2"].data  # noqa: B018 -- read after the forward: recomputed, then kept
    assert_close(optimised.blobs["ip2"].data, reference.blobs["ip2"].data, "ip2 read afterwards")
    for layer in ("ip1", "b_conv2"):  # new weights are reordered again
        optimised.layer_dict[layer].blobs[0].data[...] *= -1
    want = reference.forward()["prob"].copy()
    assert_close(optimised.forward()["prob"], want, "prob after new weights")
    data = np.random.default_rng(3).uniform(-1, 1, (3, 3, 12, 12))  # a new batch size: the segment anew
    for net in (reference, optimised):
        net.blobs["data"].reshape(*data.shape)
    want = reference.forward(data=data)["prob"].copy()
    assert_close(optimised.forward(data=data)["prob"], want, "prob at batch 3")
    assert_same_forward(reference, optimised, "segments")


def test_a_segment_ends_where_onednn_would_not_run_a_step():
    """An AVE pooling whose last window passes the (padded) image (Caffe divides by less there)
    stays on NumPy: the segment ends before it and a new one starts after it."""
    text = SEGMENTS.replace("pool: AVE global_pooling: true", "pool: AVE kernel_size: 2 stride: 3")
    reference, optimised = build_pair(net_param_from_text(text))
    want = reference.forward()["prob"].copy()
    got = optimised.forward()["prob"]
    kinds = [type(step).__name__ for _, step, _, _ in optimised._plan._current_steps()]
    assert kinds == ["PlanStep", "SegmentStep", "PlanStep", "SegmentStep", "PlanStep", "PlanStep"], kinds
    assert_close(got, want, "prob")


def test_a_segment_built_on_the_cpu_runs_its_steps_in_gpu_mode(device):
    """A segment is the CPU's: in GPU mode its steps run one by one, their GPU halves."""
    reference, optimised = build_pair(net_param_from_text(SEGMENTS))
    want = reference.forward()["prob"].copy()
    optimised.forward()
    assert "SegmentStep" in [type(step).__name__ for _, step, _, _ in optimised._plan._current_steps()]
    caffe.set_mode_gpu()
    try:
        assert_close(optimised.forward()["prob"], want, "prob in GPU mode", rtol=1e-4)
    finally:
        caffe.set_mode_cpu()


def test_an_eltwise_of_one_convolution_with_itself():
    """x + x, x a convolution's output: the Net's Split gives the Eltwise one value twice, which no
    residual add takes (the segment ends there, and goes on after it)."""
    text = SEGMENTS.replace('bottom: "sum1" bottom: "c_conv" top: "sum2"', 'bottom: "c_conv" bottom: "c_conv" top: "sum2"')
    reference, optimised = build_pair(net_param_from_text(text))
    want = reference.forward()["prob"].copy()
    assert_close(optimised.forward()["prob"], want, "prob")


# SqueezeNet's fire module (a Concat of two convolutions' outputs, 16-channel blocks) after an LRN
# across channels, and a Concat of channel counts that fill no block (5 + 3), with the net's input
# among its inputs. (oneDNN's LRN has only its reference kernel on NCHW: it is checked here, in
# a blocked layout, not alone.)
FIRE = """
name: "fire"
input: "data" input_shape { dim: 2 dim: 3 dim: 10 dim: 10 }
layer { name: "squeeze" type: "Convolution" bottom: "data" top: "squeeze"
        convolution_param { num_output: 8 kernel_size: 1 weight_filler { type: "msra" } } }
layer { name: "squeeze_relu" type: "ReLU" bottom: "squeeze" top: "squeeze" }
layer { name: "norm" type: "LRN" bottom: "squeeze" top: "norm" lrn_param { local_size: 5 alpha: 0.5 beta: 0.75 k: 2 } }
layer { name: "e1" type: "Convolution" bottom: "norm" top: "e1"
        convolution_param { num_output: 16 kernel_size: 1 weight_filler { type: "msra" } } }
layer { name: "e3" type: "Convolution" bottom: "norm" top: "e3"
        convolution_param { num_output: 16 kernel_size: 3 pad: 1 weight_filler { type: "msra" } } }
layer { name: "fire" type: "Concat" bottom: "e1" bottom: "e3" top: "fire" }
layer { name: "odd" type: "Convolution" bottom: "fire" top: "odd"
        convolution_param { num_output: 5 kernel_size: 1 weight_filler { type: "msra" } } }
layer { name: "mixed" type: "Concat" bottom: "odd" bottom: "data" top: "mixed" }
layer { name: "pool" type: "Pooling" bottom: "mixed" top: "pool" pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "ip" type: "InnerProduct" bottom: "pool" top: "ip" inner_product_param { num_output: 4 weight_filler { type: "msra" } } }
"""


def test_a_segment_normalizes_and_joins_values_in_oneDNN_layouts():
    reference, optimised = build_pair(net_param_from_text(FIRE))
    want = reference.forward()["ip"].copy()
    got = optimised.forward()["ip"]
    steps = optimised._plan._current_steps()
    assert [type(step).__name__ for _, step, _, _ in steps] == ["PlanStep", "SegmentStep"]
    operations = [type(operation).__name__ for operation, *_ in steps[1][1]._program]
    assert operations.count("Concat") == 2 and operations.count("LRN") == 1, operations
    assert_close(got, want, "ip")
    assert_same_forward(reference, optimised, "fire")
