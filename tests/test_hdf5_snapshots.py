"""Caffe's HDF5 weights (.caffemodel.h5) and solver states (.solverstate.h5): the layout Caffe
writes, round trips bit for bit, files written by hand in that layout, copy_from by extension,
snapshot_format: HDF5 and a resume from it that equals an uninterrupted run."""
import os

import h5py
import numpy as np
import pytest

import nvcaffe_py as caffe
from nvcaffe_py.errors import CaffeError
from nvcaffe_py.formats import net_param_from_text
from nvcaffe_py.solvers import get_solver

from net_helpers import MLP, build
from solver_helpers import RULES, weights, workdir, write_solver  # noqa: F401 (workdir: a fixture)

SHARED = """
layer { name: "data" type: "Input" top: "a" top: "b" input_param { shape { dim: 2 dim: 3 } } }
layer { name: "ipa" type: "InnerProduct" bottom: "a" top: "pa" param { name: "w" } param { name: "bias" }
        inner_product_param { num_output: 2 weight_filler { type: "gaussian" } bias_filler { type: "gaussian" } } }
layer { name: "ipb" type: "InnerProduct" bottom: "b" top: "pb" param { name: "w" } param { name: "bias" }
        inner_product_param { num_output: 2 } }
layer { name: "loss" type: "EuclideanLoss" bottom: "pa" bottom: "pb" top: "loss" }
"""


def params(net):
    return {name: [b.data.copy() for b in blobs] for name, blobs in net.params.items()}


def assert_same_params(a, b):
    assert a.keys() == b.keys()
    for name in a:
        for x, y in zip(a[name], b[name]):
            assert x.dtype == y.dtype and x.tobytes() == y.tobytes()


def write_caffe_string(group, name, text):
    """As Caffe's H5LTmake_dataset_string: scalar, fixed length, null-terminated."""
    raw = text.encode() + b"\0"
    string_type = h5py.h5t.C_S1.copy()
    string_type.set_size(len(raw))
    string_type.set_strpad(h5py.h5t.STR_NULLTERM)
    h5py.h5d.create(group.id, name.encode(), string_type, h5py.h5s.create(h5py.h5s.SCALAR)).write(
        h5py.h5s.ALL, h5py.h5s.ALL, np.array(raw, dtype=f"S{len(raw)}"))


# -- weights ---------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_weights_round_trip_bit_identical_in_caffes_layout(tmp_path, dtype):
    net = build(dtype=dtype)
    path = str(tmp_path / "mlp.caffemodel.h5")
    net.save_hdf5(path)
    with h5py.File(path, "r") as f:
        assert set(f) == {"data"}  # no "diff" unless asked
        # every layer has a group, parameterless ones included; dataset k is param k, in its precision
        assert set(f["data"]) == {"data", "ip1", "relu1", "ip2", "loss"}
        assert len(f["data/relu1"]) == 0
        for name in ("ip1", "ip2"):
            assert sorted(f["data"][name]) == ["0", "1"][:len(net.params[name])]
            for k, blob in enumerate(net.params[name]):
                dataset = f["data"][name][str(k)]
                assert dataset.dtype == dtype and dataset.shape == blob.shape
    other = build(dtype=dtype)
    assert not np.array_equal(other.params["ip1"][0].data, net.params["ip1"][0].data)  # fresh seed draw
    other.load_hdf5(path)
    assert_same_params(params(net), params(other))
    # and the pycaffe constructor picks the reader by extension
    third = caffe.Net(net_param_from_text(MLP), path, caffe.TEST, dtype=dtype)
    assert_same_params(params(net), params(third))


def test_write_diff_and_shared_params_follow_caffe(tmp_path):
    net = build(SHARED)
    net.blobs["a"].data[...] = np.arange(6).reshape(2, 3)
    net.forward_backward()
    path = str(tmp_path / "shared.caffemodel.h5")
    net.save_hdf5(path, write_diff=True)
    with h5py.File(path, "r") as f:
        # the sharing layer writes no data of its own, but its diff (shared storage: the owner's) is written
        assert sorted(f["data/ipa"]) == ["0", "1"] and len(f["data/ipb"]) == 0
        assert sorted(f["diff/ipb"]) == ["0", "1"]
        np.testing.assert_array_equal(f["diff/ipa/0"][()], net.params["ipa"][0].diff)
        assert np.any(f["diff/ipa/0"][()] != 0)
    other = build(SHARED.replace('bias_filler { type: "gaussian" }', ""))
    other.copy_from(path)  # the missing ipb datasets are fine: ipb shares its params
    assert_same_params(params(net), params(other))
    # Without sharing, a param missing from the file is an error.
    unshared = build(SHARED.replace('param { name: "w" } param { name: "bias" }\n        inner_product_param '
                                    '{ num_output: 2 } }', "inner_product_param { num_output: 2 } }"))
    with pytest.raises(CaffeError, match=r"shared.caffemodel.h5: layer 'ipb' has 0 param blobs in the weights "
                                         r"but 2 in the net"):
        unshared.copy_from(path)


