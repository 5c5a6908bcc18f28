"""What a data-parallel run does besides averaging: only rank 0 tests, logs and snapshots; a
snapshot resumes with any number of ranks; SIGINT/SIGHUP on rank 0 act for every rank; a rank that
dies or hangs stops the others with an error, never a hang; bad input is one line from rank 0."""
import contextlib
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import nvcaffe_py as caffe
from nvcaffe_py import mode
from ranks_helpers import (environment, final_weights, lenet_workdir, logged_pids, mpiexec, relative_difference,
                           run_ranks, train_command, write_solver)


def test_only_rank_0_tests_logs_and_snapshots(tmp_path):
    lenet_workdir(tmp_path, test=True)
    solver = write_solver(tmp_path, "ranks", 6, "test_iter: 2 test_interval: 3 snapshot: 3")
    result = run_ranks(2, solver, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(logged_pids(result.stderr, "")) == 1  # one rank logs at INFO
    assert result.stderr.count("Testing net (#0)") == 3  # iterations 0, 3 and 6, as one process
    assert sorted(p.name for p in tmp_path.glob("ranks_iter_*")) == [
        "ranks_iter_3.caffemodel", "ranks_iter_3.solverstate", "ranks_iter_6.caffemodel", "ranks_iter_6.solverstate"]


def test_a_solver_on_another_rank_builds_no_test_net_and_writes_nothing(tmp_path, monkeypatch):
    lenet_workdir(tmp_path, test=True)
    solver_file = write_solver(tmp_path, "rank1", 2, "test_iter: 1 test_interval: 1 snapshot: 1")
    monkeypatch.chdir(tmp_path)
    mode.set_solver_count(2)
    mode.set_solver_rank(1)
    try:
        solver = caffe.get_solver(str(solver_file))
        solver.set_action_function(lambda: caffe.solvers.SNAPSHOT)  # rank 0's signals only
        solver.solve()
    finally:
        mode.set_solver_count(1)
        mode.set_solver_rank(0)
    assert solver.test_nets == [] and solver.iter == 2
    assert not list(tmp_path.glob("rank1_iter_*"))


def test_a_snapshot_resumes_with_another_number_of_ranks(tmp_path):
    """Rank 0 restores and broadcasts weights, history and iteration: 3 ranks resuming a 2-rank
    snapshot end where one process with iter_size 3 resuming it does."""
    lenet_workdir(tmp_path, batch=8)
    result = run_ranks(2, write_solver(tmp_path, "first", 4), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    resumed = {}
    for name, ranks, extra in (("three", 3, ""), ("single", None, "iter_size: 3")):
        result = run_ranks(ranks, write_solver(tmp_path, name, 8, extra), "-snapshot", "first_iter_4.solverstate",
                           cwd=tmp_path)
        assert result.returncode == 0, result.stderr[-3000:]
        assert "Iteration 4, lr" in result.stderr and "Iteration 3, lr" not in result.stderr
        resumed[name] = final_weights(tmp_path / f"{name}_iter_8.caffemodel")
    assert relative_difference(resumed["three"], resumed["single"]) <= 1e-4


def _start(tmp_path, max_iter, ranks=2, env=None, launcher=()):
    lenet_workdir(tmp_path)
    solver = write_solver(tmp_path, "long", max_iter)
    command = [mpiexec(), *launcher, "-n", str(ranks), *train_command(solver)]
    return subprocess.Popen(command, cwd=tmp_path, env=env or environment(), stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def _read_until(process, text, lines):
    for line in process.stderr:
        lines.append(line)
        if text in line:
            return line
    raise AssertionError(f"the run ended before logging {text!r}:\n{''.join(lines[-30:])}")


def _rank_pids(process):
    """{rank: pid} of the processes under this mpiexec that MPI gave a rank (PMI_RANK)."""
    parents = {}
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{entry}/stat") as f:
                parents[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
    found = {}
    for pid in parents:
        ancestor = pid
        while ancestor in parents and ancestor != process.pid:
            ancestor = parents[ancestor]
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                variables = dict(v.split(b"=", 1) for v in f.read().split(b"\0") if b"=" in v)
        except OSError:
            continue
        if ancestor == process.pid and b"PMI_RANK" in variables and b"python" in open(f"/proc/{pid}/cmdline", "rb").read():
            found[int(variables[b"PMI_RANK"])] = pid
    return found


def test_sighup_then_sigint_on_rank_0_snapshot_and_stop_every_rank(tmp_path):
    process = _start(tmp_path, 100000)
    lines = []
    try:
        rank0 = logged_pids(_read_until(process, "Iteration 3, lr", lines), "Iteration")
        os.kill(rank0.pop(), signal.SIGHUP)
        snapshot = _read_until(process, "Snapshotting solver state", lines)
        os.kill(_rank_pids(process)[0], signal.SIGINT)
        _read_until(process, "stop requested", lines)
        lines += process.stderr.readlines()
        assert process.wait(timeout=60) == 0, "".join(lines[-30:])
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    stopped = int(next(line for line in lines if "stop requested" in line).split("Iteration ")[1].split(":")[0])
    assert (tmp_path / f"long_iter_{stopped}.caffemodel").exists()  # snapshot_after_train, at the stop
    assert os.path.basename(snapshot.split()[-1]).startswith("long_iter_")
    assert "Optimization stopped early." in "".join(lines)


@pytest.mark.parametrize("how", ["killed", "hung"])
def test_a_rank_that_dies_or_hangs_stops_the_others(tmp_path, how):
    # -disable-auto-cleanup: mpiexec leaves the other ranks alone, so they must notice by themselves
    env = environment(NVCAFFE_COLLECTIVE_TIMEOUT_S="10")
    process = _start(tmp_path, 100000, env=env, launcher=["-disable-auto-cleanup"])
    lines = []
    try:
        _read_until(process, "Iteration 2, lr", lines)
        rank1 = _rank_pids(process)[1]
        os.kill(rank1, signal.SIGKILL if how == "killed" else signal.SIGSTOP)
        started = time.monotonic()
        lines.append(process.stderr.read())  # to the end: every rank's process has ended
        process.wait(timeout=60)
        elapsed = time.monotonic() - started
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    text = "".join(lines)
    assert process.returncode != 0 and elapsed < 60, text[-3000:]
    if how == "hung":
        assert "nvcaffe: error: rank 0: the other ranks did not answer within 10 s" in text


def test_more_ranks_than_records_is_one_line_from_rank_0(tmp_path):
    lenet_workdir(tmp_path, records=2)
    result = run_ranks(3, write_solver(tmp_path, "many", 2), cwd=tmp_path)
    errors = [line for line in result.stderr.splitlines() if "error" in line]
    assert result.returncode != 0
    assert len(errors) == 1 and "holds 2 item(s), fewer than the 3 ranks" in errors[0], result.stderr[-2000:]


def test_ranks_with_different_solvers_are_refused_by_hash(tmp_path):
    lenet_workdir(tmp_path)
    first, second = write_solver(tmp_path, "a", 2), write_solver(tmp_path, "b", 2, "base_lr: 0.5")
    command = [mpiexec(), "-n", "1", *train_command(first), ":", "-n", "1", *train_command(second)]
    result = subprocess.run(command, cwd=tmp_path, env=environment(), capture_output=True, text=True, timeout=120)
    errors = [line for line in result.stderr.splitlines() if "error" in line]
    assert result.returncode != 0
    assert len(errors) == 1 and "the ranks' solvers or nets differ: rank 1's hash" in errors[0], result.stderr[-2000:]


def test_a_file_missing_on_one_rank_is_rank_0s_line(tmp_path):
    lenet_workdir(tmp_path)
    solver = write_solver(tmp_path, "a", 2)
    command = [mpiexec(), "-n", "1", *train_command(solver), ":", "-n", "1", *train_command(tmp_path / "gone.prototxt")]
    result = subprocess.run(command, cwd=tmp_path, env=environment(), capture_output=True, text=True, timeout=120)
    errors = [line for line in result.stderr.splitlines() if "error" in line]
    assert result.returncode != 0
    assert len(errors) == 1 and errors[0].startswith("nvcaffe: error: rank 1: ") and "gone.prototxt" in errors[0], \
        result.stderr[-2000:]


@pytest.mark.skipif(caffe.backends.cuda_unavailable_reason() is None, reason="a GPU is usable here")
def test_gpu_ranks_without_a_gpu_are_one_line_from_rank_0(tmp_path):
    lenet_workdir(tmp_path)
    result = run_ranks(2, write_solver(tmp_path, "gpus", 2), "-gpu", "0,1", cwd=tmp_path)
    errors = [line for line in result.stderr.splitlines() if "error" in line]
    assert result.returncode != 0
    assert errors == [errors[0]] and "GPU mode requested but no GPU is usable" in errors[0], result.stderr[-2000:]


@pytest.mark.parametrize("rank", [0, 1])
def test_without_mpi_for_python_rank_0_says_how_to_install_it(tmp_path, rank):
    lenet_workdir(tmp_path)
    solver = write_solver(tmp_path, "nompi", 2)
    code = ("import sys; sys.modules['mpi4py'] = None; from nvcaffe_py.cli import main; "  # mpi4py made unimportable
            f"sys.exit(main(['train', '-solver', {str(solver)!r}]))")
    env = environment(PMI_RANK=str(rank), PMI_SIZE="2")
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if "error" in line]
    assert errors == ([] if rank else [errors[0]])
    if rank == 0:
        assert "MPI for Python cannot be loaded" in errors[0] and "pip install -e '.[mpi]'" in errors[0]


def test_the_ranks_end_with_the_same_weights(tmp_path):
    """Every rank applies the same update: rank 1's weights, snapshotted by hand, are rank 0's."""
    lenet_workdir(tmp_path, batch=4)
    script = tmp_path / "both.py"
    script.write_text(
        "import sys, nvcaffe_py as caffe\n"
        "from nvcaffe_py.scaleout import data_parallel, world\n"
        "training = data_parallel.join(world.from_environment())\n"
        "param, _ = caffe.load_solver_param('two.prototxt')\n"
        "solver = training.build(lambda seed: caffe.get_solver(param))\n"
        "solver.solve()\n"
        "solver.net.save(f'rank{training.rank}.caffemodel')\n")
    write_solver(tmp_path, "two", 3)
    result = subprocess.run([mpiexec(), "-n", "2", sys.executable, str(script)], cwd=tmp_path, env=environment(),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    rank0, rank1 = final_weights(tmp_path / "rank0.caffemodel"), final_weights(tmp_path / "rank1.caffemodel")
    assert all(np.array_equal(rank0[key], rank1[key]) for key in rank0)


def test_nccl_without_its_library_says_how_to_install_it():
    from nvcaffe_py.scaleout import nccl_library
    if nccl_library.available():
        pytest.skip("NCCL loads here; tools/gpu_check.sh runs it on a GPU")
    assert caffe.has_nccl() is False
    with pytest.raises(caffe.CaffeError, match=r"NCCL cannot be loaded .*pip install -e '\.\[nccl\]'"):
        caffe.NCCL.new_uid()


@pytest.mark.parametrize("ids, count, message", [([0, 3], 2, "names GPU 3, but this machine has 2 GPU"),
                                                  ([1, 1], 2, "names a GPU twice"),
                                                  ([0], 0, "this machine has none")])
def test_gpu_ids_that_do_not_exist_are_refused(ids, count, message):
    from nvcaffe_py.scaleout.launcher import check_device_ids
    with pytest.raises(caffe.CaffeError, match=message):
        check_device_ids(ids, count)
    check_device_ids([0, 1], 2)


def _processes(*codes):
    return [subprocess.Popen([sys.executable, "-c", code]) for code in codes]


def test_the_gpu_launcher_ends_the_other_ranks_when_one_fails():
    from nvcaffe_py.scaleout import launcher
    ranks = _processes("import time; time.sleep(120)", "import sys, time; time.sleep(0.5); sys.exit(3)")
    started = time.monotonic()
    with pytest.raises(caffe.CaffeError, match=r"rank 1 \(GPU 5\) ended with status 3; the other ranks were stopped"):
        launcher._watch(ranks, [4, 5])
    assert ranks[0].poll() is not None and time.monotonic() - started < 30
    # Rank 0 failing with status 1 has printed the error for every rank (the checks at start).
    assert launcher._watch(_processes("import sys; sys.exit(1)", "import sys; sys.exit(1)"), [0, 1]) == 1
    assert launcher._watch(_processes("pass", "pass"), [0, 1]) == 0
