"""Net building and running: filtering, splits, in-place layers, loss weights, backward need,
shared params, save/load, copy_from, and the errors users see."""
import gzip
import os

import numpy as np
import pytest

import nvcaffe_py as caffe
from nvcaffe_py import cli
from nvcaffe_py.errors import CaffeError
from nvcaffe_py.formats import net_param_from_text

from conftest import shared_path
from net_helpers import MLP, build, feed

def test_phase_filtering_and_split_insertion():
    train = build(phase=caffe.TRAIN)
    test = build(phase=caffe.TEST)
    assert [l.name for l in train.layers] == ["data", "ip1", "relu1", "ip2", "loss"]
    # In TEST, ip2 and label feed two layers each, so Caffe's Split layers appear, same names.
    names = [l.name for l in test.layers]
    assert "ip2_ip2_0_split" in names and "label_data_1_split" in names
    assert "ip2_ip2_0_split_1" in test.blobs
    assert test.outputs == ["loss", "acc"]
    assert train.inputs == ["data", "label"]


def test_in_place_layer_shares_blob():
    net = build()
    relu_index = net.layer_index("relu1")
    assert net.bottom_vecs[relu_index][0] is net.top_vecs[relu_index][0]


def test_loss_weight_scales_loss_and_gradient():
    caffe.set_random_seed(3)
    net1 = build()
    caffe.set_random_seed(3)
    net2 = build(MLP.replace('top: "loss" }', 'top: "loss" loss_weight: 2 }'))
    for net in (net1, net2):
        feed(net)
        net.clear_param_diffs()
    loss1, loss2 = net1.forward_backward(), net2.forward_backward()
    assert loss2 == pytest.approx(2 * loss1, rel=1e-6)
    np.testing.assert_allclose(net2.params["ip1"][0].diff, 2 * net1.params["ip1"][0].diff, rtol=1e-5)


LOSS_ON_A_TOP = """
name: "weighted" force_backward: true
layer { name: "data" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }
layer { name: "ip" type: "InnerProduct" bottom: "x" top: "y" loss_weight: 2
        inner_product_param { num_output: 4 weight_filler { type: "gaussian" std: 1 } } }
"""


def test_a_diff_set_on_a_loss_top_is_what_backward_uses():
    """Caffe writes a top's loss weight into its diff once, at setup: backward starts from the diff
    as it is, so one the caller sets (as a keyword or through blobs[...].diff) drives the gradients."""
    net = build(LOSS_ON_A_TOP)
    x = np.random.default_rng(0).standard_normal((2, 3)).astype(np.float32)
    net.forward(x=x)
    np.testing.assert_array_equal(net.blobs["y"].diff, 2.0)  # the weight, from setup
    net.clear_param_diffs()
    net.backward()
    np.testing.assert_allclose(net.params["ip"][0].diff, np.full((2, 4), 2.0).T @ x, rtol=1e-6)
    d = np.arange(8, dtype=np.float32).reshape(2, 4)

    def as_keyword():
        net.backward(y=d)

    def through_the_blob():
        net.blobs["y"].diff[...] = d
        net.backward()

    for backward_from_d in (as_keyword, through_the_blob):
        net.clear_param_diffs()
        backward_from_d()
        np.testing.assert_allclose(net.params["ip"][0].diff, d.T @ x, rtol=1e-6)
        np.testing.assert_allclose(net.blobs["x"].diff, d @ net.params["ip"][0].data, rtol=1e-6)


def test_backward_need_analysis():
    text = MLP.replace('param { lr_mult: 1 } param { lr_mult: 2 }', 'param { lr_mult: 0 } param { lr_mult: 0 }')
    net = build(text)
    need = dict(zip([l.name for l in net.layers], net.layer_need_backward))
    # ip1 is frozen and nothing below it learns, so neither it nor the ReLU on its output needs
    # a backward pass; ip2 learns, so it and the loss above it do.
    assert need == {"data": False, "ip1": False, "relu1": False, "ip2": True, "loss": True}
    forced = build(text.replace('name: "mlp"', 'name: "mlp" force_backward: true'))
    assert all(forced.layer_need_backward)
    data_index = forced.layer_index("loss")
    assert forced.bottom_need_backward[data_index] == [True, False]  # never into labels


def test_propagate_down_false_stops_gradient():
    text = MLP.replace('layer { name: "ip2" type: "InnerProduct" bottom: "ip1" top: "ip2"',
                       'layer { name: "ip2" type: "InnerProduct" bottom: "ip1" top: "ip2" propagate_down: false')
    net = build(text)
    assert not net.bottom_need_backward[net.layer_index("ip2")][0]
    assert not net.layer_need_backward[net.layer_index("ip1")]


