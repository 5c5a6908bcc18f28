"""The deploy-time forward of TEST nets (nvcaffe_py/inference_plan.py) against the layer-by-layer
forward (`optimize=False`) on the same weights: every output and, read afterwards, every blob
within 1e-5 relative, on every zoo deploy net, the fork nets of tests/ssd_nets.py, the models/
deploy nets and a net of every fold's corner cases; blobs the user reads hold their values;
training nets run every layer as declared."""
import glob
import os

import numpy as np
import pytest

import nvcaffe_py as caffe
from nvcaffe_py import cli, folding, formats
from nvcaffe_py.formats import net_param_from_text
from nvcaffe_py.net_surgery import data_layers_to_inputs

import ssd_nets
from conftest import SHARED

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ZOO = os.path.join(SHARED, "caffe-zoo")
TOLERANCE = 1e-5

# Every fold: BatchNorm out of place (its input is computed no more) then Scale in place; a
# depthwise convolution without bias and NVCaffe's scale_bias BatchNorm, then Bias and a scalar
# Scale; a convolution read twice (no fold); BatchNorm + Scale after an Eltwise (one Scale);
# InnerProduct, plain and transposed, with BatchNorm, Scale and Bias; a ReLU and a Dropout out of
# place (run in place).
CORNERS = """
name: "corners"
input: "data" input_shape { dim: 2 dim: 3 dim: 9 dim: 8 }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 4 kernel_size: 3 pad: 1 weight_filler { type: "msra" }
                            bias_filler { type: "gaussian" std: 0.5 } } }
layer { name: "bn1" type: "BatchNorm" bottom: "conv1" top: "bn1" }
layer { name: "scale1" type: "Scale" bottom: "bn1" top: "bn1" scale_param { bias_term: true } }
layer { name: "relu1" type: "ReLU" bottom: "bn1" top: "relu1" }
layer { name: "dw" type: "ConvolutionDepthwise" bottom: "relu1" top: "dw"
        convolution_param { num_output: 4 group: 4 kernel_size: 3 pad: 1 bias_term: false
                            weight_filler { type: "msra" } } }
layer { name: "dw_bn" type: "BatchNorm" bottom: "dw" top: "dw"
        batch_norm_param { scale_filler { type: "uniform" min: 0.5 max: 2 } bias_filler { type: "gaussian" } } }
layer { name: "dw_bias" type: "Bias" bottom: "dw" top: "dw" bias_param { filler { type: "gaussian" } } }
layer { name: "dw_gain" type: "Scale" bottom: "dw" top: "dw"
        scale_param { num_axes: 0 filler { type: "constant" value: 1.7 } } }
layer { name: "side" type: "Convolution" bottom: "relu1" top: "side"
        convolution_param { num_output: 4 kernel_size: 1 weight_filler { type: "msra" } } }
layer { name: "side_bn" type: "BatchNorm" bottom: "side" top: "side_bn" }
layer { name: "side_pool" type: "Pooling" bottom: "side" top: "side_pool" pooling_param { pool: MAX kernel_size: 2 } }
layer { name: "sum" type: "Eltwise" bottom: "dw" bottom: "side_bn" top: "sum" }
layer { name: "sum_bn" type: "BatchNorm" bottom: "sum" top: "sum" }
layer { name: "sum_scale" type: "Scale" bottom: "sum" top: "sum" scale_param { bias_term: true } }
layer { name: "drop" type: "Dropout" bottom: "sum" top: "drop" }
layer { name: "ip1" type: "InnerProduct" bottom: "drop" top: "ip1"
        inner_product_param { num_output: 6 weight_filler { type: "msra" } } }
layer { name: "ip1_bn" type: "BatchNorm" bottom: "ip1" top: "ip1" }
layer { name: "ip1_scale" type: "Scale" bottom: "ip1" top: "ip1" scale_param { bias_term: true } }
layer { name: "ip2" type: "InnerProduct" bottom: "ip1" top: "ip2"
        inner_product_param { num_output: 3 transpose: true bias_term: false weight_filler { type: "msra" } } }
layer { name: "ip2_bias" type: "Bias" bottom: "ip2" top: "ip2" bias_param { filler { type: "gaussian" } } }
layer { name: "prob" type: "Softmax" bottom: "ip2" top: "prob" }
"""


def randomize(net, seed=0):
    """Weights of every layer drawn afresh (many deploy prototxts have no fillers: all zeros),
    BatchNorm statistics as after training, Scale operands near 1."""
    rng = np.random.default_rng(seed)
    for layer in net.layers:
        blobs = list(layer.blobs)
        if layer.type == "BatchNorm":
            channels = blobs[0].shape[0]
            blobs[0].data[...] = rng.normal(0, 0.2, channels)
            blobs[1].data[...] = rng.uniform(0.5, 1.5, channels)
            blobs[2].data[...] = rng.uniform(0.5, 2)
            blobs = blobs[3:]
        elif layer.type == "Scale" and blobs:
            blobs[0].data[...] = rng.uniform(0.5, 1.5, blobs[0].shape)
            blobs = blobs[1:]
        for blob in blobs:
            fan_in = blob.count() // blob.shape[0] if blob.num_axes > 1 else 10
            blob.data[...] = rng.standard_normal(blob.shape, dtype=np.float32) * np.float32(1.5 / np.sqrt(fan_in))


