"""The `nvcaffe` console script, run in a subprocess as a user runs it: train (and its log as Caffe's
log parsers read it), resume, fine-tune, test, time, device_query, the gflags spellings, bad
flags, missing files, GPU requests on a machine without one, NaN losses, Ctrl-C and SIGHUP."""
import importlib.machinery
import importlib.metadata
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import types

import numpy as np
import pytest

import nvcaffe_py as caffe
from nvcaffe_py import cli, formats
from nvcaffe_py.backends import cuda_unavailable_reason

from solver_helpers import classifier_text, write_lmdb

GLOG_LINE = re.compile(r"^[IWEF]\d{4} \d\d:\d\d:\d\d\.\d{6} +\d+ [\w.]+:\d+\] ")
# The regexes of Caffe's tools/extra/parse_log.py.
PARSE_LOG = {
    "iteration": re.compile(r"Iteration (\d+)"),
    "train_output": re.compile(r"Train net output #(\d+): (\S+) = ([\.\deE+-]+)"),
    "test_output": re.compile(r"Test net output #(\d+): (\S+) = ([\.\deE+-]+)"),
    "learning_rate": re.compile(r"lr = ([-+]?[0-9]*\.?[0-9]+([eE]?[-+]?[0-9]+)?)"),
}
NO_GPU = cuda_unavailable_reason() is not None


def nvcaffe(*args, cwd, **kwargs):
    script = shutil.which("nvcaffe")
    if script is None:
        pytest.skip("the nvcaffe console script is not installed (pip install -e .)")
    env = {k: v for k, v in os.environ.items() if k != "GLOG_minloglevel"}
    return subprocess.run([script, *args], cwd=cwd, capture_output=True, text=True, timeout=120, env=env, **kwargs)