def test_shared_params_accumulate_and_check_shape():
    text = """
    layer { name: "data" type: "Input" top: "a" top: "b" input_param { shape { dim: 2 dim: 3 } } }
    layer { name: "ipa" type: "InnerProduct" bottom: "a" top: "pa" param { name: "w" } param { name: "bias" }
            inner_product_param { num_output: 2 weight_filler { type: "gaussian" } } }
    layer { name: "ipb" type: "InnerProduct" bottom: "b" top: "pb" param { name: "w" } param { name: "bias" }
            inner_product_param { num_output: 2 weight_filler { type: "gaussian" } } }
    layer { name: "loss" type: "EuclideanLoss" bottom: "pa" bottom: "pb" top: "loss" }
    """
    net = build(text)
    assert net.params["ipa"][0] is net.params["ipb"][0]
    assert len(net.learnable_params) == 2
    with pytest.raises(CaffeError, match="ipb.*shares param 'w'.*shape"):
        build(text.replace('inner_product_param { num_output: 2 weight_filler { type: "gaussian" } } }\n    layer { name: "loss"',
                           'inner_product_param { num_output: 3 weight_filler { type: "gaussian" } } }\n    layer { name: "loss"'))


def test_forward_start_end_and_pycaffe_calls():
    net = build(phase=caffe.TEST)
    data = np.random.default_rng(1).standard_normal((4, 3)).astype(np.float32)
    out = net.forward(data=data, label=np.zeros(4))
    assert set(out) == {"loss", "acc"}
    partial = net.forward(start="ip1", end="ip1")
    assert set(partial) == {"ip1"}
    with pytest.raises(CaffeError, match="shape"):
        net.forward(data=np.zeros((5, 3)))


def test_backward_returns_input_diffs():
    net = build(MLP.replace('name: "mlp"', 'name: "mlp" force_backward: true'))
    feed(net)
    net.forward()
    diffs = net.backward()
    assert diffs["data"].shape == (4, 3) and np.any(diffs["data"] != 0)


def test_callbacks_run_around_every_layer_of_every_pass_until_removed():
    """pycaffe's net.before_forward(f) & co.: f(layer index) around each layer, backward visiting
    every layer (those that compute no gradient too, as Caffe's BackwardFromTo), in pass order."""
    net = build()
    feed(net)
    calls = []
    handles = [net.before_forward(lambda i: calls.append(("before_forward", i))),
               net.after_forward(lambda i: calls.append(("after_forward", i))),
               net.before_backward(lambda i: calls.append(("before_backward", i))),
               net.after_backward(lambda i: calls.append(("after_backward", i)))]
    net.forward_backward()
    layers = range(len(net.layers))
    assert calls == ([(kind, i) for i in layers for kind in ("before_forward", "after_forward")]
                     + [(kind, i) for i in reversed(layers) for kind in ("before_backward", "after_backward")])
    assert not net.layer_need_backward[0]  # the Input layer: visited, though it computes nothing
    with net.after_forward(lambda i: calls.append(("scoped", i))):
        net.forward(end="ip1")
    assert [c for c in calls if c[0] == "scoped"] == [("scoped", 0), ("scoped", 1)]
    for handle in handles:
        handle.remove()
    calls.clear()
    net.forward_backward()
    assert calls == []
    assert net.layer_names == net._layer_names == [layer.name for layer in net.layers]


def test_save_and_load_bit_identical(tmp_path):
    net = build()
    path = tmp_path / "mlp.caffemodel"
    net.save(str(path))
    other = build()
    other.copy_from(str(path))
    for name in net.params:
        for a, b in zip(net.params[name], other.params[name]):
            assert a.data.tobytes() == b.data.tobytes()
    again = tmp_path / "again.caffemodel"
    other.save(str(again))
    assert path.read_bytes() == again.read_bytes()
    # Weights given to the constructor, pycaffe style.
    third = caffe.Net(net_param_from_text(MLP), str(path), caffe.TEST)
    assert third.params["ip2"][0].data.tobytes() == net.params["ip2"][0].data.tobytes()


def test_copy_from_shape_mismatch_names_layer(tmp_path):
    net = build()
    path = tmp_path / "mlp.caffemodel"
    net.save(str(path))
    wider = build(MLP.replace("num_output: 5", "num_output: 6"))
    with pytest.raises(CaffeError, match="layer 'ip1'.*shape mismatch"):
        wider.copy_from(str(path))


def test_malformed_prototxt_names_file_line_column(tmp_path):
    path = tmp_path / "bad.prototxt"
    path.write_text('name: "x"\nlayer {\n  name: "a"\n  typo_field: 3\n}\n')
    with pytest.raises(CaffeError, match=r"bad\.prototxt:4:3: .*typo_field"):
        caffe.Net(str(path), caffe.TEST)


