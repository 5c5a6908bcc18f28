"""Snapshots and resume: a run stopped at iteration 10 and resumed equals an uninterrupted run bit
for bit; what a .solverstate holds; atomic writes; where snapshots go; clear restore errors."""
import errno
import os

import numpy as np
import pytest

from nvcaffe_py import cli, formats
from nvcaffe_py.errors import CaffeError
from nvcaffe_py.net import Net
from nvcaffe_py.proto import caffe_pb2
from nvcaffe_py.solvers import get_solver

from solver_helpers import RULES, weights, workdir, write_solver  # noqa: F401 (workdir: a fixture)

@pytest.mark.parametrize("rule", list(RULES))
def test_resume_matches_an_uninterrupted_run_bit_for_bit(workdir, rule):
    straight = get_solver(write_solver(workdir, "straight.prototxt", RULES[rule], 20))
    straight.solve()

    first = get_solver(write_solver(workdir, "split.prototxt", RULES[rule], 10))
    first.solve()
    assert sorted(f for f in os.listdir(workdir) if f.startswith("split_iter")) == \
        ["split_iter_10.caffemodel", "split_iter_10.solverstate"]
    resumed = get_solver(write_solver(workdir, "split.prototxt", RULES[rule], 20))
    resumed.solve("split_iter_10.solverstate")

    assert resumed.iter == straight.iter == 20
    assert resumed.current_step == straight.current_step == 2
    for a, b in zip(weights(straight), weights(resumed)):
        assert np.array_equal(a, b)
    for a, b in zip(straight.history, resumed.history):
        assert np.array_equal(a.data, b.data)
    # and the run did learn something, so that equality is not trivial
    assert not np.array_equal(weights(straight)[0], weights(get_solver("straight.prototxt"))[0])


def test_solverstate_holds_iteration_weights_file_history_and_step(workdir):
    write_solver(workdir, "s.prototxt", RULES["Adam"], 6, snapshot=6)
    solver = get_solver("s.prototxt")  # relative: so are its snapshot prefix and learned_net
    solver.solve()
    state = formats.read_binary("s_iter_6.solverstate", caffe_pb2.SolverState())
    assert state.iter == 6 and state.current_step == 1
    assert state.learned_net == "s_iter_6.caffemodel"
    params = solver.net.learnable_params
    assert len(state.history) == 2 * len(params)  # Adam: every m, then every v
    for k, p in enumerate(params + params):
        assert tuple(state.history[k].shape.dim) == p.blob.shape
        np.testing.assert_array_equal(formats.array_from_blob_proto(state.history[k]).reshape(p.blob.shape),
                                      solver.history[k].data)
    net = Net("net.prototxt", "s_iter_6.caffemodel", caffe_pb2.TRAIN)
    for p in params:
        np.testing.assert_array_equal(net.params[p.layer_name][p.index].data, p.blob.data)


