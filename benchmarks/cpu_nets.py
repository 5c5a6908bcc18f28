"""CPU training-iteration times: our NumPy backend vs PyTorch's CPU build, same nets, same run.

    python benchmarks/cpu_nets.py [--nets lenet,cifar10_quick,alexnet] [--iterations N] [--rounds R]

Each net runs in its own subprocess so that its peak memory (max RSS) is its own. PyTorch is
used only when importable (`pip install torch==2.13.0`); it is never a dependency. The PyTorch
net is built from the same prototxt (conv, pooling with Caffe's ceil rounding, LRN, ReLU,
dropout, inner product, softmax loss), with the same batch size.
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

import nvcaffe_py as caffe
from nvcaffe_py import formats
from nvcaffe_py.net_state import filter_net, make_state
from nvcaffe_py.net_surgery import data_layers_to_inputs
from nvcaffe_py.proto import caffe_pb2

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NETS = {
    # name: (prototxt, batch, per-item input shape, classes)
    "lenet": ("models/lenet/lenet_train_test.prototxt", 64, (1, 28, 28), 10),
    "cifar10_quick": ("models/cifar10_quick/cifar10_quick_train_test.prototxt", 100, (3, 32, 32), 10),
    "alexnet": ("models/alexnet/train_val.prototxt", 64, (3, 227, 227), 1000),
}


def load_train_net_param(name):
    path, batch, shape, _ = NETS[name]
    param = formats.read_net_param(os.path.join(ROOT, path))
    return data_layers_to_inputs(param, lambda layer: shape, batch)


def time_ours(name, iterations):
    caffe.set_random_seed(1)
    net = caffe.Net(load_train_net_param(name), caffe.TRAIN)
    rng = np.random.default_rng(0)
    classes = NETS[name][3]
    net.blobs["data"].data[...] = rng.standard_normal(net.blobs["data"].shape)
    net.blobs["label"].data[...] = rng.integers(0, classes, net.blobs["label"].shape)
    net.forward_backward()  # warm-up
    times = []
    for _ in range(iterations):
        start = time.perf_counter()
        net.clear_param_diffs()
        net.forward_backward()
        times.append(time.perf_counter() - start)
    return times


def torch_module(net_param):
    """A torch.nn.Module equivalent to the TRAIN net (the layer types these benchmark nets use)."""
    import torch
    import torch.nn.functional as F

    layers = filter_net(net_param, make_state(net_param, caffe_pb2.TRAIN)).layer
    shapes = {}
    modules = torch.nn.ModuleDict()
    steps = []
    for layer in layers:
        if layer.type == "Input":
            shapes[layer.top[0]] = tuple(layer.input_param.shape[0].dim)
            continue
        if layer.type == "Convolution":
            p = layer.convolution_param
            in_ch = shapes[layer.bottom[0]][1]
            conv = torch.nn.Conv2d(in_ch, p.num_output, p.kernel_size[0], p.stride[0] if p.stride else 1,
                                   p.pad[0] if p.pad else 0, groups=p.group)
            modules[layer.name] = conv
        elif layer.type == "InnerProduct":
            modules[layer.name] = torch.nn.Linear(int(np.prod(shapes[layer.bottom[0]][1:])), layer.inner_product_param.num_output)
        steps.append(layer)
        with torch.no_grad():
            probe = torch.zeros(shapes[layer.bottom[0]])
            out = _torch_apply(layer, modules, probe, None, F)
        if out is not None:
            shapes[layer.top[0]] = tuple(out.shape)

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.mods = modules

        def forward(self, data, label):
            blobs = {"data": data}
            loss = None
            for layer in steps:
                out = _torch_apply(layer, self.mods, blobs[layer.bottom[0]], label, F)
                if layer.type == "SoftmaxWithLoss":
                    loss = out
                else:
                    blobs[layer.top[0]] = out
            return loss

    return Net()


def _torch_apply(layer, modules, x, label, F):
    t = layer.type
    if t in ("Convolution",):
        return modules[layer.name](x)
    if t == "InnerProduct":
        return modules[layer.name](x.flatten(1))
    if t == "ReLU":
        return F.relu(x)
    if t == "Pooling":
        p = layer.pooling_param
        if p.pool == 0:
            return F.max_pool2d(x, p.kernel_size, p.stride, p.pad, ceil_mode=True)
        return F.avg_pool2d(x, p.kernel_size, p.stride, p.pad, ceil_mode=True, count_include_pad=True)
    if t == "LRN":
        p = layer.lrn_param
        return F.local_response_norm(x, p.local_size, p.alpha, p.beta, p.k)
    if t == "Dropout":
        return F.dropout(x, layer.dropout_param.dropout_ratio, training=True)
    if t == "SoftmaxWithLoss":
        if label is None:
            return None
        return F.cross_entropy(x, label)
    raise NotImplementedError(f"benchmark torch port has no '{t}' layer")


def time_torch(name, iterations):
    import torch

    torch.manual_seed(1)
    torch.backends.mkldnn.enabled = True
    module = torch_module(load_train_net_param(name))
    _, batch, shape, classes = NETS[name]
    data = torch.randn((batch,) + shape)
    label = torch.randint(0, classes, (batch,))
    params = list(module.parameters())

    def step():
        for p in params:
            p.grad = None
        module(data, label).backward()

    step()
    times = []
    for _ in range(iterations):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return times


def run_one(name, framework, iterations):
    times = time_ours(name, iterations) if framework == "ours" else time_torch(name, iterations)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(json.dumps({"net": name, "framework": framework, "ms": 1000 * float(np.median(times)),
                      "min_ms": 1000 * float(np.min(times)), "peak_mb": peak_mb}))


def torch_available():
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nets", default="lenet,cifar10_quick,alexnet")
    parser.add_argument("--iterations", type=int, default=0, help="timed iterations (default: 20, 10, 3 by net)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per net (default 3)")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--one", nargs=2, metavar=("NET", "FRAMEWORK"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    default_iterations = {"lenet": 20, "cifar10_quick": 10, "alexnet": 3}
    if args.one:
        run_one(args.one[0], args.one[1], args.iterations or default_iterations[args.one[0]])
        return
    frameworks = ["ours"] + (["torch"] if torch_available() else [])
    if len(frameworks) == 1:
        print("PyTorch is not importable: timing our backend only (pip install torch==2.13.0 to compare)")
    results = []
    for name in args.nets.split(","):
        # Rounds alternate the frameworks, so that a load change on a shared machine hits both;
        # the ratio is the median of the per-round ratios.
        rounds = {framework: [] for framework in frameworks}
        for _ in range(args.rounds):
            for framework in frameworks:
                cmd = [sys.executable, __file__, "--one", name, framework, "--iterations", str(args.iterations)]
                out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
                if out.returncode != 0:
                    print(f"{name} ({framework}) failed:\n{out.stderr[-2000:]}")
                    continue
                rounds[framework].append(json.loads(out.stdout.strip().splitlines()[-1]))
        row = {}
        for framework, runs in rounds.items():
            if runs:
                row[framework] = {"net": name, "framework": framework,
                                  "ms": float(np.median([r["ms"] for r in runs])),
                                  "round_ms": [r["ms"] for r in runs],
                                  "peak_mb": max(r["peak_mb"] for r in runs)}
                results.append(row[framework])
        ours = row.get("ours")
        theirs = row.get("torch")
        line = f"{name:14s}"
        if ours:
            line += f" ours {ours['ms']:9.1f} ms/iter  peak {ours['peak_mb']:7.0f} MB"
        if theirs:
            line += f" | torch {theirs['ms']:9.1f} ms/iter  peak {theirs['peak_mb']:7.0f} MB"
        if ours and theirs and len(ours["round_ms"]) == len(theirs["round_ms"]):
            ratios = [a / b for a, b in zip(ours["round_ms"], theirs["round_ms"])]
            ours["ratio"] = float(np.median(ratios))
            line += f" | ours/torch {ours['ratio']:.2f}x (rounds: {', '.join(f'{r:.2f}' for r in ratios)})"
        print(line, flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