def test_unknown_layer_type_suggests_names():
    with pytest.raises(CaffeError, match=r"unknown layer type 'Convolutoin'.*'Convolution'"):
        build('layer { name: "a" type: "Input" top: "a" input_param { shape { dim: 1 } } }\n'
              'layer { name: "c" type: "Convolutoin" bottom: "a" top: "c" }')


def test_missing_bottom_is_named():
    with pytest.raises(CaffeError, match="layer 'ip' .*bottom 'nothing'"):
        build('layer { name: "ip" type: "InnerProduct" bottom: "nothing" top: "ip" '
              'inner_product_param { num_output: 1 } }')


def test_shape_mismatch_names_layer_and_shapes():
    with pytest.raises(CaffeError, match=r"'loss'.*\(4, 3\).*\(4, 2\)|'loss'.*\(4, 2\).*\(4, 3\)"):
        build('layer { name: "d" type: "Input" top: "a" top: "b" '
              'input_param { shape { dim: 4 dim: 3 } shape { dim: 4 dim: 2 } } }\n'
              'layer { name: "loss" type: "EuclideanLoss" bottom: "a" bottom: "b" top: "loss" }')


V1_LENET = """
name: "LeNet"
input: "data"
input_dim: 2 input_dim: 1 input_dim: 28 input_dim: 28
layers { name: "conv1" type: CONVOLUTION bottom: "data" top: "conv1" blobs_lr: 1 blobs_lr: 2
  convolution_param { num_output: 20 kernel_size: 5 stride: 1 weight_filler { type: "xavier" } } }
layers { name: "pool1" type: POOLING bottom: "conv1" top: "pool1"
  pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layers { name: "ip1" type: INNER_PRODUCT bottom: "pool1" top: "ip1" blobs_lr: 1 blobs_lr: 2
  inner_product_param { num_output: 10 weight_filler { type: "xavier" } } }
layers { name: "relu1" type: RELU bottom: "ip1" top: "ip1" }
layers { name: "prob" type: SOFTMAX bottom: "ip1" top: "prob" }
"""

CURRENT_LENET = """
name: "LeNet"
layer { name: "input" type: "Input" top: "data" input_param { shape { dim: 2 dim: 1 dim: 28 dim: 28 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1" param { lr_mult: 1 } param { lr_mult: 2 }
  convolution_param { num_output: 20 kernel_size: 5 stride: 1 weight_filler { type: "xavier" } } }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1"
  pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "ip1" type: "InnerProduct" bottom: "pool1" top: "ip1" param { lr_mult: 1 } param { lr_mult: 2 }
  inner_product_param { num_output: 10 weight_filler { type: "xavier" } } }
layer { name: "relu1" type: "ReLU" bottom: "ip1" top: "ip1" }
layer { name: "prob" type: "Softmax" bottom: "ip1" top: "prob" }
"""


def test_v1_prototxt_builds_the_same_net(tmp_path):
    caffe.set_random_seed(7)
    old = caffe.Net(net_param_from_text(V1_LENET), caffe.TEST)
    caffe.set_random_seed(7)
    new = caffe.Net(net_param_from_text(CURRENT_LENET), caffe.TEST)
    assert [(l.name, l.type) for l in old.layers] == [(l.name, l.type) for l in new.layers]
    assert {k: b.shape for k, b in old.blobs.items()} == {k: b.shape for k, b in new.blobs.items()}
    for name in new.params:
        for a, b in zip(old.params[name], new.params[name]):
            np.testing.assert_array_equal(a.data, b.data)
    x = np.random.default_rng(0).random((2, 1, 28, 28))
    np.testing.assert_array_equal(old.forward(data=x)["prob"], new.forward(data=x)["prob"])


def test_same_seed_same_weights():
    caffe.set_random_seed(11)
    a = build()
    caffe.set_random_seed(11)
    b = build()
    np.testing.assert_array_equal(a.params["ip1"][0].data, b.params["ip1"][0].data)


def test_python_layer_linreg_trains_through_pycaffe_module():
    net = build("""
    layer { type: 'DummyData' name: 'x' top: 'x' dummy_data_param { shape: { dim: 4 dim: 3 } data_filler { type: 'gaussian' } } }
    layer { type: 'DummyData' name: 'y' top: 'y' dummy_data_param { shape: { dim: 4 dim: 2 } data_filler { type: 'gaussian' } } }
    layer { type: 'InnerProduct' name: 'ipx' bottom: 'x' top: 'ipx' inner_product_param { num_output: 2 weight_filler { type: 'xavier' } } }
    layer { type: 'Python' name: 'loss' bottom: 'ipx' bottom: 'y' top: 'loss'
            python_param { module: 'pyloss' layer: 'EuclideanLossLayer' } loss_weight: 1 }
    """)
    loss = net.forward_backward()
    diff = net.blobs["ipx"].data - net.blobs["y"].data
    assert loss == pytest.approx(float(np.sum(diff ** 2) / 4 / 2), rel=1e-5)
    expected = diff.T @ net.blobs["x"].data / 4
    np.testing.assert_allclose(net.params["ipx"][0].diff, expected, rtol=1e-4, atol=1e-6)


