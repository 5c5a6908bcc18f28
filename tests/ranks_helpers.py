"""What the scale-out tests share: mpiexec runs of `nvcaffe train` over loopback, LeNet on small
MNIST-shaped LMDBs, and reading the weights a run ends with."""
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from solver_helpers import random_digits, write_lmdb
from nvcaffe_py.proto import caffe_pb2

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LENET = os.path.join(REPO, "models", "lenet", "lenet_train_test.prototxt")


def mpiexec():
    """The mpiexec beside this Python (the [mpi] extra's MPI wheel puts it there), else on PATH;
    skips with the reason where MPI cannot run."""
    try:
        import mpi4py  # noqa: F401
    except ImportError as exc:
        pytest.skip(f"mpi4py is not installed ({exc}); pip install -e '.[mpi]'")
    beside = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    found = beside if os.path.exists(beside) else shutil.which("mpiexec")
    if not found:
        pytest.skip("no mpiexec: install an MPI (pip install -e '.[mpi]' brings the mpich wheel)")
    return found


def environment(**extra):
    env = dict(os.environ, NVCAFFE_CPU_THREADS="1", GLOG_minloglevel="0", **extra)
    env.pop("NVCAFFE_RANK", None)
    env.pop("NVCAFFE_RANKS", None)
    return env


def train_command(solver, *flags):
    return [sys.executable, "-m", "nvcaffe_py", "train", "-solver", str(solver), *flags]


def run_ranks(ranks, solver, *flags, cwd, timeout=300, env=None):
    """`mpiexec -n ranks nvcaffe train -solver solver flags`, finished; a single process for ranks=None."""
    command = train_command(solver, *flags)
    if ranks is not None:
        command = [mpiexec(), "-n", str(ranks), *command]
    return subprocess.run(command, cwd=cwd, env=env or environment(), capture_output=True, text=True,
                          timeout=timeout)


def lenet_workdir(directory, records=256, batch=16, test=False):
    """directory/ with train_lmdb (and test_lmdb) of random digits and lenet.prototxt reading them."""
    write_lmdb(directory / "train_lmdb", *random_digits(records, seed=3))
    text = open(LENET).read().replace("runs/digits/train_lmdb", "train_lmdb").replace("batch_size: 64",
                                                                                    f"batch_size: {batch}")
    if test:
        write_lmdb(directory / "test_lmdb", *random_digits(40, seed=4))
        text = text.replace("runs/digits/test_lmdb", "test_lmdb").replace("batch_size: 100", "batch_size: 20")
    (directory / "lenet.prototxt").write_text(text)
    return directory


def write_solver(directory, name, max_iter, extra=""):
    """SGD with momentum and weight decay on lenet.prototxt, snapshots under directory/<name>;
    `extra` fields replace the defaults of the same name (a field given twice is an error)."""
    path = directory / f"{name}.prototxt"
    fields = {"net": '"lenet.prototxt"', "base_lr": "0.01", "momentum": "0.9", "weight_decay": "0.0005",
              "lr_policy": '"inv"', "gamma": "0.0001", "power": "0.75", "display": "1", "max_iter": str(max_iter),
              "snapshot": "0", "snapshot_prefix": f'"{name}"', "random_seed": "7", "solver_mode": "CPU"}
    given = set(re.findall(r"(\w+):", extra))
    path.write_text(" ".join(f"{k}: {v}" for k, v in fields.items() if k not in given) + f" {extra}")
    return path


def final_weights(caffemodel):
    net = caffe_pb2.NetParameter()
    with open(caffemodel, "rb") as f:
        net.ParseFromString(f.read())
    return {(layer.name, k): np.array(blob.data, np.float64) for layer in net.layer for k, blob in enumerate(layer.blobs)}


def relative_difference(a, b):
    """The largest |a - b| / |b| over the parameter blobs, each measured by its largest value."""
    return max(np.abs(a[key] - b[key]).max() / np.abs(b[key]).max() for key in b)


def logged_pids(stderr, text):
    """The process ids of the log lines containing `text` (glog's third field)."""
    return {int(m.group(1)) for m in re.finditer(r"^[IWEF]\d{4} \S+ +(\d+) [^\n]*" + re.escape(text), stderr, re.M)}
