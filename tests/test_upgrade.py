"""Tests for nvcaffe_py.upgrade: V0/V1 nets, net inputs, BatchNorm, solvers."""

import pytest
from google.protobuf import text_format

from nvcaffe_py.errors import CaffeError
from nvcaffe_py.proto import caffe_pb2
from nvcaffe_py.upgrade import (net_needs_upgrade, solver_needs_upgrade,
                                upgrade_net, upgrade_solver)


def net_from_text(text):
    net = caffe_pb2.NetParameter()
    text_format.Merge(text, net)
    return net


def solver_from_text(text):
    solver = caffe_pb2.SolverParameter()
    text_format.Merge(text, solver)
    return solver


# ---------------------------------------------------------------------------
# V1 (enum types, blobs_lr, old data fields)
# ---------------------------------------------------------------------------

V1_LENET = """
name: "LeNet"
layers {
  name: "mnist"
  type: DATA
  top: "data"
  top: "label"
  data_param {
    source: "examples/mnist/mnist_train_lmdb"
    backend: LMDB
    batch_size: 64
    scale: 0.00390625
    mean_file: "mean.binaryproto"
    mirror: true
  }
  include { phase: TRAIN }
}
layers {
  name: "conv1"
  type: CONVOLUTION
  bottom: "data"
  top: "conv1"
  blobs_lr: 1
  blobs_lr: 2
  weight_decay: 1
  weight_decay: 0
  param: "conv1_w"
  param: "conv1_b"
  blob_share_mode: PERMISSIVE
  convolution_param {
    num_output: 20
    kernel_size: 5
    stride: 1
    weight_filler { type: "xavier" }
    bias_filler { type: "constant" }
  }
}
layers {
  name: "pool1"
  type: POOLING
  bottom: "conv1"
  top: "pool1"
  pooling_param { pool: MAX kernel_size: 2 stride: 2 }
}
layers {
  name: "ip1"
  type: INNER_PRODUCT
  bottom: "pool1"
  top: "ip1"
  blobs_lr: 1
  blobs_lr: 2
  inner_product_param {
    num_output: 500
    weight_filler { type: "xavier" }
  }
}
layers { name: "relu1" type: RELU bottom: "ip1" top: "ip1" }
layers {
  name: "accuracy"
  type: ACCURACY
  bottom: "ip1"
  bottom: "label"
  top: "accuracy"
  include { phase: TEST }
}
layers {
  name: "loss"
  type: SOFTMAX_LOSS
  bottom: "ip1"
  bottom: "label"
  top: "loss"
  loss_weight: 2
  exclude { phase: TEST stage: "deploy" }
}
"""

V1_LENET_UPGRADED = """
name: "LeNet"
layer {
  name: "mnist"
  type: "Data"
  top: "data"
  top: "label"
  include { phase: TRAIN }
  transform_param {
    scale: 0.00390625
    mean_file: "mean.binaryproto"
    mirror: true
  }
  data_param {
    source: "examples/mnist/mnist_train_lmdb"
    backend: LMDB
    batch_size: 64
  }
}
layer {
  name: "conv1"
  type: "Convolution"
  bottom: "data"
  top: "conv1"
  param { name: "conv1_w" share_mode: PERMISSIVE lr_mult: 1 decay_mult: 1 }
  param { name: "conv1_b" lr_mult: 2 decay_mult: 0 }
  convolution_param {
    num_output: 20
    kernel_size: 5
    stride: 1
    weight_filler { type: "xavier" }
    bias_filler { type: "constant" }
  }
}
layer {
  name: "pool1"
  type: "Pooling"
  bottom: "conv1"
  top: "pool1"
  pooling_param { pool: MAX kernel_size: 2 stride: 2 }
}
layer {
  name: "ip1"
  type: "InnerProduct"
  bottom: "pool1"
  top: "ip1"
  param { lr_mult: 1 }
  param { lr_mult: 2 }
  inner_product_param {
    num_output: 500
    weight_filler { type: "xavier" }
  }
}
layer { name: "relu1" type: "ReLU" bottom: "ip1" top: "ip1" }
layer {
  name: "accuracy"
  type: "Accuracy"
  bottom: "ip1"
  bottom: "label"
  top: "accuracy"
  include { phase: TEST }
}
layer {
  name: "loss"
  type: "SoftmaxWithLoss"
  bottom: "ip1"
  bottom: "label"
  top: "loss"
  loss_weight: 2
  exclude { phase: TEST stage: "deploy" }
}
"""