def log_lines(stderr):
    """The glog lines of `stderr`, checking that every other line belongs to a parameter dump
    (`Initializing net from parameters: ` and the text proto under it, as Caffe logs it)."""
    lines, in_dump = [], False
    for line in stderr.splitlines():
        if GLOG_LINE.match(line):
            lines.append(line)
            in_dump = line.endswith(" from parameters: ")
        else:
            assert in_dump, f"not a log line: {line!r}"
    assert lines
    return lines


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A classifier on a small LMDB, its solver (10 iterations, tested every 5) and a trained model."""
    path = tmp_path_factory.mktemp("cli")
    images = np.random.default_rng(3).integers(0, 256, size=(32, 1, 4, 4), dtype=np.uint8)
    write_lmdb(path / "lmdb", images, np.arange(32) % 3)
    (path / "net.prototxt").write_text(classifier_text("lmdb", 8))
    (path / "solver.prototxt").write_text(
        'net: "net.prototxt" test_iter: 2 test_interval: 5 base_lr: 0.1 momentum: 0.9 lr_policy: "step" '
        'gamma: 0.5 stepsize: 4 display: 5 max_iter: 10 snapshot: 10 snapshot_prefix: "snap/tiny" '
        'solver_mode: CPU random_seed: 1')
    (path / "snap").mkdir()
    return path


def test_train_writes_snapshots_and_a_log_that_caffe_parsers_read(workdir):
    result = nvcaffe("train", "-solver", "solver.prototxt", cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert (workdir / "snap/tiny_iter_10.caffemodel").exists()
    assert (workdir / "snap/tiny_iter_10.solverstate").exists()
    lines = log_lines(result.stderr)
    assert "\r" not in result.stderr  # no live progress line in a pipe
    assert any("] Solving tiny" in line for line in lines)  # parse_log's start-time anchor
    found = {key: [m for m in map(regex.search, lines) if m] for key, regex in PARSE_LOG.items()}
    assert {m.group(2) for m in found["train_output"]} == {"loss"}
    assert {m.group(2) for m in found["test_output"]} == {"accuracy", "loss"}
    assert [float(m.group(1)) for m in found["learning_rate"]] == [0.1, 0.05]  # iterations 0 and 5
    display = [line for line in lines if re.search(r"Iteration \d+ \([\d.e+-]+ iter/s, [\d.e+-]+s/5 iters\), "
                                                   r"loss = [\d.e+-]+$", line)]
    assert [PARSE_LOG["iteration"].search(line).group(1) for line in display] == ["0", "5"]
    testing = [PARSE_LOG["iteration"].search(line).group(1) for line in lines if "Testing net (#0)" in line]
    assert testing == ["0", "5", "10"]
    assert any(re.search(r"    Train net output #0: loss = \S+ \(\* 1 = \S+ loss\)$", line) for line in lines)
    assert any("Snapshotting to binary proto file snap/tiny_iter_10.caffemodel" in line for line in lines)
    assert lines[-1].endswith("Optimization Done.")


@pytest.mark.parametrize("spelling", [["-solver", "solver.prototxt"], ["--solver", "solver.prototxt"],
                                      ["--solver=solver.prototxt"], ["-solver=solver.prototxt"]])
def test_gflags_spellings(workdir, spelling):
    result = nvcaffe("train", *spelling, "--iterations=1", cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert "Optimization Done." in result.stderr
    assert (workdir / "snap/tiny_iter_1.caffemodel").exists()


def test_resume_and_finetune(workdir):
    assert nvcaffe("train", "-solver", "solver.prototxt", "-iterations", "4", cwd=workdir).returncode == 0
    resumed = nvcaffe("train", "-solver", "solver.prototxt", "-snapshot", "snap/tiny_iter_4.solverstate", cwd=workdir)
    assert resumed.returncode == 0, resumed.stderr
    assert "Restoring previous solver status from snap/tiny_iter_4.solverstate" in resumed.stderr
    assert "Iteration 0," not in resumed.stderr and "Iteration 5 (" in resumed.stderr
    tuned = nvcaffe("train", "-solver", "solver.prototxt", "-weights", "snap/tiny_iter_4.caffemodel",
                    "-iterations", "2", cwd=workdir)
    assert tuned.returncode == 0, tuned.stderr
    assert "Finetuning from snap/tiny_iter_4.caffemodel" in tuned.stderr
    both = nvcaffe("train", "-solver", "solver.prototxt", "-weights", "a.caffemodel", "-snapshot", "b.solverstate",
                   cwd=workdir)
    assert both.returncode == 1 and "not both" in both.stderr and "usage:" in both.stderr


def test_the_setup_dump_the_log_dir_and_ignored_layers(workdir):
    """Caffe's INFO habits: the solver and net parameters, each layer's tops, the memory for data,
    the backward analysis; `Ignoring source layer` for weights the net lacks; -log_dir's file."""
    assert nvcaffe("train", "-solver", "solver.prototxt", "-iterations", "1", cwd=workdir).returncode == 0
    weights = formats.read_caffemodel(workdir / "snap/tiny_iter_1.caffemodel")
    weights.layer.add(name="old_fc", type="InnerProduct").blobs.add().data.append(1.0)
    formats.write_binary(workdir / "extra.caffemodel", weights)
    result = nvcaffe("train", "-solver", "solver.prototxt", "-weights", "extra.caffemodel", "-iterations", "1",
                     "-log_dir", "logs", cwd=workdir)
    assert result.returncode == 0, result.stderr
    lines = [line.split("] ", 1)[1] for line in log_lines(result.stderr)]
    for expected in ("Initializing solver from parameters: ", "Initializing net from parameters: ",
                     "Creating Layer ip1", "ip1 <- data", "ip1 -> ip1", "Setting up ip1", "Top shape: 8 1 4 4 (128)",
                     "Top shape: 8 5 (40)", "Top shape: (1)", "    with loss weight 1", "Memory required for data: 964",
                     "loss needs backward computation.", "data does not need backward computation.",
                     "This network produces output loss", "Network initialization done.",
                     "Ignoring source layer old_fc"):
        assert expected in lines, expected
    log_file = workdir / "logs" / "nvcaffe.INFO"
    assert log_file.is_symlink() and log_file.resolve().name.startswith("nvcaffe.")
    header, body = log_file.read_text().split("msg\n", 1)
    assert header.startswith("Log file created at: ") and body == result.stderr