def test_snapshot_writes_are_atomic(workdir, monkeypatch):
    solver = get_solver(write_solver(workdir, "s.prototxt", RULES["SGD"], 2, snapshot=0))
    solver.step(1)
    model, state = solver.snapshot()
    good = open(model, "rb").read()
    solver.step(1)
    solver.iter = 1  # the next snapshot has the same name as the good one
    real_replace = os.replace

    def crash(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(CaffeError, match="disk full"):
        solver.snapshot()
    monkeypatch.setattr(os, "replace", real_replace)
    assert open(model, "rb").read() == good  # untouched, and no temporary file left behind
    assert sorted(f for f in os.listdir(workdir) if f.startswith("s_")) == [os.path.basename(model),
                                                                           os.path.basename(state)]


def test_snapshot_prefix_defaults_to_the_solver_file_and_a_directory_takes_its_name(workdir):
    os.makedirs("runs/a")
    path = write_solver(workdir / "runs", "lenet_solver.prototxt", RULES["SGD"], 1, snapshot=1)
    assert get_solver(path).snapshot()[0] == str(workdir / "runs" / "lenet_solver_iter_0.caffemodel")
    path = write_solver(workdir, "b_solver.prototxt", RULES["SGD"], 1, extra='snapshot_prefix: "runs/a"')
    assert get_solver(path).snapshot()[0] == "runs/a/b_solver_iter_0.caffemodel"
    # A relative prefix is relative to the working directory, as in Caffe, not to the solver file.
    os.makedirs("snaps")
    path = write_solver(workdir / "runs", "c_solver.prototxt", RULES["SGD"], 1, extra='snapshot_prefix: "snaps/c"')
    assert get_solver(path).snapshot()[1] == "snaps/c_iter_0.solverstate"
    assert os.path.exists("snaps/c_iter_0.solverstate")


def test_restore_finds_the_weights_beside_a_moved_solverstate(workdir):
    solver = get_solver(write_solver(workdir, "s.prototxt", RULES["SGD"], 3, snapshot=3))
    solver.solve()
    os.makedirs("moved")
    for name in ("s_iter_3.caffemodel", "s_iter_3.solverstate"):
        os.rename(name, os.path.join("moved", name))
    resumed = get_solver("s.prototxt")
    resumed.restore("moved/s_iter_3.solverstate")
    assert resumed.iter == 3
    for a, b in zip(weights(solver), weights(resumed)):
        assert np.array_equal(a, b)


def test_restore_errors_are_clear(workdir):
    adam = get_solver(write_solver(workdir, "adam.prototxt", RULES["Adam"], 1, snapshot=1))
    adam.solve()
    sgd = get_solver(write_solver(workdir, "sgd.prototxt", RULES["SGD"], 1))
    with pytest.raises(CaffeError, match=r"adam_iter_1.solverstate: holds 8 history blobs but this SGD solver "
                                         r"on this net needs 4"):
        sgd.restore("adam_iter_1.solverstate")
    os.remove("adam_iter_1.caffemodel")
    with pytest.raises(CaffeError, match=r"its weights file '\S*adam_iter_1.caffemodel' does not exist"):
        get_solver("adam.prototxt").restore("adam_iter_1.solverstate")
    with pytest.raises(CaffeError, match="nope.solverstate: no such file"):
        sgd.restore("nope.solverstate")


def test_a_snapshot_that_cannot_be_written_is_one_line_and_keeps_the_previous_one(workdir, monkeypatch, capsys):
    write_solver(workdir, "s.prototxt", RULES["SGD"], 4, snapshot=2)
    real_fsync, calls = os.fsync, []

    def disk_full_after_the_first_snapshot(fd):
        calls.append(fd)
        if len(calls) > 2:  # the first snapshot is two files
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", disk_full_after_the_first_snapshot)
    assert cli.main(["train", "--solver", "s.prototxt"]) == 1
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "nvcaffe: error: iteration 4: cannot write snapshot s_iter_4.caffemodel: No space left on device; "
        "the previous snapshot s_iter_2.solverstate is intact")
    assert sorted(os.listdir(workdir)) == ["net.prototxt", "s.prototxt", "s_iter_2.caffemodel",
                                           "s_iter_2.solverstate", "train_lmdb"]
    get_solver("s.prototxt").restore("s_iter_2.solverstate")


@pytest.mark.parametrize("snapshot, after_train, refused", [(0, "true", True), (5, "false", True),
                                                             (0, "false", False)])
def test_the_snapshot_folder_is_checked_before_training_when_any_snapshot_will_be_written(
        workdir, snapshot, after_train, refused):
    path = write_solver(workdir, "s.prototxt", RULES["SGD"], 1, snapshot=snapshot,
                        extra=f'snapshot_prefix: "missing/s" snapshot_after_train: {after_train}')
    if refused:
        with pytest.raises(CaffeError, match=r"cannot write snapshots with snapshot_prefix 'missing/s': directory "
                                             r"'missing' does not exist"):
            get_solver(path)
    else:
        get_solver(path).solve()


@pytest.mark.parametrize("extension", ["", ".h5"])
def test_a_learned_net_that_is_not_utf8_is_one_line(workdir, extension):
    solver = get_solver(write_solver(workdir, "s.prototxt", RULES["SGD"], 1, snapshot=1,
                                     extra='snapshot_format: HDF5' if extension else ""))
    solver.solve()
    state_file = f"s_iter_1.solverstate{extension}"
    raw = open(state_file, "rb").read()
    name = b"s_iter_1.caffemodel" + extension.encode()
    assert raw.count(name) == 1
    with open(state_file, "wb") as f:  # the same length, so the file stays well formed
        f.write(raw.replace(name, b"\xff\xfe" + name[2:]))
    with pytest.raises(CaffeError, match=rf"^{state_file}: SolverState.learned_net is not valid UTF-8 text$|"
                                         rf"^{state_file}: dataset '/learned_net' is not valid UTF-8 text$"):
        get_solver("s.prototxt").restore(state_file)


def test_a_negative_iteration_in_a_solverstate_is_refused(workdir):
    solver = get_solver(write_solver(workdir, "s.prototxt", RULES["SGD"], 1, snapshot=1))
    solver.solve()
    state = formats.read_binary("s_iter_1.solverstate", caffe_pb2.SolverState())
    state.iter = -5
    formats.write_binary("s_iter_1.solverstate", state)
    with pytest.raises(CaffeError, match=r"^s_iter_1.solverstate: iteration -5 and step 0 cannot be negative$"):
        get_solver("s.prototxt").restore("s_iter_1.solverstate")
