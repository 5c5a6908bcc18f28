"""Training iterations on the GPU: our CUDA backend vs PyTorch + cuDNN on the same GPU (TF32 off,
then on), and our CPU backend on the same net on this machine's CPU.

    python benchmarks/gpu_nets.py [--nets alexnet:64,alexnet:256,resnet50:64] [--iterations 10]
                                  [--cpu alexnet:64,resnet50:8] [--cpu-iterations 1] [--json out.json]

An iteration is forward + backward + an SGD-with-momentum update of every parameter, all on the
device for both GPU sides (ours: the real SGD solver, whose GPU path runs solvers/updates.cu).
AlexNet is models/alexnet (PyTorch runs the same prototxt through benchmarks/cpu_nets.py's port);
ResNet-50 is benchmarks/resnet50.py's, which matches torchvision's resnet50 (PyTorch runs that).
PyTorch (benchmark-only) has cuDNN autotuning on. Our CPU backend is slow at these sizes, so it
runs the `--cpu` nets (ResNet-50 at a smaller batch: compare per image), for `--cpu-iterations`
after a warm-up. Per-layer forward/backward times of our GPU
backend are listed too (timed through the Net's callbacks, as `nvcaffe time` does), with the
layers that ran their CPU code marked. The JSON file is rewritten after each net, so a run cut
short keeps what it measured.
"""
import argparse
import json
import os
import time

import numpy as np

import cpu_nets  # the AlexNet prototxt loader and its PyTorch port (this script's folder)
import nvcaffe_py as caffe
import resnet50
from nvcaffe_py import backends, formats
from nvcaffe_py.backends.cuda import context
from nvcaffe_py.layer_timer import LayerTimer
from nvcaffe_py.net_surgery import data_layers_to_inputs
from nvcaffe_py.proto import caffe_pb2

CLASSES = 1000
SHAPES = {"alexnet": (3, 227, 227), "resnet50": resnet50.SHAPE}


def alexnet(batch):
    param = formats.read_net_param(os.path.join(cpu_nets.ROOT, cpu_nets.NETS["alexnet"][0]))
    return data_layers_to_inputs(param, lambda layer: SHAPES["alexnet"], batch)


NET_PARAMS = {"alexnet": alexnet, "resnet50": resnet50.train_net}


def median_ms(step, iterations):
    times = []
    for _ in range(iterations):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


def ours(net, batch, iterations, gpu):
    """(median ms, per-layer times or None): the real solver, `solver.step(1)` being forward +
    backward + SGD update (on the device in GPU mode, where parameters, gradients and history stay)."""
    (caffe.set_mode_gpu if gpu else caffe.set_mode_cpu)()
    solver_param = caffe_pb2.SolverParameter(
        base_lr=0.01, momentum=0.9, lr_policy="fixed", max_iter=10 ** 6, display=0, random_seed=1,
        snapshot_after_train=False, type="SGD",
        solver_mode=caffe_pb2.SolverParameter.GPU if gpu else caffe_pb2.SolverParameter.CPU)
    solver_param.net_param.CopyFrom(NET_PARAMS[net](batch))
    solver = caffe.get_solver(solver_param)
    rng = np.random.default_rng(0)
    solver.net.blobs["data"].data[...] = rng.standard_normal(solver.net.blobs["data"].shape, dtype=np.float32)
    solver.net.blobs["label"].data[...] = rng.integers(0, CLASSES, solver.net.blobs["label"].shape)

    def step():
        solver.step(1)
        backends.synchronize()

    step()  # warm-up: kernel compilation, memory pool, first allocations
    ms = median_ms(step, iterations)
    layers = per_layer(solver.net) if gpu else None
    caffe.set_mode_cpu()
    return ms, layers


def per_layer(net, passes=3):
    """(name, type, on GPU?, forward ms, backward ms) per layer, averaged over `passes` forward +
    backward passes of the Net, each layer synchronised on both sides."""
    with LayerTimer(net) as timer:
        for _ in range(passes):
            net.forward_backward()
    forward_ms, backward_ms = timer.milliseconds(passes)
    return [(name, layer.type, layer.uses_gpu(), forward, backward)
            for name, layer, forward, backward in zip(net.layer_names, net.layers, forward_ms, backward_ms)]


