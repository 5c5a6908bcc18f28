"""Two trainers on one snapshot_prefix: the second is refused, naming the first, for as long as
the first runs; and a solverstate resumes only with the weights it was saved with (its
fingerprint), so a pair mixed from two runs is refused."""
import hashlib
import os
import shutil
import subprocess
import sys

import pytest

from nvcaffe_py import formats, hdf5_format
from nvcaffe_py.errors import CaffeError
from nvcaffe_py.proto import caffe_pb2
from nvcaffe_py.solvers import get_solver
from nvcaffe_py.solvers.prefix_lock import PrefixLock

from solver_helpers import RULES, weights, workdir, write_solver  # noqa: F401 (workdir: a fixture)


@pytest.fixture
def other_run(workdir):
    """Another process holding the lock of prefix 's', as a training run does."""
    code = "import sys, time\nfrom nvcaffe_py.solvers.prefix_lock import PrefixLock\n" \
           "PrefixLock('s').acquire()\nprint('locked', flush=True)\ntime.sleep(120)\n"
    child = subprocess.Popen([sys.executable, "-c", code], cwd=workdir, stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "locked"
    yield child
    child.kill()
    child.wait()


def test_a_second_run_on_the_prefix_is_refused_naming_the_first(workdir, other_run):
    solver = get_solver(write_solver(workdir, "s.prototxt", RULES["SGD"], 2, snapshot=1))
    with pytest.raises(CaffeError, match=rf"^snapshot_prefix '\S*s' is in use by another training run \(process "
                                         rf"{other_run.pid} on .+, since .+\); wait for it to end or choose "
                                         rf"another snapshot_prefix$"):
        solver.solve()
    with pytest.raises(CaffeError, match="is in use by another training run"):
        solver.snapshot()  # pycaffe's snapshot between steps too
    assert not [name for name in os.listdir(workdir) if name.startswith("s_iter")]


def test_the_lock_ends_with_the_run_however_it_ends(workdir, other_run):
    other_run.kill()
    other_run.wait()
    solver = get_solver(write_solver(workdir, "s.prototxt", RULES["SGD"], 2, snapshot=1))
    solver.solve()  # the killed holder's lock went with it
    assert not os.path.exists("s.lock")
    again = get_solver("s.prototxt")
    again.solve()
    assert again.iter == 2


def test_the_lock_is_held_while_the_run_trains(workdir):
    solver = get_solver(write_solver(workdir, "s.prototxt", RULES["SGD"], 3, snapshot=1))
    seen = []

    def during_training():
        with pytest.raises(CaffeError, match=rf"process {os.getpid()} on"):
            PrefixLock("s").acquire()
        seen.append(open("s.lock").read())
        return "none"

    solver.set_action_function(during_training)
    solver.solve()
    assert len(seen) == 3 and seen[0].startswith(f"process {os.getpid()} on ")
    assert not os.path.exists("s.lock")


@pytest.mark.parametrize("extension, extra", [("", ""), (".h5", "snapshot_format: HDF5")])
def test_a_state_resumes_only_with_the_weights_it_was_saved_with(workdir, extension, extra):
    """Run A's state beside run B's weights of the same name: what two runs on one prefix made."""
    get_solver(write_solver(workdir, "a.prototxt", RULES["SGD"], 2, snapshot=2,
                            extra=f'snapshot_prefix: "s" {extra}')).solve()
    shutil.copy(f"s_iter_2.solverstate{extension}", f"a_state{extension}")
    run_b = get_solver(write_solver(workdir, "b.prototxt", RULES["SGD"], 2, snapshot=2,
                                    extra=f'snapshot_prefix: "s" clip_gradients: 0.001 {extra}'))
    run_b.solve()
    with pytest.raises(CaffeError, match=rf"^a_state{extension}: its weights file 's_iter_2.caffemodel{extension}' "
                                         r"is not the one saved with it \(its SHA-256 differs"):
        get_solver("a.prototxt").restore(f"a_state{extension}")
    resumed = get_solver("b.prototxt")
    resumed.restore(f"s_iter_2.solverstate{extension}")  # the matching pair resumes
    assert [w.tobytes() for w in weights(resumed)] == [w.tobytes() for w in weights(run_b)]


def test_the_fingerprint_is_the_weights_files_sha256(workdir):

    get_solver(write_solver(workdir, "s.prototxt", RULES["SGD"], 1, snapshot=1)).solve()
    state = formats.read_binary("s_iter_1.solverstate", caffe_pb2.SolverState())
    assert state.learned_net_sha256 == hashlib.sha256(open("s_iter_1.caffemodel", "rb").read()).hexdigest()
    state.ClearField("learned_net_sha256")
    hdf5_format.write_solver_state("caffe_written.solverstate.h5", state)  # as Caffe writes it: no fingerprint
    formats.write_binary("caffe_written.solverstate", state)
    get_solver("s.prototxt").restore("caffe_written.solverstate")