def test_copy_from_h5_copies_by_name_and_names_the_mismatched_layer(tmp_path):
    net = build()
    path = str(tmp_path / "mlp.caffemodel.h5")
    net.save_hdf5(path)
    renamed = build(MLP.replace('name: "ip2"', 'name: "ip2_new"'))
    before = renamed.params["ip2_new"][0].data.copy()
    renamed.copy_from(path)
    assert renamed.params["ip1"][0].data.tobytes() == net.params["ip1"][0].data.tobytes()
    assert renamed.params["ip2_new"][0].data.tobytes() == before.tobytes()  # no layer of that name in the file
    wider = build(MLP.replace("num_output: 5", "num_output: 6"))
    with pytest.raises(CaffeError, match=r"mlp.caffemodel.h5: cannot copy param 0 of layer 'ip1': shape "
                                         r"mismatch, weights have \(5, 3\), the net has \(6, 3\)"):
        wider.copy_from(path)
    with pytest.raises(CaffeError, match="nope.caffemodel.h5: no such file"):
        net.copy_from(str(tmp_path / "nope.caffemodel.h5"))
    (tmp_path / "text.h5").write_text("not hdf5")
    with pytest.raises(CaffeError, match="text.h5: not a readable HDF5 file"):
        net.copy_from(str(tmp_path / "text.h5"))
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["weights"] = np.zeros(3)
    with pytest.raises(CaffeError, match="other.h5: no group '/data'"):
        net.load_hdf5(str(tmp_path / "other.h5"))


def test_a_file_written_by_hand_in_caffes_layout_loads(tmp_path):
    """As Caffe<double> would write it, with a layer this net lacks and one nested by its '/' name."""
    rng = np.random.default_rng(3)
    w1, b1, w2 = rng.standard_normal((5, 3)), rng.standard_normal(5), rng.standard_normal((3, 5))
    path = tmp_path / "hand.caffemodel.h5"
    with h5py.File(path, "w") as f:
        f["data/ip1/0"], f["data/ip1/1"] = w1, b1
        f["data/inc/ip2/0"], f["data/inc/ip2/1"] = w2, np.arange(3, dtype=np.int32)
        f["data/conv9/0"] = np.zeros((2, 2))
        f.create_group("data/relu1")
    net = build(MLP.replace('name: "ip2"', 'name: "inc/ip2"'))
    net.copy_from(str(path))
    np.testing.assert_array_equal(net.params["ip1"][0].data, w1.astype(np.float32))
    np.testing.assert_array_equal(net.params["ip1"][1].data, b1.astype(np.float32))
    np.testing.assert_array_equal(net.params["inc/ip2"][0].data, w2.astype(np.float32))
    np.testing.assert_array_equal(net.params["inc/ip2"][1].data, [0, 1, 2])
    # and our writer puts a '/' name back where it was read from
    net.save_hdf5(str(tmp_path / "again.caffemodel.h5"))
    with h5py.File(tmp_path / "again.caffemodel.h5", "r") as f:
        np.testing.assert_array_equal(f["data/inc/ip2/0"][()], w2.astype(np.float32))


# -- solver states and snapshots -------------------------------------------------------------
def test_hdf5_snapshot_layout(workdir):
    write_solver(workdir, "s.prototxt", RULES["Adam"], 6, snapshot=6, extra="snapshot_format: HDF5 snapshot_diff: true")
    solver = get_solver("s.prototxt")
    solver.solve()
    assert sorted(f for f in os.listdir(workdir) if f.startswith("s_iter")) == \
        ["s_iter_6.caffemodel.h5", "s_iter_6.solverstate.h5"]
    learnable = solver.net.learnable_params
    with h5py.File("s_iter_6.solverstate.h5", "r") as f:
        # Caffe's layout, and our fingerprint of the weights file (which Caffe ignores)
        assert set(f) == {"iter", "learned_net", "current_step", "history", "learned_net_sha256"}
        for name, value in (("iter", 6), ("current_step", 1)):
            assert f[name].dtype == np.int32 and f[name].shape == (1,) and f[name][0] == value
        string_type = f["learned_net"].id.get_type()
        assert f["learned_net"].shape == () and string_type.get_strpad() == h5py.h5t.STR_NULLTERM
        assert f["learned_net"][()] == b"s_iter_6.caffemodel.h5"
        assert sorted(f["history"], key=int) == [str(k) for k in range(2 * len(learnable))]  # Adam: m, then v
        for k, h in enumerate(solver.history):
            assert f["history"][str(k)].dtype == np.float32
            assert f["history"][str(k)][()].tobytes() == h.data.tobytes()
    with h5py.File("s_iter_6.caffemodel.h5", "r") as f:
        assert set(f) == {"data", "diff"}  # snapshot_diff
        for p in learnable:
            assert f["data"][p.layer_name][str(p.index)][()].tobytes() == p.blob.data.tobytes()