def test_v1_net_needs_upgrade_and_input_is_untouched():
    net = net_from_text(V1_LENET)
    before = net.SerializeToString()
    assert net_needs_upgrade(net)
    up = upgrade_net(net, "lenet_v1.prototxt")
    assert net.SerializeToString() == before
    assert not net_needs_upgrade(up)
    assert len(up.layers) == 0


def test_v1_net_upgrade_field_by_field():
    up = upgrade_net(net_from_text(V1_LENET))
    assert [l.type for l in up.layer] == [
        "Data", "Convolution", "Pooling", "InnerProduct", "ReLU", "Accuracy",
        "SoftmaxWithLoss"]
    data, conv, pool, ip, relu, acc, loss = up.layer

    # Data: transformation fields moved out of data_param.
    assert data.transform_param.scale == pytest.approx(0.00390625)
    assert data.transform_param.mean_file == "mean.binaryproto"
    assert data.transform_param.mirror is True
    assert not data.transform_param.HasField("crop_size")
    for f in ("scale", "mean_file", "mirror", "crop_size"):
        assert not data.data_param.HasField(f)
    assert data.data_param.source == "examples/mnist/mnist_train_lmdb"
    assert data.data_param.backend == caffe_pb2.DataParameter.LMDB
    assert data.data_param.batch_size == 64
    assert list(data.top) == ["data", "label"]
    assert len(data.include) == 1 and data.include[0].phase == caffe_pb2.TRAIN

    # Convolution: param specs assembled from four V1 lists.
    assert len(conv.param) == 2
    assert conv.param[0].name == "conv1_w"
    assert conv.param[0].share_mode == caffe_pb2.ParamSpec.PERMISSIVE
    assert conv.param[0].lr_mult == 1 and conv.param[0].decay_mult == 1
    assert conv.param[1].name == "conv1_b"
    assert not conv.param[1].HasField("share_mode")
    assert conv.param[1].lr_mult == 2 and conv.param[1].decay_mult == 0
    cp = conv.convolution_param
    assert cp.num_output == 20 and list(cp.kernel_size) == [5]
    assert list(cp.stride) == [1]
    assert cp.weight_filler.type == "xavier"
    assert cp.bias_filler.type == "constant"
    assert list(conv.bottom) == ["data"] and list(conv.top) == ["conv1"]

    assert pool.pooling_param.pool == caffe_pb2.PoolingParameter.MAX
    assert pool.pooling_param.kernel_size == 2
    assert len(pool.param) == 0

    assert [p.lr_mult for p in ip.param] == [1, 2]
    assert not ip.param[0].HasField("decay_mult")
    assert ip.inner_product_param.num_output == 500

    assert list(relu.bottom) == list(relu.top) == ["ip1"]
    assert acc.include[0].phase == caffe_pb2.TEST
    assert list(loss.loss_weight) == [2]
    assert loss.exclude[0].phase == caffe_pb2.TEST
    assert list(loss.exclude[0].stage) == ["deploy"]

    # And the whole thing equals the hand-written current-format net.
    assert up == net_from_text(V1_LENET_UPGRADED)