def test_test_scores_a_model(workdir):
    nvcaffe("train", "-solver", "solver.prototxt", "-iterations", "2", cwd=workdir)
    result = nvcaffe("test", "-model", "net.prototxt", "-weights", "snap/tiny_iter_2.caffemodel",
                     "-iterations", "3", cwd=workdir)
    assert result.returncode == 0, result.stderr
    for i in range(3):
        assert re.search(rf"\] Batch {i}, accuracy = [\d.]+\n", result.stderr)
        assert re.search(rf"\] Batch {i}, loss = [\d.]+\n", result.stderr)
    assert re.search(r"\] Loss: [\d.]+\n", result.stderr)
    assert re.search(r"\] accuracy = [\d.]+\n", result.stderr)
    assert re.search(r"\] loss = [\d.]+ \(\* 1 = [\d.]+ loss\)\n", result.stderr)


def test_time_prints_each_layer_and_the_totals(workdir):
    result = nvcaffe("time", "-model", "net.prototxt", "-iterations", "2", cwd=workdir)
    assert result.returncode == 0, result.stderr
    for layer in ("data", "ip1", "relu1", "ip2", "loss"):
        assert re.search(rf"\] +{layer}\tforward: [\d.e+-]+ ms\.\n", result.stderr), layer
        assert re.search(rf"\] +{layer}\tbackward: [\d.e+-]+ ms\.\n", result.stderr), layer
    for total in ("Average Forward pass", "Average Backward pass", "Average Forward-Backward", "Total Time"):
        assert re.search(rf"\] {total}: [\d.e+-]+ ms\.\n", result.stderr), total
    assert "Iteration: 2 forward-backward time:" in result.stderr