@pytest.mark.parametrize("rule", ["SGD", "Adam"])
def test_resume_from_hdf5_matches_an_uninterrupted_run_bit_for_bit(workdir, rule):
    straight = get_solver(write_solver(workdir, "straight.prototxt", RULES[rule], 20))
    straight.solve()
    hdf5 = "snapshot_format: HDF5"
    get_solver(write_solver(workdir, "split.prototxt", RULES[rule], 10, extra=hdf5)).solve()
    resumed = get_solver(write_solver(workdir, "split.prototxt", RULES[rule], 20, extra=hdf5))
    resumed.solve("split_iter_10.solverstate.h5")
    assert resumed.iter == 20 and resumed.current_step == straight.current_step == 2
    for a, b in zip(weights(straight), weights(resumed)):
        assert a.tobytes() == b.tobytes()
    for a, b in zip(straight.history, resumed.history):
        assert a.data.tobytes() == b.data.tobytes()
    assert not np.array_equal(weights(straight)[0], weights(get_solver("straight.prototxt"))[0])


def test_a_solverstate_written_by_hand_in_caffes_layout_restores(workdir):
    solver = get_solver(write_solver(workdir, "s.prototxt", RULES["SGD"], 4, snapshot=0))
    learnable = solver.net.learnable_params
    rng = np.random.default_rng(9)
    model = {(p.layer_name, p.index): rng.standard_normal(p.blob.shape) for p in learnable}
    history = [rng.standard_normal(p.blob.shape) for p in learnable]  # float64, as Caffe<double> writes
    with h5py.File("hand.caffemodel.h5", "w") as f:
        for (layer, k), values in model.items():
            f[f"data/{layer}/{k}"] = values
    with h5py.File("hand.solverstate.h5", "w") as f:
        f["iter"], f["current_step"] = np.array([7], np.int32), np.array([1], np.int32)
        write_caffe_string(f, "learned_net", "hand.caffemodel.h5")
        for k, values in enumerate(history):
            f[f"history/{k}"] = values
    solver.restore("hand.solverstate.h5")
    assert solver.iter == 7 and solver.current_step == 1
    for p in learnable:
        np.testing.assert_array_equal(p.blob.data, model[p.layer_name, p.index].astype(np.float32))
    for h, values in zip(solver.history, history):
        np.testing.assert_array_equal(h.data, values.astype(np.float32))
    # A float64 solver keeps every bit of a float64 history.
    double = get_solver("s.prototxt", dtype=np.float64)
    double.restore("hand.solverstate.h5")
    for h, values in zip(double.history, history):
        assert h.data.tobytes() == values.tobytes()


def test_hdf5_restore_errors_are_clear(workdir):
    adam = get_solver(write_solver(workdir, "adam.prototxt", RULES["Adam"], 1, snapshot=1,
                                   extra="snapshot_format: HDF5"))
    adam.solve()
    sgd = get_solver(write_solver(workdir, "sgd.prototxt", RULES["SGD"], 1))
    with pytest.raises(CaffeError, match=r"adam_iter_1.solverstate.h5: holds 8 history blobs but this SGD "
                                         r"solver on this net needs 4"):
        sgd.restore("adam_iter_1.solverstate.h5")
    with h5py.File("adam_iter_1.solverstate.h5", "a") as f:
        f.move("history/3", "history/x")
    with pytest.raises(CaffeError, match=r"adam_iter_1.solverstate.h5: no dataset '/history/3'"):
        get_solver("adam.prototxt").restore("adam_iter_1.solverstate.h5")
    with h5py.File("adam_iter_1.solverstate.h5", "a") as f:
        del f["current_step"]
    with pytest.raises(CaffeError, match=r"no dataset '/current_step'"):
        get_solver("adam.prototxt").restore("adam_iter_1.solverstate.h5")
    with pytest.raises(CaffeError, match="nope.solverstate.h5: no such file"):
        sgd.restore("nope.solverstate.h5")


def test_hdf5_snapshot_writes_are_atomic(workdir, monkeypatch):
    solver = get_solver(write_solver(workdir, "s.prototxt", RULES["SGD"], 2, snapshot=0,
                                     extra="snapshot_format: HDF5"))
    solver.step(1)
    model, state = solver.snapshot()
    good = open(model, "rb").read(), open(state, "rb").read()
    solver.step(1)
    solver.iter = 1

    def crash(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(CaffeError, match="disk full"):
        solver.snapshot()
    monkeypatch.undo()
    assert (open(model, "rb").read(), open(state, "rb").read()) == good
    assert sorted(f for f in os.listdir(workdir) if f.startswith("s_")) == sorted(map(os.path.basename, (model, state)))


def test_fine_tuning_from_hdf5_weights(workdir):
    trained = get_solver(write_solver(workdir, "a.prototxt", RULES["SGD"], 3, snapshot=3,
                                      extra="snapshot_format: HDF5"))
    trained.solve()
    tuned = get_solver(write_solver(workdir, "b.prototxt", RULES["SGD"], 3, extra='weights: "a_iter_3.caffemodel.h5"'))
    for a, b in zip(weights(trained), weights(tuned)):
        assert a.tobytes() == b.tobytes()
