"""A weights file must give the net something: one that gives no learnable layer any weights (an
empty file, a file cut before its first layer, another net's weights) is an error; one that leaves
some learnable layers at their fillers says which, at WARNING (normal when fine-tuning)."""
import logging
import subprocess
import sys

import h5py
import pytest
from google.protobuf import text_format

import nvcaffe_py as caffe
from nvcaffe_py import formats
from nvcaffe_py.errors import CaffeError
from nvcaffe_py.formats import net_param_from_text
from nvcaffe_py.proto import caffe_pb2
from nvcaffe_py.solvers import get_solver

from net_helpers import MLP, build


@pytest.fixture
def saved(tmp_path):
    """The MLP's weights as a .caffemodel and as its serialized bytes, layer by layer."""
    path = tmp_path / "mlp.caffemodel"
    build().save(str(path))
    return path


def cut_before_layer(path, name):
    """The file's bytes up to (not including) the record of layer `name`: a cut between records."""
    net = caffe_pb2.NetParameter()
    net.ParseFromString(path.read_bytes())
    kept = caffe_pb2.NetParameter(name=net.name)
    for layer in net.layer:
        if layer.name == name:
            break
        kept.layer.add().CopyFrom(layer)
    cut = path.with_name(f"cut_before_{name}.caffemodel")
    cut.write_bytes(kept.SerializeToString())
    assert path.read_bytes().startswith(cut.read_bytes())
    return cut


@pytest.mark.parametrize("suffix", [".caffemodel", ".caffemodel.h5"])
def test_an_empty_weights_file_is_an_error(tmp_path, suffix):
    empty = tmp_path / f"empty{suffix}"
    if suffix.endswith(".h5"):
        with h5py.File(empty, "w") as f:
            f.create_group("data")
    else:
        empty.write_bytes(b"")
    with pytest.raises(CaffeError, match=rf"^{empty}: holds no layers.*learnable layers ip1, ip2"):
        build().copy_from(str(empty))


def test_a_file_cut_before_its_first_learnable_layer_is_an_error(saved):
    cut = cut_before_layer(saved, "ip1")
    with pytest.raises(CaffeError, match=rf"^{cut}: gives no weights to any learnable layer of the net "
                                         r"\(ip1, ip2\); its 1 layers: data$"):
        build().copy_from(str(cut))


def test_another_nets_weights_are_an_error(saved):
    renamed = MLP.replace('name: "ip1"', 'name: "fc1"').replace('name: "ip2"', 'name: "fc2"')
    with pytest.raises(CaffeError, match=r"gives no weights to any learnable layer of the net \(fc1, fc2\)"):
        build(renamed).copy_from(str(saved))


def test_a_partial_file_says_which_layers_keep_their_fillers(saved, caplog):
    cut = cut_before_layer(saved, "ip2")
    net = build()
    before = net.params["ip2"][0].data.copy()
    with caplog.at_level(logging.WARNING, logger="nvcaffe_py"):
        net.copy_from(str(cut))
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [f"{cut}: gives no weights to layer ip2, which keeps its filler"]
    assert (net.params["ip2"][0].data == before).all()
    saved_ip1 = formats.read_caffemodel(saved).layer[1]
    assert saved_ip1.name == "ip1"
    assert (net.params["ip1"][0].data == formats.array_from_blob_proto(saved_ip1.blobs[0])).all()


def test_a_complete_file_loads_without_a_warning(saved, caplog):
    with caplog.at_level(logging.WARNING, logger="nvcaffe_py"):
        caffe.Net(net_param_from_text(MLP), str(saved), caffe.TEST)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_a_net_without_learnable_layers_takes_any_file(saved):
    text = 'layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 } } }\n' \
           'layer { name: "relu" type: "ReLU" bottom: "data" top: "data" }'
    build(text).copy_from(str(saved))


def test_the_test_command_refuses_an_empty_weights_file(tmp_path):
    (tmp_path / "net.prototxt").write_text(MLP)
    (tmp_path / "empty.caffemodel").write_bytes(b"")
    result = subprocess.run([sys.executable, "-m", "nvcaffe_py", "test", "--model", "net.prototxt", "--weights",
                             "empty.caffemodel", "--iterations", "1"], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("nvcaffe: error: empty.caffemodel: holds no layers")


def test_fine_tuning_warns_once_for_the_train_and_test_nets(tmp_path, saved, caplog, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "net.prototxt").write_text(MLP.replace('name: "ip2"', 'name: "ip2_new"'))
    (tmp_path / "solver.prototxt").write_text('net: "net.prototxt" test_iter: 1 test_interval: 10 base_lr: 0.1 '
                                              'lr_policy: "fixed" max_iter: 1')
    param = caffe_pb2.SolverParameter()
    text_format.Parse((tmp_path / "solver.prototxt").read_text(), param)
    param.weights.append(str(saved))
    with caplog.at_level(logging.WARNING, logger="nvcaffe_py"):
        get_solver(param)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [f"{saved}: gives no weights to layer ip2_new, which keeps its filler"]
