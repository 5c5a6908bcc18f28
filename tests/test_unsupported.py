"""The error for what we lack: one message with every unknown layer type, field and enum value of
a net definition, each with its place, the fork that defines it where known, and what to do."""
import pytest

import nvcaffe_py as caffe
from nvcaffe_py import unsupported
from nvcaffe_py.errors import CaffeError
from nvcaffe_py.formats import read_net_param
from nvcaffe_py.proto import caffe_pb2

FORK_NET = """name: "frcnn"
input: "data"
input_shape { dim: 1 dim: 3 dim: 32 dim: 32 }
layer {
  name: "rpn"
  type: "Proposal"
  bottom: "data"
  top: "rois"
}
layer {
  name: "pool"
  type: "Pooling"
  bottom: "data"
  top: "pool"
  pooling_param { pool: MAXX kernel_size: 2 ceil_mode: false }
}
layer {
  name: "loss"
  type: "SmoothL1Loss"
  bottom: "pool"
  top: "loss"
  smooth_l1_loss_param { sigma: 3.0 }
  include { phase: TRAIN }
}
layer { name: "relu" type: "ReLU" bottom: "pool" top: "pool" relu_parm { negative_slope: 0.1 } }
"""


def place(text, needle, skip=0):
    """(line, column) of the start of `needle` in text (after `skip` earlier occurrences)."""
    at = -1
    for _ in range(skip + 1):
        at = text.index(needle, at + 1)
    line = text.count("\n", 0, at) + 1
    return line, at - (text.rfind("\n", 0, at) + 1) + 1


def error_lines(path, build=lambda p: caffe.Net(str(p), caffe.TEST)):
    with pytest.raises(CaffeError) as info:
        build(path)
    return str(info.value).splitlines()


def test_every_unknown_type_field_and_value_in_one_message(tmp_path):
    path = tmp_path / "frcnn.prototxt"
    path.write_text(FORK_NET)
    head, *items = error_lines(path)
    assert head == (f"{path}: 6 things in this net definition are not supported here "
                    "(layer types, fields or values from Caffe forks, or typos):")
    places = [place(FORK_NET, n) for n in ('type: "Proposal"', "pool: MAXX", "ceil_mode", 'type: "SmoothL1Loss"',
                                           "smooth_l1_loss_param", "relu_parm")]
    assert [item.split(": ", 1)[0].strip() for item in items] == [f"{path}:{line}:{column}" for line, column in places]
    proposal, maxx, ceil_mode, smooth_type, smooth_field, typo = items
    assert "layer 'rpn' (Proposal): unknown layer type 'Proposal' -- defined by py-faster-rcnn" in proposal
    assert 'type: "Python"' in proposal and "rpn.proposal_layer" in proposal
    assert "layer 'pool' (Pooling): unknown value 'MAXX' for PoolingParameter.pool -- did you mean 'MAX'?" in maxx
    assert "unknown field 'ceil_mode' in PoolingParameter" in ceil_mode and "round_mode: FLOOR" in ceil_mode
    assert "unknown layer type 'SmoothL1Loss' -- defined by py-faster-rcnn (caffe-fast-rcnn)" in smooth_type
    assert "unknown field 'smooth_l1_loss_param' in LayerParameter" in smooth_field
    assert "layer 'relu' (ReLU): unknown field 'relu_parm' in LayerParameter -- did you mean 'relu_param'?" in typo


def test_unknown_types_alone_are_found_when_the_net_is_built(tmp_path):
    path = tmp_path / "frcnn.prototxt"
    text = (FORK_NET.replace("pool: MAXX kernel_size: 2 ceil_mode: false", "pool: MAX kernel_size: 2")
            .replace("  smooth_l1_loss_param { sigma: 3.0 }\n", "").replace(" relu_parm { negative_slope: 0.1 }", ""))
    path.write_text(text)
    read_net_param(path)  # the schema has every field: reading succeeds
    head, *items = error_lines(path)
    assert head.startswith(f"{path}: 2 things")
    places = [place(text, 'type: "Proposal"'), place(text, 'type: "SmoothL1Loss"')]
    assert [item.split(": ", 1)[0].strip() for item in items] == [f"{path}:{line}:{column}" for line, column in places]


def test_a_train_only_unknown_type_does_not_stop_the_test_net(tmp_path):
    path = tmp_path / "net.prototxt"
    path.write_text('input: "data" input_shape { dim: 1 dim: 3 }\n'
                    'layer { name: "loss" type: "SmoothL1Loss" bottom: "data" top: "loss" include { phase: TRAIN } }\n'
                    'layer { name: "relu" type: "ReLU" bottom: "data" top: "out" }\n')
    net = caffe.Net(str(path), caffe.TEST)
    assert "loss" not in net.layer_names


def test_one_finding_is_one_line(tmp_path):
    path = tmp_path / "net.prototxt"
    path.write_text('layer {\n  name: "a" type: "Pooling"\n  pooling_param { ceil_mode: false }\n}\n')
    (line,) = error_lines(path, read_net_param)
    assert line == (f"{path}:3:19: layer 'a' (Pooling): unknown field 'ceil_mode' in PoolingParameter -- defined by "
                    "BVLC/caffe PR #3057, used by SegNet and PSPNet ports; write round_mode: FLOOR for ceil_mode: "
                    "false (round_mode: CEIL is the default)")


def test_v1_layers_name_their_type_by_enum(tmp_path):
    path = tmp_path / "net.prototxt"
    path.write_text('layers {\n  name: "a"\n  type: PROPOSAL\n}\n')
    (line,) = error_lines(path, read_net_param)
    assert line.startswith(f"{path}:3:3: layer 'a': unknown value 'PROPOSAL' for V1LayerParameter.type")


def test_a_net_given_as_a_message_is_listed_by_layer():
    param = caffe_pb2.NetParameter()
    param.layer.add(name="in", type="Input", top=["x"]).input_param.shape.add(dim=[1, 2])
    param.layer.add(name="r1", type="Reorg", bottom=["x"], top=["y"])
    param.layer.add(name="r2", type="Relu", bottom=["x"], top=["z"])
    with pytest.raises(CaffeError) as info:
        caffe.Net(param, caffe.TEST, source="yolo")
    head, reorg, relu = str(info.value).splitlines()
    assert head.startswith("yolo: 2 things")
    assert reorg.strip().startswith("yolo: layer 'r1' (Reorg): unknown layer type 'Reorg' -- defined by YOLO ports")
    assert relu.strip().endswith("did you mean 'ReLU'?")


def test_known_fork_layers_pass_the_scan():
    text = 'layer { name: "p" type: "PriorBox" prior_box_param { min_size: 30 } }\n' \
           'layer { name: "s" type: "ShuffleChannel" shuffle_channel_param { group: 2 } }\n' \
           'layer { name: "i" type: "Interp" interp_param { zoom_factor: 2 } }\n' \
           'layer { name: "u" type: "Upsample" upsample_param { scale: 2 } }\n'
    assert unsupported.scan(text) == []