def torch_module(net, batch):
    """The PyTorch model of `net`, called as module(data, label) -> loss."""
    import torch

    if net == "alexnet":
        return cpu_nets.torch_module(alexnet(batch))
    import torchvision

    class WithLoss(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = torchvision.models.resnet50(num_classes=CLASSES)

        def forward(self, data, label):
            return torch.nn.functional.cross_entropy(self.model(data), label)

    return WithLoss()


def torch_gpu(net, batch, iterations, tf32):
    """Median ms of PyTorch's iteration (cuDNN autotuned), with TF32 matrix arithmetic on or off."""
    import torch

    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cudnn.benchmark = True
    torch.manual_seed(1)
    module = torch_module(net, batch).cuda()
    data = torch.randn((batch,) + SHAPES[net], device="cuda")
    label = torch.randint(0, CLASSES, (batch,), device="cuda")
    optimizer = torch.optim.SGD(module.parameters(), lr=0.01, momentum=0.9)

    def step():
        optimizer.zero_grad(set_to_none=True)
        module(data, label).backward()
        optimizer.step()
        torch.cuda.synchronize()

    step()
    step()  # cuDNN autotuning settles on the first calls
    ms = median_ms(step, iterations)
    del module, optimizer, data, label
    torch.cuda.empty_cache()  # leave the memory to the next net
    return ms, torch.__version__


def measure(net, batch, args):
    row = {"net": net, "batch": batch}
    row["ours_gpu_ms"], layers = ours(net, batch, args.iterations, gpu=True)
    try:
        for tf32 in (False, True):
            key = "torch_tf32_ms" if tf32 else "torch_ms"
            row[key], row["torch_version"] = torch_gpu(net, batch, args.iterations, tf32)
        row["ours_vs_torch"] = row["ours_gpu_ms"] / row["torch_ms"]
        row["ours_vs_torch_tf32"] = row["ours_gpu_ms"] / row["torch_tf32_ms"]
    except ImportError as exc:
        print(f"PyTorch is not usable ({exc}): no PyTorch figures")
    return row, layers


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nets", default="alexnet:64,alexnet:256,resnet50:64", help="net:batch,...")
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--cpu", default="alexnet:64,resnet50:8", help="net:batch,... on our CPU backend")
    parser.add_argument("--cpu-iterations", type=int, default=1)
    parser.add_argument("--json", help="write the results to this file (after each net)")
    args = parser.parse_args()
    caffe.set_mode_gpu()
    device = context.describe(0)
    caffe.set_mode_cpu()
    print(f"Training iteration (forward + backward + SGD update), median ms, on {device['name']} "
          f"and {os.cpu_count()} CPU cores")
    result = {"device": device, "cpu_cores": os.cpu_count(), "iterations": args.iterations, "results": [],
              "cpu_results": [], "layers": {}}

    def save():
        if args.json:
            with open(args.json, "w") as f:
                json.dump(result, f, indent=1)

    for item in args.nets.split(","):
        net, batch = item.split(":")
        row, layers = measure(net, int(batch), args)
        result["results"].append(row)
        result["layers"][item] = layers
        print("  " + "  ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()))
        save()
    for item in filter(None, args.cpu.split(",")):
        net, batch = item.split(":")
        ms, _ = ours(net, int(batch), args.cpu_iterations, gpu=False)
        result["cpu_results"].append({"net": net, "batch": int(batch), "ours_cpu_ms": ms})
        print(f"  our CPU backend: {net} batch {batch}: {ms:.0f} ms")
        save()
    for item, layers in result["layers"].items():
        print(f"our GPU backend per layer, {item} (ms forward / backward; * = CPU code), slowest first:")
        for name, kind, on_gpu, fwd, bwd in sorted(layers, key=lambda row: -(row[3] + row[4]))[:12]:
            print(f"  {name:18s} {kind:16s}{' ' if on_gpu else '*'} {fwd:8.2f} {bwd:8.2f}")


if __name__ == "__main__":
    main()