def test_v1_every_enum_type_maps_to_a_string():
    for name, value in caffe_pb2.V1LayerParameter.LayerType.items():
        net = caffe_pb2.NetParameter()
        net.layers.add(name="l", type=value)
        up = upgrade_net(net)
        if name == "NONE":
            assert up.layer[0].type == ""
        else:
            assert up.layer[0].type, name
    spot = {"SOFTMAX_LOSS": "SoftmaxWithLoss", "HDF5_DATA": "HDF5Data",
            "IM2COL": "Im2col", "TANH": "TanH", "ABSVAL": "AbsVal",
            "DECONVOLUTION": "Deconvolution", "SILENCE": "Silence",
            "SIGMOID_CROSS_ENTROPY_LOSS": "SigmoidCrossEntropyLoss",
            "MULTINOMIAL_LOGISTIC_LOSS": "MultinomialLogisticLoss"}
    for name, expected in spot.items():
        net = caffe_pb2.NetParameter()
        net.layers.add(type=caffe_pb2.V1LayerParameter.LayerType.Value(name))
        assert upgrade_net(net).layer[0].type == expected


def test_v1_keeps_net_level_fields_and_image_data_transform():
    net = net_from_text("""
        name: "n" force_backward: true debug_info: true
        state { phase: TRAIN level: 3 stage: "s" }
        layers {
          name: "img" type: IMAGE_DATA top: "data" top: "label"
          image_data_param { source: "list.txt" crop_size: 227 batch_size: 5 }
        }
        layers {
          name: "win" type: WINDOW_DATA top: "w" top: "wl"
          window_data_param { source: "w.txt" scale: 2 }
        }
    """)
    up = upgrade_net(net)
    assert up.name == "n" and up.force_backward and up.debug_info
    assert up.state.phase == caffe_pb2.TRAIN and up.state.level == 3
    img, win = up.layer
    assert img.type == "ImageData"
    assert img.transform_param.crop_size == 227
    assert not img.image_data_param.HasField("crop_size")
    assert img.image_data_param.batch_size == 5
    assert win.type == "WindowData"
    assert win.transform_param.scale == 2
    assert not win.window_data_param.HasField("scale")


def test_v1_copies_every_param_message():
    net = net_from_text("""
        layers { type: DROPOUT dropout_param { dropout_ratio: 0.3 } }
        layers { type: LRN lrn_param { local_size: 3 alpha: 0.5 } }
        layers { type: ELTWISE eltwise_param { operation: MAX } }
        layers { type: HDF5_OUTPUT hdf5_output_param { file_name: "o.h5" } }
        layers { type: SOFTMAX_LOSS loss_param { ignore_label: 255 normalize: false } }
        layers { type: THRESHOLD threshold_param { threshold: 0.7 } }
        layers { type: CONCAT concat_param { concat_dim: 2 } }
    """)
    up = upgrade_net(net)
    assert up.layer[0].dropout_param.dropout_ratio == pytest.approx(0.3)
    assert up.layer[1].lrn_param.local_size == 3
    assert up.layer[2].eltwise_param.operation == caffe_pb2.EltwiseParameter.MAX
    assert up.layer[3].hdf5_output_param.file_name == "o.h5"
    assert up.layer[4].loss_param.ignore_label == 255
    assert up.layer[4].loss_param.normalize is False
    assert up.layer[5].threshold_param.threshold == pytest.approx(0.7)
    assert up.layer[6].concat_param.concat_dim == 2


# ---------------------------------------------------------------------------
# V0 (nested `layer`, string types, padding layers)
# ---------------------------------------------------------------------------