def test_compare_prints_both_tables_and_the_speed_up(workdir):
    result = nvcaffe("time", "-model", "net.prototxt", "-iterations", "1", "--compare", "cpu,cpu", cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("*** Benchmark ends ***") == 2
    assert re.search(r"\] +layer +cpu fwd ms +cpu fwd ms +speed-up +cpu bwd ms +cpu bwd ms +speed-up\n", result.stderr)
    times = r"( +[\d.]+){2} +([\d.]+x|-)"
    for layer in ("data", "ip1", "relu1", "ip2", "loss", "total"):
        assert re.search(rf"\] +{layer}{times}{times}\n", result.stderr), layer


def test_compare_needs_two_known_backends(workdir):
    result = nvcaffe("time", "-model", "net.prototxt", "--compare", "cpu,tpu", cwd=workdir)
    assert result.returncode == 1 and "--compare takes two backends" in result.stderr


@pytest.mark.skipif(not NO_GPU, reason="a GPU is usable here")
@pytest.mark.parametrize("args", [["train", "-solver", "solver.prototxt", "-gpu", "0"],
                                  ["test", "-model", "net.prototxt", "-weights", "x", "-gpu", "all"],
                                  ["time", "-model", "net.prototxt", "--compare", "cpu,gpu", "-iterations", "1"]])
def test_gpu_requests_fail_in_one_line_without_a_gpu(workdir, args):
    result = nvcaffe(*args, cwd=workdir)
    assert result.returncode == 1
    error = [line for line in result.stderr.splitlines() if not GLOG_LINE.match(line)]
    assert len(error) == 1 and error[0].startswith("nvcaffe: error: GPU mode requested but no GPU is usable: ")
    assert "Traceback" not in result.stderr


@pytest.mark.skipif(not NO_GPU, reason="a GPU is usable here")
def test_device_query_says_why_there_is_no_gpu(workdir):
    result = nvcaffe("device_query", cwd=workdir)
    assert result.returncode == 1
    assert result.stderr.strip() == f"nvcaffe: error: no usable GPU: {cuda_unavailable_reason()}"


def test_solver_mode_gpu_falls_back_to_the_cpu_with_a_warning(workdir):
    text = (workdir / "solver.prototxt").read_text().replace("solver_mode: CPU", "solver_mode: GPU")
    (workdir / "gpu_solver.prototxt").write_text(text)
    result = nvcaffe("train", "-solver", "gpu_solver.prototxt", "-iterations", "1", cwd=workdir)
    assert result.returncode == 0, result.stderr
    if NO_GPU:
        assert re.search(r"\n?W\d{4} .*solver_mode is GPU but no GPU is usable .*; training on the CPU", result.stderr)


@pytest.mark.parametrize("args,message", [
    (["train", "-solver", "solver.prototxt", "-bogus", "1"], "unknown flag -bogus (flags: -help, -solver, -weights"),
    (["train", "-solvr", "solver.prototxt"], "unknown flag -solvr; did you mean -solver?"),
    (["test", "-model", "net.prototxt", "extra"], "unrecognized arguments: extra"),
    (["train", "-solver"], "expected one argument"),
    (["test", "-model", "net.prototxt", "-weights", "w", "-iterations", "many"], "invalid int value: 'many'"),
    (["train"], "train needs -solver"),
    (["train", "-solver", "solver.prototxt", "-sigint_effect", "explode"], "-sigint_effect must be"),
    (["time", "-model", "net.prototxt", "-phase", "VAL"], "-phase must be TRAIN or TEST"),
    (["frobnicate"], "unknown command 'frobnicate'"),
    ([], "usage: nvcaffe <command>"),
])
def test_bad_command_lines_print_usage_and_exit_1(workdir, args, message):
    result = nvcaffe(*args, cwd=workdir)
    assert result.returncode == 1
    assert message in result.stderr and "usage: nvcaffe" in result.stderr
    assert "Traceback" not in result.stderr


def test_version_and_did_you_mean_for_commands(capsys):
    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out == f"nvcaffe version {importlib.metadata.version('nvcaffe_py')}\n"
    for typo, command in (("trian", "train"), ("parse_logs", "parse_log"), ("drawnet", "draw_net")):
        assert cli.main([typo]) == 1
        assert capsys.readouterr().err == f"nvcaffe: unknown command '{typo}'; did you mean '{command}'?\n"


def test_missing_solver_file_is_one_clear_line(workdir):
    result = nvcaffe("train", "--solver=nope.prototxt", cwd=workdir)
    assert result.returncode == 1
    assert result.stderr == "nvcaffe: error: nope.prototxt: no such file\n"


def test_nan_loss_exits_1_naming_the_iteration_and_layer(tmp_path):
    (tmp_path / "net.prototxt").write_text("""
        layer { name: "t" type: "DummyData" top: "t"
                dummy_data_param { shape { dim: 1 dim: 2 } data_filler { type: "constant" value: -1 } } }
        layer { name: "w" type: "Parameter" top: "w" parameter_param { shape { dim: 1 dim: 2 } } }
        layer { name: "log" type: "Log" bottom: "w" top: "y" }
        layer { name: "loss" type: "EuclideanLoss" bottom: "y" bottom: "t" top: "loss" }""")
    (tmp_path / "solver.prototxt").write_text('net: "net.prototxt" base_lr: 1 lr_policy: "fixed" max_iter: 5 '
                                              'solver_mode: CPU')
    result = nvcaffe("train", "-solver", "solver.prototxt", cwd=tmp_path)
    assert result.returncode == 1
    assert ("nvcaffe: error: iteration 0: loss is inf; layer 'log' (Log) is the first whose output ('y') is not "
            "finite. Training stopped; no snapshot was written") in result.stderr
    assert not list(tmp_path.glob("*.caffemodel"))


def _lines(stream):
    """A queue fed with a stream's lines by a thread, so that waiting for one can time out."""
    lines = queue.Queue()

    def pump():
        for line in stream:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    return lines


def _wait_for(lines, pattern, seen, timeout=60):
    while True:
        line = lines.get(timeout=timeout)
        if line is None:
            raise AssertionError(f"the process ended before printing {pattern!r}:\n{''.join(seen)}")
        seen.append(line)
        if re.search(pattern, line):
            return line


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="POSIX signals")
def test_sighup_snapshots_and_ctrl_c_stops_cleanly_with_a_snapshot(workdir):
    (workdir / "long_solver.prototxt").write_text(
        'net: "net.prototxt" base_lr: 0.01 lr_policy: "fixed" display: 1 max_iter: 1000000 '
        'snapshot_prefix: "snap/long" solver_mode: CPU')
    proc = subprocess.Popen([shutil.which("nvcaffe") or pytest.skip("no console script"), "train",
                             "-solver", "long_solver.prototxt"],
                            cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        lines, seen = _lines(proc.stderr), []
        _wait_for(lines, r"Iteration 3 \(", seen)
        proc.send_signal(signal.SIGHUP)  # default effect: snapshot, and go on
        hup = int(re.search(r"snap/long_iter_(\d+)\.caffemodel", _wait_for(lines, r"Snapshotting to", seen)).group(1))
        _wait_for(lines, rf"Iteration {hup + 2} \(", seen)
        proc.send_signal(signal.SIGINT)  # default effect: stop, writing the final snapshot
        assert proc.wait(timeout=60) == 0, "".join(seen)
    finally:
        proc.kill()
    while (line := lines.get(timeout=10)) is not None:
        seen.append(line)
    log = "".join(seen)
    assert "Optimization stopped early." in log
    stopped = int(re.findall(r"Iteration (\d+): stop requested", log)[-1])
    assert stopped > hup
    for it in (hup, stopped):
        assert (workdir / f"snap/long_iter_{it}.caffemodel").exists()
        assert (workdir / f"snap/long_iter_{it}.solverstate").exists()


def test_python_dash_m_runs_the_same_command(workdir):
    result = subprocess.run([sys.executable, "-m", "nvcaffe_py", "train", "-solver", "solver.prototxt",
                             "-iterations", "1"], cwd=workdir, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "Optimization Done." in result.stderr


def test_data_tools_are_listed_and_dispatched(monkeypatch, capsys):
    """`nvcaffe <tool> args` hands args to nvcaffe_py.tools.<tool>.main and exits with its status."""
    calls = []
    tool = types.ModuleType("nvcaffe_py.tools.fake_tool")
    tool.__spec__ = importlib.machinery.ModuleSpec(tool.__name__, None)
    tool.main = lambda argv: calls.append(argv) or 3
    monkeypatch.setitem(sys.modules, tool.__name__, tool)
    assert cli.main(["fake_tool", "-x", "1", "positional"]) == 3
    assert calls == [["-x", "1", "positional"]]
    assert cli.main(["gflags"]) == 1  # a tools module without main() is no command
    assert "unknown command 'gflags'" in capsys.readouterr().err
    monkeypatch.setattr(cli, "_tool_names", lambda: {"fake_tool": "does fake things"})
    assert cli.main(["--help"]) == 0
    assert re.search(r"\n  fake_tool +does fake things", capsys.readouterr().out)


TINY_NET = """
layer { name: "t" type: "DummyData" top: "t"
        dummy_data_param { shape { dim: 2 dim: 3 } data_filler { type: "gaussian" } } }
layer { name: "w" type: "Parameter" top: "w" parameter_param { shape { dim: 2 dim: 3 } } }
layer { name: "loss" type: "EuclideanLoss" bottom: "w" bottom: "t" top: "loss" }
"""


def tiny_solver(tmp_path, max_iter=3):
    (tmp_path / "net.prototxt").write_text(TINY_NET)
    path = tmp_path / "solver.prototxt"
    path.write_text(f'net: "net.prototxt" base_lr: 0.1 lr_policy: "fixed" display: 1 max_iter: {max_iter} '
                    f'solver_mode: CPU snapshot_after_train: false')
    return path


class _Terminal:
    """A stand-in for stderr on a terminal."""

    def __init__(self):
        self.text = ""

    def write(self, text):
        self.text += text

    def flush(self):
        pass

    def isatty(self):
        return True


def test_live_progress_lines_with_rate_and_eta_only_on_a_terminal(tmp_path, monkeypatch):
    """Training, its test passes, `test` and `time` draw a status line on a terminal (the log
    keeps Caffe's lines; in a pipe there is none, see test_train_writes_snapshots...)."""
    monkeypatch.chdir(tmp_path)
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    solver = tiny_solver(tmp_path)
    solver.write_text(solver.read_text() + " test_iter: 2 test_interval: 3")
    assert cli.main(["train", "-solver", str(solver)]) == 0
    # the last state is always drawn
    assert re.search(r"\rIteration 3/3 \([\d.e+]+ iter/s, ETA 0s\), loss = ", terminal.text), terminal.text
    assert re.search(r"\rTesting net #0: batch 2/2 \([\d.e+]+ batches/s, ETA \w+\)", terminal.text)
    caffe.Net("net.prototxt", caffe.TEST).save("w.caffemodel")
    assert cli.main(["test", "-model", "net.prototxt", "-weights", "w.caffemodel", "-iterations", "2"]) == 0
    assert re.search(r"\rBatch 2/2 \([\d.e+]+ batches/s, ETA 0s\)", terminal.text)
    assert cli.main(["time", "-model", "net.prototxt", "-iterations", "2"]) == 0
    assert re.search(r"\rIteration 2/2 \([\d.e+]+ iter/s, ETA 0s\)", terminal.text)
    # and every log line starts on a fresh line: the status line is erased before it
    for chunk in terminal.text.split("\n")[:-1]:
        assert "\r" not in chunk or chunk.rsplit("\r", 1)[1].lstrip("\x1b[K").startswith(("I", "W")), chunk


def test_glog_minloglevel_silences_info_lines(tmp_path):
    tiny_solver(tmp_path)
    script = shutil.which("nvcaffe") or pytest.skip("no console script")
    result = subprocess.run([script, "train", "-solver", "solver.prototxt"], cwd=tmp_path, capture_output=True,
                            text=True, timeout=120, env={**os.environ, "GLOG_minloglevel": "1"})
    assert result.returncode == 0 and result.stderr == ""


def test_time_names_the_steps_of_the_deploy_time_forward(tmp_path):
    """A TEST net that needs no backward runs its deploy-time forward: a step of several layers
    is timed under its first, and `time` says which layers each such step runs."""
    (tmp_path / "deploy.prototxt").write_text("""
input: "data" input_shape { dim: 2 dim: 6 }
layer { name: "ip1" type: "InnerProduct" bottom: "data" top: "ip1" inner_product_param { num_output: 4 } }
layer { name: "bn1" type: "BatchNorm" bottom: "ip1" top: "ip1" }
layer { name: "relu1" type: "ReLU" bottom: "ip1" top: "ip1" }
layer { name: "ip2" type: "InnerProduct" bottom: "ip1" top: "ip2" inner_product_param { num_output: 3 } }
""")
    result = nvcaffe("time", "-model", "deploy.prototxt", "-phase", "TEST", "-iterations", "1", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert re.search(r"\] The deploy-time forward runs these layers as one step each, timed under the first: "
                     r"ip1 \.\. (relu1|ip2)", result.stderr), result.stderr[-2000:]
    result = nvcaffe("time", "-model", "deploy.prototxt", "-phase", "TEST", "-iterations", "1", "-optimize=false",
                     cwd=tmp_path)
    assert result.returncode == 0 and "deploy-time forward runs" not in result.stderr
