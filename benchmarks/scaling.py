"""Data-parallel scaling on this machine: training images/s of 1 rank and of 2 ranks (MPI over
loopback, one CPU thread each), the share of a 2-rank iteration spent waiting for the gradient
allreduce, and what layer_wise_reduce (the reduction overlapped with backward) gains over
reducing after backward.

    python benchmarks/scaling.py [--nets lenet,cifar10_quick] [--iterations 30] [--warmup 5] [--rounds 3]

Each net reads an LMDB of random images of its shape through its own Data layer (so dealing
is part of what is timed); CIFAR10-quick's mean file becomes a scale. Efficiency at 2 ranks is
images/s(2) / (2 x images/s(1)); rank 0's CPU time per iteration (all its threads) shows what
the ranks cost in work, apart from waiting for a core. Each configuration runs `rounds` times, alternating with the
others, and its fastest round counts (the machine is shared; the load average is printed). A
worker (`--worker`) runs one configuration and prints one JSON line from rank 0.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
NETS = {  # name: (prototxt, batch, item shape)
    "lenet": ("models/lenet/lenet_train_test.prototxt", 64, (1, 28, 28)),
    "cifar10_quick": ("models/cifar10_quick/cifar10_quick_train_test.prototxt", 100, (3, 32, 32)),
}
SOLVER = ('net: "{net}" base_lr: 0.001 momentum: 0.9 weight_decay: 0.004 lr_policy: "fixed" display: 0 '
          'max_iter: 100000 snapshot: 0 snapshot_after_train: false random_seed: 1 solver_mode: CPU '
          'layer_wise_reduce: {layer_wise}')


def prepare(name, directory):
    """directory/<name>.prototxt reading directory/<name>_lmdb (4 batches of random images)."""
    from solver_helpers import write_lmdb
    path, batch, shape = NETS[name]
    images = np.random.default_rng(0).integers(0, 256, size=(4 * batch, *shape), dtype=np.uint8)
    write_lmdb(os.path.join(directory, f"{name}_lmdb"), images, np.arange(len(images)) % 10)
    text = open(os.path.join(ROOT, path)).read()
    for line in [l for l in text.splitlines() if "source:" in l or "mean_file:" in l]:
        replacement = (f'    source: "{directory}/{name}_lmdb"' if "source:" in line else "    scale: 0.00390625")
        text = text.replace(line, replacement)
    net = os.path.join(directory, f"{name}.prototxt")
    open(net, "w").write(text)
    return net


def worker(net, layer_wise, warmup, iterations):
    import nvcaffe_py as caffe
    from nvcaffe_py.proto import caffe_pb2
    from nvcaffe_py.scaleout import data_parallel, world
    from google.protobuf import text_format

    param = text_format.Parse(SOLVER.format(net=net, layer_wise=str(layer_wise).lower()), caffe_pb2.SolverParameter())
    ranks = world.from_environment()
    training = data_parallel.join(ranks) if ranks else None
    solver = training.build(lambda seed: caffe.get_solver(param)) if training else caffe.get_solver(param)
    solver.step(warmup)
    reducer = training.reducer if training else None
    waited = reducer.wait_seconds if reducer else 0.0
    started, cpu_started = time.perf_counter(), time.process_time()
    solver.step(iterations)
    seconds = (time.perf_counter() - started) / iterations
    cpu_seconds = (time.process_time() - cpu_started) / iterations
    if caffe.solver_rank() == 0:
        batch = solver.net.blobs["data"].shape[0]
        wait = ((reducer.wait_seconds - waited) / iterations) if reducer else 0.0
        print(json.dumps({"ranks": caffe.solver_count(), "ms_per_iter": seconds * 1e3, "cpu_ms_per_iter": cpu_seconds * 1e3,
                          "images_per_s": batch * caffe.solver_count() / seconds,
                          "wait_share": wait / seconds}), flush=True)


def run(command, env):
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1800)
    if result.returncode:
        sys.exit(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nets", default="lenet,cifar10_quick")
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--worker", nargs=2, metavar=("NET", "LAYER_WISE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker[0], args.worker[1] == "1", args.warmup, args.iterations)
        return
    mpiexec = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    # One thread per rank, BLAS's included (a lone process would otherwise use a BLAS thread per core).
    env = dict(os.environ, NVCAFFE_CPU_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1",
               OMP_NUM_THREADS="1", GLOG_minloglevel="1")
    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores\n")
    print("| net | configuration | ms/iteration | rank 0's CPU ms/iteration | images/s | efficiency | "
          "allreduce wait share |")
    print("|---|---|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as directory:
        for name in args.nets.split(","):
            net = prepare(name, directory)
            worker_args = [sys.executable, __file__, "--iterations", str(args.iterations), "--warmup",
                           str(args.warmup), "--worker", net]
            configurations = {"1 rank": worker_args + ["1"],
                              "2 ranks, layer_wise_reduce on": [mpiexec, "-n", "2", *worker_args, "1"],
                              "2 ranks, layer_wise_reduce off": [mpiexec, "-n", "2", *worker_args, "0"]}
            best = {}
            for _ in range(args.rounds):
                for what, command in configurations.items():
                    result = run(command, env)
                    if what not in best or result["ms_per_iter"] < best[what]["ms_per_iter"]:
                        best[what] = result
            one = best["1 rank"]
            for what, r in best.items():
                efficiency = r["images_per_s"] / (r["ranks"] * one["images_per_s"])
                print(f"| {name} | {what} | {r['ms_per_iter']:.1f} | {r['cpu_ms_per_iter']:.1f} | "
                      f"{r['images_per_s']:.0f} | {efficiency:.0%} | "
                      f"{r['wait_share']:.1%} |", flush=True)


if __name__ == "__main__":
    main()