def build_pair(param, batch=None, prepare=randomize):
    """(layer by layer, deploy-time) nets sharing one set of weights (`prepare` sets them), their
    inputs filled."""
    if batch:
        for layer in param.layer:
            if layer.type == "Input":
                for shape in layer.input_param.shape:
                    shape.dim[0] = batch
    reference = caffe.Net(param, caffe.TEST, optimize=False)
    prepare(reference)
    optimised = caffe.Net(param, caffe.TEST)
    optimised.share_with(reference)
    rng = np.random.default_rng(1)
    for name in reference.inputs:
        value = rng.uniform(-1, 1, reference.blobs[name].shape)
        reference.blobs[name].data[...] = value
        optimised.blobs[name].data[...] = value
    return reference, optimised


def assert_close(got, want, what):
    scale = max(float(np.abs(want).max()), 1e-30)
    error = float(np.abs(np.asarray(got, np.float64) - want).max()) / scale
    assert error <= TOLERANCE, f"{what}: relative error {error:.2e}"


def assert_same_forward(reference, optimised, what):
    """Outputs with the plan at full strength, then every blob, read (and recomputed) afterwards."""
    want = {name: array.copy() for name, array in reference.forward().items()}
    for name, array in optimised.forward().items():
        assert_close(array, want[name], f"{what}: output {name}")
    for name, blob in optimised.blobs.items():
        assert_close(blob.data, reference.blobs[name].data, f"{what}: blob {name}")


def zoo_deploy_nets():
    if not os.path.isdir(ZOO):
        return []
    paths = glob.glob(os.path.join(ZOO, "**", "*.prototxt"), recursive=True)
    return sorted(os.path.relpath(p, ZOO) for p in paths if "solver" not in os.path.basename(p)
                  and any(layer.type == "Input" for layer in formats.read_net_param(p).layer))


def test_zoo_has_deploy_nets():
    if not os.path.isdir(ZOO):
        pytest.skip(f"shared test material not found: {ZOO}")
    assert len(zoo_deploy_nets()) == 11, zoo_deploy_nets()


@pytest.mark.parametrize("path", zoo_deploy_nets())
def test_zoo_deploy_net(path):
    reference, optimised = build_pair(formats.read_net_param(os.path.join(ZOO, path)), batch=1)
    assert_same_forward(reference, optimised, path)


@pytest.mark.parametrize("model,batch", [("resnet56_cifar", 2), ("mobilenet_v2", 1), ("squeezenet_v1.0", 1)])
def test_models_deploy_net(model, batch):
    param = formats.read_net_param(os.path.join(ROOT, "models", model, "deploy.prototxt"))
    reference, optimised = build_pair(param, batch)
    assert_same_forward(reference, optimised, model)


@pytest.mark.parametrize("build", [ssd_nets.mobilenet_ssd, ssd_nets.res10_face])
def test_fork_net(build):
    reference, optimised = build_pair(net_param_from_text(build(size=160)), prepare=ssd_nets.prepare)
    want = reference.forward()["detection_out"]
    got = optimised.forward()["detection_out"]
    assert len(want.reshape(-1, 7)) >= 3, "too few detections to compare"
    assert_close(got, want, "detection_out")
    for name, blob in optimised.blobs.items():
        assert_close(blob.data, reference.blobs[name].data, f"blob {name}")


def steps_run(net, **forward):
    """The layer indices whose forward callbacks ran in one forward."""
    seen = []
    with net.before_forward(seen.append):
        net.forward(**forward)
    return seen


def test_corner_cases_fold():
    reference, optimised = build_pair(net_param_from_text(CORNERS))
    names = optimised.layer_names
    # conv1+bn1+scale1, dw+dw_bn+dw_bias+dw_gain, sum_bn+sum_scale, ip1+ip1_bn+ip1_scale, ip2+ip2_bias;
    # side (read twice) and side_bn (its own Scale) stay apart.
    assert [names[i] for i in steps_run(optimised)] == [
        "input", "conv1", "relu1", "relu1_relu1_0_split", "dw", "side", "side_side_0_split", "side_bn",
        "side_pool", "sum", "sum_bn", "drop", "ip1", "ip2", "prob"]
    assert_same_forward(reference, optimised, "corners")


def test_a_wrong_fold_is_caught(monkeypatch):
    """The comparison sees a fold that forgets BatchNorm's eps."""
    original = folding.channel_affine

    def without_eps(layer, bottom, channels):
        if layer.type == "BatchNorm":
            layer.eps, eps = 0.0, layer.eps
            try:
                return original(layer, bottom, channels)
            finally:
                layer.eps = eps
        return original(layer, bottom, channels)

    monkeypatch.setattr(folding, "channel_affine", without_eps)
    reference, optimised = build_pair(net_param_from_text(CORNERS))
    for layer in reference.layers:  # variances near eps, where it matters
        if layer.type == "BatchNorm":
            layer.blobs[1].data[...] = 1e-4
    with pytest.raises(AssertionError, match="relative error"):
        assert_same_forward(reference, optimised, "corners")