V0_NET = """
name: "v0net"
input: "data"
input_dim: 10 input_dim: 3 input_dim: 32 input_dim: 32
layers {
  layer {
    name: "conv1"
    type: "conv"
    num_output: 20
    kernelsize: 5
    stride: 1
    biasterm: false
    weight_filler { type: "gaussian" std: 0.01 }
    blobs_lr: 1
    blobs_lr: 2
    weight_decay: 1
    weight_decay: 0
  }
  bottom: "data"
  top: "conv1"
}
layers {
  layer { name: "pad1" type: "padding" pad: 2 }
  bottom: "conv1"
  top: "pad1"
}
layers {
  layer { name: "conv2" type: "conv" num_output: 50 kernelsize: 3 group: 2 }
  bottom: "pad1"
  top: "conv2"
}
layers {
  layer { name: "pool2" type: "pool" pool: AVE kernelsize: 3 stride: 2 }
  bottom: "conv2"
  top: "pool2"
}
layers {
  layer { name: "norm2" type: "lrn" local_size: 3 alpha: 0.0001 beta: 0.75 }
  bottom: "pool2"
  top: "norm2"
}
layers {
  layer { name: "fc" type: "innerproduct" num_output: 10 bias_filler { type: "constant" value: 0.1 } }
  bottom: "norm2"
  top: "fc"
}
layers {
  layer { name: "drop" type: "dropout" dropout_ratio: 0.4 }
  bottom: "fc"
  top: "fc"
}
layers {
  layer { name: "prob" type: "softmax" }
  bottom: "fc"
  top: "prob"
}
"""


def test_v0_net_upgrade_field_by_field():
    net = net_from_text(V0_NET)
    assert net_needs_upgrade(net)
    up = upgrade_net(net, "v0.prototxt")
    assert not net_needs_upgrade(up)
    assert up.name == "v0net"
    assert len(up.layers) == 0 and len(up.input) == 0 and len(up.input_dim) == 0
    assert [l.name for l in up.layer] == [
        "input", "conv1", "conv2", "pool2", "norm2", "fc", "drop", "prob"]
    assert [l.type for l in up.layer] == [
        "Input", "Convolution", "Convolution", "Pooling", "LRN", "InnerProduct",
        "Dropout", "Softmax"]
    inp, conv1, conv2, pool2, norm2, fc, drop, prob = up.layer

    assert list(inp.top) == ["data"]
    assert list(inp.input_param.shape[0].dim) == [10, 3, 32, 32]

    c1 = conv1.convolution_param
    assert c1.num_output == 20 and list(c1.kernel_size) == [5]
    assert list(c1.stride) == [1] and list(c1.pad) == []
    assert c1.HasField("bias_term") and c1.bias_term is False
    assert c1.weight_filler.type == "gaussian"
    assert c1.weight_filler.std == pytest.approx(0.01)
    assert [(p.lr_mult, p.decay_mult) for p in conv1.param] == [(1, 1), (2, 0)]
    assert list(conv1.bottom) == ["data"] and list(conv1.top) == ["conv1"]

    # The padding layer is gone; its pad moved onto conv2, which now reads
    # the padding layer's input directly.
    c2 = conv2.convolution_param
    assert list(c2.pad) == [2]
    assert list(conv2.bottom) == ["conv1"] and list(conv2.top) == ["conv2"]
    assert c2.group == 2 and list(c2.kernel_size) == [3]
    assert not c2.HasField("bias_term")

    pp = pool2.pooling_param
    assert pp.pool == caffe_pb2.PoolingParameter.AVE
    assert pp.kernel_size == 3 and pp.stride == 2
    assert not pp.HasField("pad")

    assert norm2.lrn_param.local_size == 3
    assert norm2.lrn_param.alpha == pytest.approx(0.0001)
    assert norm2.lrn_param.beta == pytest.approx(0.75)

    assert fc.inner_product_param.num_output == 10
    assert fc.inner_product_param.bias_filler.value == pytest.approx(0.1)
    assert drop.dropout_param.dropout_ratio == pytest.approx(0.4)
    assert list(drop.bottom) == list(drop.top) == ["fc"]
    assert prob.type == "Softmax"


