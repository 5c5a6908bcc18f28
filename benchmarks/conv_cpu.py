"""Convolution forward + backward on the CPU, on LeNet / CIFAR10-quick / AlexNet layer shapes.

    python benchmarks/conv_cpu.py [--repeat 20] [--only lenet] [--threads 1]

Prints the best milliseconds of one forward+backward per layer (float32), and PyTorch's for
the same layer when torch is installed (a benchmark-only comparison, never a dependency). The
first layer of each net needs no bottom gradient, as in training. The two are timed alternately
so that a busy machine slows both alike; the best of the repeats is the least disturbed one.
(PyTorch's OpenMP workers spin for a while after its step and slow our next one a little: the
per-net figures of cpu_nets.py, one framework per process, are the fairer comparison.)
`--threads 1` compares single-threaded BLAS with single-threaded PyTorch and measures this
thread's CPU time, which other jobs on a shared machine disturb far less than wall time.
"""
import argparse
import os
import sys
import time

if __name__ == "__main__" and "--threads" in sys.argv:
    # OpenBLAS reads its thread count once, when NumPy is first imported.
    os.environ["OPENBLAS_NUM_THREADS"] = sys.argv[sys.argv.index("--threads") + 1]
    os.environ["NVCAFFE_CPU_THREADS"] = sys.argv[sys.argv.index("--threads") + 1]

import numpy as np  # noqa: E402

from nvcaffe_py.backends.cpu import threads as parallel  # noqa: E402
from nvcaffe_py.gradient_check import setup_layer  # noqa: E402

# name: (batch, channels, height, width, num_output, kernel, pad, stride, group, bottom gradient)
SHAPES = {
    "lenet.conv1": (64, 1, 28, 28, 20, 5, 0, 1, 1, False),
    "lenet.conv2": (64, 20, 12, 12, 50, 5, 0, 1, 1, True),
    "cifar.conv1": (100, 3, 32, 32, 32, 5, 2, 1, 1, False),
    "cifar.conv2": (100, 32, 16, 16, 32, 5, 2, 1, 1, True),
    "cifar.conv3": (100, 32, 8, 8, 64, 5, 2, 1, 1, True),
    "1x1": (32, 256, 14, 14, 64, 1, 0, 1, 1, True),
    "alexnet.conv2": (16, 96, 27, 27, 256, 5, 2, 1, 2, True),
}


def ours(batch, channels, height, width, num_output, kernel, pad, stride, group, need_bottom):
    param = (f'type: "Convolution" convolution_param {{ num_output: {num_output} kernel_size: {kernel} '
             f'pad: {pad} stride: {stride} group: {group} weight_filler {{ type: "xavier" }} }}')
    x = np.random.default_rng(0).standard_normal((batch, channels, height, width))
    layer, bottom, top = setup_layer(param, [x], dtype=np.float32)
    top[0].diff[...] = 1

    def step():
        with parallel.scope():  # as inside a Net pass: our threads, BLAS single-threaded
            layer.forward_cpu(bottom, top)
            layer.backward_cpu(top, [need_bottom], bottom)

    return step


def theirs(batch, channels, height, width, num_output, kernel, pad, stride, group, need_bottom):
    import torch

    x = torch.randn(batch, channels, height, width, requires_grad=need_bottom)
    conv = torch.nn.Conv2d(channels, num_output, kernel, stride, pad, groups=group)

    def step():
        y = conv(x)
        y.backward(torch.ones_like(y))

    return step


def best_ms(steps, repeat, clock):
    for step in steps:
        step()
    times = [[] for _ in steps]
    for _ in range(repeat):
        for step, record in zip(steps, times):
            start = clock()
            step()
            record.append(clock() - start)
    return [1e3 * float(np.min(t)) for t in times]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--only", default="", help="run the shapes whose name contains this")
    parser.add_argument("--threads", type=int, default=0, help="BLAS and torch threads (default: all cores)")
    args = parser.parse_args()
    try:
        import torch

        if args.threads:
            torch.set_num_threads(args.threads)
        have_torch = True
    except ImportError:
        have_torch = False
    # Single-threaded, all the work runs in this thread: its CPU time ignores other jobs' slices.
    clock = time.thread_time if args.threads == 1 else time.perf_counter
    print(f"{'layer':16s} {'ours ms':>9s}" + (f" {'torch ms':>9s} {'ratio':>6s}" if have_torch else ""))
    for name, shape in SHAPES.items():
        if args.only not in name:
            continue
        steps = [ours(*shape)] + ([theirs(*shape)] if have_torch else [])
        result = best_ms(steps, args.repeat, clock)
        line = f"{name:16s} {result[0]:9.2f}"
        if have_torch:
            line += f" {result[1]:9.2f} {result[0] / result[1]:6.2f}"
        print(line, flush=True)


if __name__ == "__main__":
    main()