def test_blobs_read_after_forward_hold_their_values():
    reference, optimised = build_pair(net_param_from_text(CORNERS))
    reference.forward()
    optimised.forward()
    # conv1 was folded away (bn1 reads it out of place), relu1's buffer was reused: both recomputed.
    for name in ("conv1", "relu1", "ip1"):
        assert_close(optimised.blobs[name].data, reference.blobs[name].data, name)
    # From now on they are kept: conv1 is computed again, so its fold is undone.
    assert "conv1" in [optimised.layer_names[i] for i in steps_run(optimised)]
    assert "bn1" in [optimised.layer_names[i] for i in steps_run(optimised)]


def test_forward_blobs_and_partial_forwards():
    reference, optimised = build_pair(net_param_from_text(CORNERS))
    want = reference.forward(blobs=["conv1", "side"])
    got = optimised.forward(blobs=["conv1", "side"])
    for name in ("conv1", "side", "prob"):
        assert_close(got[name], want[name], name)
    want = reference.forward(start="ip1")["prob"].copy()
    assert_close(optimised.forward(start="ip1")["prob"], want, "prob from ip1")
    want = reference.forward(end="sum")["sum"].copy()
    assert_close(optimised.forward(end="sum")["sum"], want, "sum up to layer sum")


def test_weights_written_after_a_forward_are_folded_again():
    reference, optimised = build_pair(net_param_from_text(CORNERS))
    optimised.forward()
    optimised.params["bn1"][1].data[...] *= 3  # shared with the reference net
    optimised.params["dw"][0].data[...] *= -1
    want = reference.forward(blobs=["ip2"])
    assert_close(optimised.forward(blobs=["ip2"])["ip2"], want["ip2"], "ip2 after new weights")


def test_buffers_are_shared():
    param = formats.read_net_param(os.path.join(ROOT, "models", "mobilenet_v2", "deploy.prototxt"))
    reference, optimised = build_pair(param, batch=1)
    reference.forward()
    optimised.forward()

    def distinct_bytes(net):
        storages = {id(t.data_storage): t.data_storage.size for tops in net.top_vecs for t in tops}
        return sum(storages.values()) * 4

    assert distinct_bytes(optimised) < distinct_bytes(reference) / 2


def test_nets_that_train_run_every_layer():
    param = formats.read_net_param(os.path.join(ROOT, "models", "lenet", "lenet_train_test.prototxt"))
    param = data_layers_to_inputs(param, lambda layer: (1, 28, 28), 4)
    for phase in (caffe.TRAIN, caffe.TEST):  # the TEST net has a loss: it could run backward
        net = caffe.Net(param, phase)
        assert steps_run(net) == list(range(len(net.layers)))
    deploy = net_param_from_text(CORNERS)
    net = caffe.Net(deploy, caffe.TEST, optimize=False)
    assert steps_run(net) == list(range(len(net.layers)))
    net = caffe.Net(deploy, caffe.TRAIN, optimize=True)  # Dropout and BatchNorm train: no plan
    assert len(steps_run(net)) == len(net.layers)


@pytest.mark.parametrize("flags,optimize", [([], True), (["-optimize=false"], False), (["--nooptimize"], False),
                                            (["-optimize"], True)])
def test_command_line_flag(tmp_path, monkeypatch, flags, optimize):
    model = tmp_path / "corners.prototxt"
    model.write_text(CORNERS)
    built = []

    def net(*args, **kwargs):
        built.append(caffe.Net(*args, **kwargs))
        return built[-1]

    monkeypatch.setattr(cli, "Net", net)
    assert cli.main(["time", "-model", str(model), "-phase", "TEST", "-iterations", "1", *flags]) == 0
    assert (len(steps_run(built[0])) < len(built[0].layers)) == optimize


def test_reshape_follows_data_where_a_layer_reads_it():
    """Steps skip a reshape while their bottoms keep their shapes, except Filter's, whose tops'
    shape depends on the selector's values."""
    text = """
input: "data" input_shape { dim: 4 dim: 3 } input: "keep" input_shape { dim: 4 }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" inner_product_param { num_output: 2 } }
layer { name: "filter" type: "Filter" bottom: "ip" bottom: "keep" top: "kept" }
"""
    reference, optimised = build_pair(net_param_from_text(text))
    for selector in ([1, 0, 1, 1], [0, 1, 0, 0]):
        want = reference.forward(keep=np.array(selector))["kept"].copy()
        got = optimised.forward(keep=np.array(selector))["kept"]
        assert got.shape == want.shape == (sum(selector), 2)
        assert_close(got, want, f"selector {selector}")