def test_v0_padding_before_pool_and_data_layer_fields():
    net = net_from_text("""
        layers {
          layer {
            name: "data" type: "data" source: "train_db" batchsize: 32
            meanfile: "mean.bp" cropsize: 227 mirror: true scale: 0.5 rand_skip: 7
          }
          top: "data" top: "label"
        }
        layers { layer { name: "pad" type: "padding" pad: 1 } bottom: "data" top: "padded" }
        layers { layer { name: "pool" type: "pool" kernelsize: 3 stride: 2 } bottom: "padded" top: "pool" }
        layers { layer { name: "loss" type: "softmax_loss" } bottom: "pool" bottom: "label" }
    """)
    up = upgrade_net(net)
    data, pool, loss = up.layer
    assert data.type == "Data"
    assert data.data_param.source == "train_db"
    assert data.data_param.batch_size == 32
    assert data.data_param.rand_skip == 7
    tp = data.transform_param
    assert tp.mean_file == "mean.bp" and tp.crop_size == 227
    assert tp.mirror is True and tp.scale == pytest.approx(0.5)
    assert pool.pooling_param.pad == 1
    assert list(pool.bottom) == ["data"]
    assert loss.type == "SoftmaxWithLoss"


def test_v0_setting_for_wrong_type_is_ignored_with_warning(caplog):
    net = net_from_text("""
        input: "x"
        layers { layer { name: "r" type: "relu" num_output: 3 } bottom: "x" top: "y" }
    """)
    up = upgrade_net(net, "odd.prototxt")
    # (an `input` without dims is dropped, so the ReLU is the only layer)
    assert [l.type for l in up.layer] == ["ReLU"]
    assert not up.layer[0].HasField("convolution_param")
    assert any("num_output" in r.getMessage() for r in caplog.records)


def test_v0_unknown_type_is_an_error_naming_source_and_layer():
    net = net_from_text("""
        layers { layer { name: "weird" type: "frobnicate" } top: "a" }
    """)
    with pytest.raises(CaffeError, match=r"bad\.prototxt.*weird.*frobnicate"):
        upgrade_net(net, "bad.prototxt")


def test_v0_unknown_bottom_is_an_error():
    net = net_from_text("""
        layers { layer { name: "c" type: "conv" num_output: 1 kernelsize: 1 } bottom: "nope" top: "c" }
    """)
    with pytest.raises(CaffeError, match=r"<net>.*'c'.*nope"):
        upgrade_net(net)


def test_v0_padding_into_non_conv_is_an_error():
    net = net_from_text("""
        input: "x"
        layers { layer { name: "pad" type: "padding" pad: 1 } bottom: "x" top: "p" }
        layers { layer { name: "act" type: "relu" } bottom: "p" top: "r" }
    """)
    with pytest.raises(CaffeError, match=r"'act'.*padding"):
        upgrade_net(net, "pad.prototxt")


def test_error_messages_are_one_line():
    net = net_from_text('layers { layer { name: "w" type: "nope" } }')
    with pytest.raises(CaffeError) as info:
        upgrade_net(net, "f.prototxt")
    assert "\n" not in str(info.value)


# ---------------------------------------------------------------------------
# Net inputs -> Input layer
# ---------------------------------------------------------------------------

def test_input_dim_becomes_first_input_layer():
    net = net_from_text("""
        name: "deploy"
        input: "data"
        input_dim: 1 input_dim: 3 input_dim: 224 input_dim: 224
        input: "im_info"
        input_dim: 1 input_dim: 3 input_dim: 1 input_dim: 1
        layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
                convolution_param { num_output: 4 kernel_size: 3 } }
    """)
    assert net_needs_upgrade(net)
    up = upgrade_net(net)
    assert not net_needs_upgrade(up)
    assert len(up.input) == len(up.input_dim) == len(up.input_shape) == 0
    assert [l.name for l in up.layer] == ["input", "conv"]
    inp = up.layer[0]
    assert inp.type == "Input"
    assert list(inp.top) == ["data", "im_info"]
    assert [list(s.dim) for s in inp.input_param.shape] == [[1, 3, 224, 224], [1, 3, 1, 1]]
    assert len(inp.bottom) == 0


