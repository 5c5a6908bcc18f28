"""AlexNet training iterations on the GPU: our CUDA backend vs PyTorch on the same GPU, and our
CPU backend on this machine's CPU, at batch 64, 128 and 256.

    python benchmarks/gpu_nets.py [--batches 64,128,256] [--iterations 20] [--cpu-batches 64]
                                  [--cpu-iterations 1] [--json out.json]

An iteration is forward + backward + an SGD-with-momentum update of every parameter, all on the
device for both GPU sides (ours: the real SGD solver, whose GPU path runs solvers/updates_gpu.py). PyTorch (benchmark-only) runs the same
prototxt (benchmarks/cpu_nets.py builds it) with TF32 off and cuDNN autotuning on. Our CPU
backend is slow at these sizes, so it runs only `--cpu-batches` for `--cpu-iterations`; the CPU
figure the issue compares with is benchmarks/cpu_nets.py's on the 2-core machine (another machine:
state both when quoting the ratio). Per-layer forward/backward times of our GPU backend at the
largest batch are listed too (timed through the Net's callbacks, as `nvcaffe time` does), with
the layers that ran their CPU code marked.
"""
import argparse
import json
import os
import time

import numpy as np

import cpu_nets  # the AlexNet prototxt loader and its PyTorch port (this script's folder)
import nvcaffe_py as caffe
from nvcaffe_py import backends, formats
from nvcaffe_py.backends.cuda import context
from nvcaffe_py.layer_timer import LayerTimer
from nvcaffe_py.net_surgery import data_layers_to_inputs
from nvcaffe_py.proto import caffe_pb2

SHAPE, CLASSES = (3, 227, 227), 1000


def alexnet(batch):
    param = formats.read_net_param(os.path.join(cpu_nets.ROOT, cpu_nets.NETS["alexnet"][0]))
    return data_layers_to_inputs(param, lambda layer: SHAPE, batch)


def ours(batch, iterations, gpu):
    """Times the real solver: `solver.step(1)` is forward + backward + SGD update (on the device in
    GPU mode, where parameters, gradients and history stay)."""
    (caffe.set_mode_gpu if gpu else caffe.set_mode_cpu)()
    solver_param = caffe_pb2.SolverParameter(
        base_lr=0.01, momentum=0.9, lr_policy="fixed", max_iter=10 ** 6, display=0, random_seed=1,
        snapshot_after_train=False, type="SGD",
        solver_mode=caffe_pb2.SolverParameter.GPU if gpu else caffe_pb2.SolverParameter.CPU)
    solver_param.net_param.CopyFrom(alexnet(batch))
    solver = caffe.get_solver(solver_param)
    net = solver.net
    rng = np.random.default_rng(0)
    net.blobs["data"].data[...] = rng.standard_normal(net.blobs["data"].shape, dtype=np.float32)
    net.blobs["label"].data[...] = rng.integers(0, CLASSES, net.blobs["label"].shape)

    def step():
        solver.step(1)
        backends.synchronize()

    step()  # warm-up: kernel compilation, memory pool, first allocations
    times = []
    for _ in range(iterations):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    layer_times = per_layer(net) if gpu else None
    caffe.set_mode_cpu()
    return times, layer_times


def per_layer(net, passes=3):
    """(name, type, on GPU?, forward ms, backward ms) per layer, averaged over `passes` forward +
    backward passes of the Net, each layer synchronised on both sides."""
    with LayerTimer(net) as timer:
        for _ in range(passes):
            net.forward_backward()
    forward_ms, backward_ms = timer.milliseconds(passes)
    return [(name, layer.type, layer.uses_gpu(), forward, backward)
            for name, layer, forward, backward in zip(net.layer_names, net.layers, forward_ms, backward_ms)]


def torch_gpu(batch, iterations):
    import torch

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = True
    torch.manual_seed(1)
    module = cpu_nets.torch_module(alexnet(batch)).cuda()
    data = torch.randn((batch,) + SHAPE, device="cuda")
    label = torch.randint(0, CLASSES, (batch,), device="cuda")
    optimizer = torch.optim.SGD(module.parameters(), lr=0.01, momentum=0.9)

    def step():
        optimizer.zero_grad(set_to_none=True)
        module(data, label).backward()
        optimizer.step()
        torch.cuda.synchronize()

    step()
    step()  # cuDNN autotuning settles on the first calls
    times = []
    for _ in range(iterations):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return times, torch.__version__


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", default="64,128,256")
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--cpu-batches", default="64", help="batches for our CPU backend ('' for none)")
    parser.add_argument("--cpu-iterations", type=int, default=1)
    parser.add_argument("--json", help="write the results to this file")
    args = parser.parse_args()
    caffe.set_mode_gpu()
    device = context.describe(0)
    caffe.set_mode_cpu()
    print(f"AlexNet training iteration (forward + backward + SGD update), median ms, on {device['name']} "
          f"and {os.cpu_count()} CPU cores")
    rows, layers = [], None
    cpu_batches = {int(b) for b in args.cpu_batches.split(",") if b}
    for batch in (int(b) for b in args.batches.split(",")):
        row = {"batch": batch}
        gpu_times, layers = ours(batch, args.iterations, gpu=True)
        row["ours_gpu_ms"] = 1000 * float(np.median(gpu_times))
        try:
            torch_times, version = torch_gpu(batch, args.iterations)
            row["torch_gpu_ms"], row["torch_version"] = 1000 * float(np.median(torch_times)), version
            row["ours_vs_torch"] = row["ours_gpu_ms"] / row["torch_gpu_ms"]
        except ImportError:
            print("PyTorch is not importable: no PyTorch figures")
        if batch in cpu_batches:
            cpu_times, _ = ours(batch, args.cpu_iterations, gpu=False)
            row["ours_cpu_ms"] = 1000 * float(np.median(cpu_times))
            row["cpu_vs_gpu"] = row["ours_cpu_ms"] / row["ours_gpu_ms"]
        rows.append(row)
        print("  " + "  ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()))
    if layers:
        print(f"our GPU backend per layer at batch {rows[-1]['batch']} (ms forward / backward; * = CPU code):")
        for name, kind, on_gpu, fwd, bwd in layers:
            print(f"  {name:10s} {kind:16s}{' ' if on_gpu else '*'} {fwd:8.2f} {bwd:8.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": device, "cpu_cores": os.cpu_count(), "iterations": args.iterations,
                       "results": rows, "layers_at_largest_batch": layers}, f, indent=1)


if __name__ == "__main__":
    main()
