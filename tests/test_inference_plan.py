"""The deploy-time forward of TEST nets (nvcaffe_py/inference_plan.py), on the NumPy engine,
against the layer-by-layer forward (`optimize=False`) on the same weights: every output and, read
afterwards, every blob within 1e-5 relative, on every zoo deploy net, the fork nets of
the models/ deploy nets (the fork nets of tests/fork_nets.py among them) and a net of every fold's corner cases; blobs the user
reads hold their values; training nets run every layer as declared."""
import glob
import os

import numpy as np
import pytest

import nvcaffe_py as caffe
from nvcaffe_py import cli, folding, formats
from nvcaffe_py.backends.cpu import onednn
from nvcaffe_py.formats import net_param_from_text
from nvcaffe_py.net_surgery import data_layers_to_inputs

import fork_nets
from conftest import SHARED
from deploy_helpers import CORNERS, assert_close, assert_same_forward, build_pair

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ZOO = os.path.join(SHARED, "caffe-zoo")


@pytest.fixture(autouse=True)
def _numpy_engine(monkeypatch):
    """The plan on the NumPy engine (tests/test_onednn.py runs it on oneDNN)."""
    monkeypatch.setattr(onednn, "unavailable_reason", lambda: "the NumPy engine is under test")

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


@pytest.mark.parametrize("model,batch", [("resnet56_cifar", 2), ("mobilenet_v2", 1), ("squeezenet_v1.0", 1),
                                         ("rfb320_face", 1), ("shufflenet_v2", 1)])
def test_models_deploy_net(model, batch):
    param = formats.read_net_param(os.path.join(ROOT, "models", model, "deploy.prototxt"))
    reference, optimised = build_pair(param, batch)
    assert_same_forward(reference, optimised, model)


@pytest.mark.parametrize("model", ["mobilenet_ssd", "res10_ssd_face"])
def test_fork_net(model):
    reference, optimised = build_pair(fork_nets.definition(model, (160, 160)), prepare=fork_nets.prepare)
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


def test_gpu_mode(device):
    """The plan's steps are ordinary layers: in GPU mode their GPU halves run, folded ones too,
    on the shared buffers (their device side). Compared with the CPU's layer-by-layer forward."""
    reference, optimised = build_pair(net_param_from_text(CORNERS))
    want = reference.forward(blobs=["dw", "sum"])
    caffe.set_mode_gpu()
    try:
        got = optimised.forward(blobs=["dw", "sum"])
        for name in ("dw", "sum", "prob"):
            assert_close(got[name], want[name], name, tolerance=1e-4)
    finally:
        caffe.set_mode_cpu()


def test_forward_only_layers_skip_what_only_backward_needs():
    """An in-place leaky ReLU with a negative slope keeps no copy of its input, and MAX pooling
    no mask, where no backward follows; the results are the layer-by-layer ones."""
    text = """
    input: "data" input_shape { dim: 2 dim: 3 dim: 8 dim: 8 }
    layer { name: "pool" type: "Pooling" bottom: "data" top: "pool"
            pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
    layer { name: "relu" type: "ReLU" bottom: "pool" top: "pool" relu_param { negative_slope: -0.2 } }
    layer { name: "sum" type: "Eltwise" bottom: "pool" bottom: "pool" top: "sum" eltwise_param { coeff: 1 coeff: 2 } }
    """
    reference, optimised = build_pair(net_param_from_text(text))
    assert_same_forward(reference, optimised, "forward-only")
    assert reference.layer_dict["relu"]._input_copy is not None and reference.layer_dict["pool"].pool.index is not None
    assert optimised.layer_dict["relu"]._input_copy is None and optimised.layer_dict["pool"].pool.index is None