def test_input_shape_becomes_input_layer():
    net = net_from_text("""
        input: "a" input_shape { dim: 2 dim: 5 }
        input: "b" input_shape { dim: 7 }
    """)
    up = upgrade_net(net)
    assert [list(s.dim) for s in up.layer[0].input_param.shape] == [[2, 5], [7]]
    assert list(up.layer[0].top) == ["a", "b"]


def test_input_without_shape_is_just_dropped():
    net = net_from_text('input: "data" layer { name: "r" type: "ReLU" bottom: "data" top: "r" }')
    up = upgrade_net(net)
    assert len(up.input) == 0
    assert [l.name for l in up.layer] == ["r"]


def test_input_dim_count_mismatch_is_an_error():
    net = net_from_text('input: "data" input_dim: 1 input_dim: 3')
    with pytest.raises(CaffeError, match=r"m\.prototxt.*input"):
        upgrade_net(net, "m.prototxt")


def test_v1_net_with_input_dim_is_upgraded_through_both_steps():
    net = net_from_text("""
        input: "data" input_dim: 1 input_dim: 1 input_dim: 4 input_dim: 4
        layers { name: "ip" type: INNER_PRODUCT bottom: "data" top: "ip"
                 inner_product_param { num_output: 2 } }
    """)
    up = upgrade_net(net)
    assert [l.type for l in up.layer] == ["Input", "InnerProduct"]


# ---------------------------------------------------------------------------
# BatchNorm
# ---------------------------------------------------------------------------

def test_batch_norm_with_three_param_specs_is_frozen():
    net = net_from_text("""
        layer { name: "bn" type: "BatchNorm" bottom: "x" top: "x"
                param { lr_mult: 0 } param { lr_mult: 0 } param { lr_mult: 1 name: "shared" } }
        layer { name: "bn2" type: "BatchNorm" bottom: "x" top: "y" param { lr_mult: 1 } }
    """)
    assert net_needs_upgrade(net)
    up = upgrade_net(net)
    assert not net_needs_upgrade(up)
    bn, bn2 = up.layer
    assert len(bn.param) == 3
    for spec in bn.param:
        assert spec.HasField("lr_mult") and spec.lr_mult == 0
        assert spec.HasField("decay_mult") and spec.decay_mult == 0
    assert bn.param[2].name == "shared"
    # Only the old three-spec form is touched.
    assert bn2.param[0].lr_mult == 1


def test_current_net_needs_no_upgrade_and_is_returned_equal():
    net = net_from_text(V1_LENET_UPGRADED)
    assert not net_needs_upgrade(net)
    up = upgrade_net(net)
    assert up == net and up is not net


# ---------------------------------------------------------------------------
# Solvers
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("enum_name,expected", [
    ("SGD", "SGD"), ("NESTEROV", "Nesterov"), ("ADAGRAD", "AdaGrad"),
    ("RMSPROP", "RMSProp"), ("ADADELTA", "AdaDelta"), ("ADAM", "Adam")])
def test_solver_type_enum_becomes_type_string(enum_name, expected):
    solver = solver_from_text(f"""
        net: "train_val.prototxt" base_lr: 0.01 momentum: 0.9
        solver_type: {enum_name}
    """)
    assert solver_needs_upgrade(solver)
    up = upgrade_solver(solver)
    assert solver.HasField("solver_type")  # argument untouched
    assert not solver_needs_upgrade(up)
    assert up.type == expected and up.HasField("type")
    assert not up.HasField("solver_type")
    assert up.base_lr == pytest.approx(0.01) and up.net == "train_val.prototxt"


def test_solver_without_solver_type_is_unchanged():
    solver = solver_from_text('type: "Adam" base_lr: 0.001')
    assert not solver_needs_upgrade(solver)
    assert upgrade_solver(solver) == solver


def test_solver_with_both_type_fields_is_an_error():
    solver = solver_from_text('type: "Adam" solver_type: NESTEROV')
    with pytest.raises(CaffeError, match=r"s\.prototxt.*solver_type"):
        upgrade_solver(solver, "s.prototxt")
