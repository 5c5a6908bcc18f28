"""Our SGEMM (nvcaffe_py/backends/cuda/sgemm.cu) against cuBLAS on the same GPU, in GFLOP/s.

    python benchmarks/sgemm.py [--json out.json] [--repeat 20]

cuBLAS is reached through CuPy, or PyTorch when CuPy is missing (benchmark-only dependencies),
with TF32 off so that both sides do FP32 arithmetic. Shapes: 1024^3, 4096^3 and the GEMMs of
AlexNet's and ResNet-50's convolutions as our convolution issues them (forward NN, weight gradient
NT, data gradient TN; a grouped layer's GEMM is one group's): AlexNet's for chunks of its batch
of 256, ResNet-50's for its batch of 64. Ours runs the plan gemm_plan picks for the shape (tile
variant, K slices); where that splits K, the same tile in one slice is timed too, to show what
split-K gives. Each result is also checked against cuBLAS's.
"""
import argparse
import json

import numpy as np

import nvcaffe_py
from nvcaffe_py.backends.cuda import context, gemm_plan, memory
from nvcaffe_py.backends.cuda.sgemm import gemm

SHAPES = [
    # (label, trans_a, trans_b, M, N, K)
    ("square 1024", False, False, 1024, 1024, 1024),
    ("square 4096", False, False, 4096, 4096, 4096),
    ("square 4096 NT", False, True, 4096, 4096, 4096),
    ("square 4096 TN", True, False, 4096, 4096, 4096),
    ("alexnet conv1 fwd", False, False, 96, 3025 * 52, 363),
    ("alexnet conv2 fwd (group)", False, False, 128, 729 * 32, 1200),
    ("alexnet conv3 fwd", False, False, 384, 169 * 128, 2304),
    ("alexnet conv3 dX", True, False, 2304, 169 * 128, 384),
    ("alexnet fc6 fwd", False, True, 256, 4096, 9216),
    ("alexnet conv1 dW", False, True, 96, 363, 3025 * 52),
    ("alexnet conv2 dW (group)", False, True, 128, 1200, 729 * 32),
    ("alexnet conv3 dW", False, True, 384, 2304, 169 * 128),
    ("alexnet conv4 dW (group)", False, True, 192, 1728, 169 * 88),
    ("alexnet conv5 dW (group)", False, True, 128, 1728, 169 * 88),
    ("resnet50 conv1 dW", False, True, 64, 147, 12544 * 32),
    ("resnet50 res2 3x3 dW", False, True, 64, 576, 3136 * 32),
    ("resnet50 res2 1x1 dW", False, True, 64, 256, 3136 * 64),
    ("resnet50 res3 3x3 dW", False, True, 128, 1152, 784 * 64),
    ("resnet50 res4 3x3 dW", False, True, 256, 2304, 196 * 64),
    ("resnet50 res5 3x3 dW", False, True, 512, 4608, 49 * 64),
]


def cublas():
    """(name, matmul(a, b, trans_a, trans_b) -> device array, to_device, to_host, synchronize)."""
    try:
        import cupy

        def matmul(a, b, ta, tb):
            return cupy.matmul(a.T if ta else a, b.T if tb else b)

        return "cuBLAS via CuPy " + cupy.__version__, matmul, cupy.asarray, cupy.asnumpy, \
            cupy.cuda.runtime.deviceSynchronize
    except ImportError:
        pass
    import torch

    torch.backends.cuda.matmul.allow_tf32 = False

    def matmul(a, b, ta, tb):
        return torch.matmul(a.T if ta else a, b.T if tb else b)

    return "cuBLAS via PyTorch " + torch.__version__, matmul, lambda x: torch.from_numpy(x).cuda(), \
        lambda x: x.cpu().numpy(), torch.cuda.synchronize


def time_it(run, repeat):
    import pycuda.driver as cuda  # optional dependency: imported once a GPU is in use

    run()  # warm-up (and compilation)
    start, end = cuda.Event(), cuda.Event()
    start.record()
    for _ in range(repeat):
        run()
    end.record()
    end.synchronize()
    return end.time_since(start) / 1000 / repeat


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", help="write the results to this file")
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    nvcaffe_py.set_mode_gpu()  # our context is the primary one, which CuPy and PyTorch share
    device = context.describe(0)
    name, matmul, to_device, to_host, synchronize = cublas()
    rng = np.random.default_rng(0)
    rows = []
    print(f"{device['name']}: our SGEMM (tile/K slices) vs {name} (TF32 off), GFLOP/s")
    for label, ta, tb, M, N, K in SHAPES:
        a = rng.standard_normal((K, M) if ta else (M, K), dtype=np.float32)
        b = rng.standard_normal((N, K) if tb else (K, N), dtype=np.float32)
        da, db, dc = memory.to_device(a), memory.to_device(b), memory.empty(M * N, np.float32)
        plan = gemm_plan.plan(M, N, K, 1, False, 4, context.multiprocessor_count())
        unsplit = None
        if plan.splits > 1:
            unsplit = time_it(lambda: gemm(ta, tb, M, N, K, 1.0, da, db, 0.0, dc, plan=plan._replace(splits=1, slice_k=K)),
                              args.repeat)
        ours = time_it(lambda: gemm(ta, tb, M, N, K, 1.0, da, db, 0.0, dc, plan=plan), args.repeat)
        ca, cb = to_device(a), to_device(b)
        theirs = time_it(lambda: matmul(ca, cb, ta, tb), args.repeat)
        synchronize()
        reference = to_host(matmul(ca, cb, ta, tb))
        error = float(np.max(np.abs(memory.to_host(dc).reshape(M, N) - reference)) / np.max(np.abs(reference)))
        flops = 2.0 * M * N * K
        row = {"shape": label, "trans": ("T" if ta else "N") + ("T" if tb else "N"), "M": M, "N": N, "K": K,
               "tile": plan.tile.name, "splits": plan.splits, "ours_gflops": flops / ours / 1e9,
               "cublas_gflops": flops / theirs / 1e9, "ratio": theirs / ours,
               "unsplit_gflops": flops / unsplit / 1e9 if unsplit else None, "max_rel_error_vs_cublas": error}
        rows.append(row)
        gain = f"  split-K x{unsplit / ours:.2f}" if unsplit else ""
        print(f"  {label:26s} {row['trans']} {M:5d}x{N:6d}x{K:6d} {plan.tile.name:>7s}/{plan.splits:<3d} ours "
              f"{row['ours_gflops']:8.0f}  cuBLAS {row['cublas_gflops']:8.0f}  {100 * row['ratio']:5.1f}%{gain}  "
              f"(max rel err {error:.1e})")
    result = {"device": device, "cublas": name, "repeat": args.repeat, "results": rows}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