def _read_idx(path):
    with gzip.open(path, "rb") as f:
        payload = f.read()
    ndim = payload[3]
    dims = np.frombuffer(payload, ">u4", count=ndim, offset=4)
    return np.frombuffer(payload, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def test_real_caffe_lenet_weights_classify_mnist():
    model_dir = shared_path("data", "caffemodels", "lenet_mnist")
    images = _read_idx(shared_path("data", "mnist", "t10k-images-idx3-ubyte.gz"))
    labels = _read_idx(shared_path("data", "mnist", "t10k-labels-idx1-ubyte.gz"))
    net = caffe.Net(os.path.join(model_dir, "mnist_deploy.prototxt"),
                    os.path.join(model_dir, "lenet_iter_10000.caffemodel"), caffe.TEST)
    input_name = net.inputs[0]
    batch = 500
    net.blobs[input_name].reshape(batch, 1, 28, 28)
    net.reshape()
    correct = 0
    for start in range(0, len(images), batch):
        x = images[start:start + batch].astype(np.float32)[:, None] * 0.00390625
        out = net.forward(**{input_name: x})
        scores = out[net.outputs[0]].reshape(batch, -1)
        correct += int(np.sum(scores.argmax(axis=1) == labels[start:start + batch]))
    accuracy = correct / len(images)
    assert accuracy >= 0.99, f"accuracy {accuracy:.4f}"


def test_a_net_without_layers_is_an_error(tmp_path):
    empty = tmp_path / "empty.prototxt"
    empty.write_text("# nothing but a comment\n")
    with pytest.raises(CaffeError, match=rf"^{empty}: the net has no layers$"):
        caffe.Net(str(empty), caffe.TEST)
    train_only = 'layer { name: "d" type: "Input" top: "d" include { phase: TRAIN } input_param { shape { dim: 1 } } }'
    with pytest.raises(CaffeError, match=r"^<net>: none of the net's 1 layers is included in phase TEST "
                                         r"\(level 0, stages: none\)"):
        build(train_only, phase=caffe.TEST)


def test_training_a_net_without_layers_is_an_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty.prototxt").write_text("")
    (tmp_path / "solver.prototxt").write_text('net: "empty.prototxt" base_lr: 0.1 lr_policy: "fixed" max_iter: 3')
    (tmp_path / "empty_solver.prototxt").write_text("")
    assert cli.main(["train", "--solver", "solver.prototxt"]) == 1
    assert cli.main(["train", "--solver", "empty_solver.prototxt"]) == 1
    assert not list(tmp_path.glob("*.caffemodel"))


@pytest.mark.parametrize("extra, message", [
    ("loss_weight: 1 loss_weight: 2", r"layer 'loss' gives loss_weight 2 times for its 1 top blob\(s\); give it "
                                      r"once per top or not at all"),
    ("propagate_down: true", r"layer 'loss' gives propagate_down 1 times for its 2 bottom blob\(s\); give it "
                             r"once per bottom or not at all"),
    ("param { lr_mult: 1 }", r"layer 'loss' gives 1 param specs but has only 0 parameter blob\(s\)"),
])
def test_per_blob_fields_given_too_often_are_refused(extra, message):
    """As Caffe's Net::Init and Layer::SetLossWeights: a per-blob field is given once per blob or not at all."""
    text = MLP.replace('top: "loss" }', f'top: "loss" {extra} }}')
    with pytest.raises(CaffeError, match=rf"^<net>: {message}$"):
        build(text)


def test_two_layers_of_a_phase_may_share_a_name():
    """As in Caffe (its mnist_autoencoder has two 'loss' layers). The backward analysis, which
    looked its layers' blobs up by name, indexed past its lists (found by the fuzz test)."""
    text = MLP.replace('name: "acc"', 'name: "data"')
    net = build(text, phase=caffe.TEST)
    feed(net)
    net.forward()
    assert net.layer_names.count("data") == 2 and net.layer_top_names[-1] == ["acc"]
    assert net.top_names["data"] == ["acc"]  # pycaffe's view by name: the last layer of the name
    two_losses = MLP.replace('type: "Accuracy"', 'type: "EuclideanLoss"').replace('name: "acc"', 'name: "loss"')
    two_losses = two_losses.replace('bottom: "ip2" bottom: "label" top: "acc"', 'bottom: "ip2" bottom: "ip2" top: "acc"')
    net = build(two_losses, phase=caffe.TEST)
    feed(net)
    net.forward_backward()
    assert net.layer_need_backward[net.layer_names.index("ip1")]
