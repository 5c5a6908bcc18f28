"""Data-parallel training over MPI (2 CPU ranks over loopback, `mpiexec -n 2 nvcaffe train`):
N ranks with batch b end where one process with iter_size N does."""
import numpy as np

from ranks_helpers import final_weights, lenet_workdir, relative_difference, run_ranks, write_solver


def _train(tmp_path, ranks, name, max_iter, extra=""):
    result = run_ranks(ranks, write_solver(tmp_path, name, max_iter, extra), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    return result, final_weights(tmp_path / f"{name}_iter_{max_iter}.caffemodel")


def test_two_ranks_end_where_one_process_with_iter_size_two_does(tmp_path):
    """The issue's main check: 20 LeNet iterations with momentum and weight decay."""
    lenet_workdir(tmp_path)
    _, ranks = _train(tmp_path, 2, "ranks", 20)
    _, single = _train(tmp_path, None, "single", 20, "iter_size: 2")
    _, start = _train(tmp_path, None, "start", 0)
    assert relative_difference(ranks, single) <= 1e-4
    assert relative_difference(start, single) > 1e-2  # training moved the weights far beyond that


def test_without_layer_wise_reduce_and_with_iter_size(tmp_path):
    """2 ranks x iter_size 2 (reduced once, after both passes) = one process with iter_size 4."""
    lenet_workdir(tmp_path, batch=8)
    _, ranks = _train(tmp_path, 2, "ranks", 6, "iter_size: 2 layer_wise_reduce: false")
    _, single = _train(tmp_path, None, "single", 6, "iter_size: 4")
    assert relative_difference(ranks, single) <= 1e-4
    _, layer_wise = _train(tmp_path, 2, "layer_wise", 6, "iter_size: 2")
    assert relative_difference(layer_wise, single) <= 1e-4
