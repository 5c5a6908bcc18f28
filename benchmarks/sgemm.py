"""Our SGEMM (nvcaffe_py/backends/cuda/sgemm.cu) against cuBLAS on the same GPU, in GFLOP/s.

    python benchmarks/sgemm.py [--json out.json] [--repeat 20]

cuBLAS is reached through CuPy, or PyTorch when CuPy is missing (benchmark-only dependencies),
with TF32 off so that both sides do FP32 arithmetic. Shapes: 1024^3, 4096^3 and the GEMMs of
AlexNet's convolutions as our convolution issues them for a chunk of 64 images (forward NN,
weight gradient NT, data gradient TN). Each result is also checked against cuBLAS's.
"""
import argparse
import json

import numpy as np

import nvcaffe_py
from nvcaffe_py.backends.cuda import context, memory
from nvcaffe_py.backends.cuda.sgemm import gemm

SHAPES = [
    # (label, trans_a, trans_b, M, N, K)
    ("square 1024", False, False, 1024, 1024, 1024),
    ("square 4096", False, False, 4096, 4096, 4096),
    ("square 4096 NT", False, True, 4096, 4096, 4096),
    ("square 4096 TN", True, False, 4096, 4096, 4096),
    ("alexnet conv1 fwd", False, False, 96, 3025 * 16, 363),
    ("alexnet conv2 fwd (group)", False, False, 128, 729 * 64, 1200),
    ("alexnet conv3 fwd", False, False, 384, 169 * 64, 2304),
    ("alexnet conv3 dW", False, True, 384, 2304, 169 * 64),
    ("alexnet conv3 dX", True, False, 2304, 169 * 64, 384),
    ("alexnet fc6 fwd", False, True, 64, 4096, 9216),
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
    print(f"{device['name']}: our SGEMM vs {name} (TF32 off), GFLOP/s")
    for label, ta, tb, M, N, K in SHAPES:
        a = rng.standard_normal((K, M) if ta else (M, K), dtype=np.float32)
        b = rng.standard_normal((N, K) if tb else (K, N), dtype=np.float32)
        da, db, dc = memory.to_device(a), memory.to_device(b), memory.empty(M * N, np.float32)
        ours = time_it(lambda: gemm(ta, tb, M, N, K, 1.0, da, db, 0.0, dc), args.repeat)
        ca, cb = to_device(a), to_device(b)
        theirs = time_it(lambda: matmul(ca, cb, ta, tb), args.repeat)
        synchronize()
        reference = to_host(matmul(ca, cb, ta, tb))
        error = float(np.max(np.abs(memory.to_host(dc).reshape(M, N) - reference)) / np.max(np.abs(reference)))
        flops = 2.0 * M * N * K
        row = {"shape": label, "trans": ("T" if ta else "N") + ("T" if tb else "N"), "M": M, "N": N, "K": K,
               "ours_gflops": flops / ours / 1e9, "cublas_gflops": flops / theirs / 1e9,
               "ratio": theirs / ours, "max_rel_error_vs_cublas": error}
        rows.append(row)
        print(f"  {label:28s} {row['trans']} {M:5d}x{N:6d}x{K:6d}  ours {row['ours_gflops']:8.0f}  "
              f"cuBLAS {row['cublas_gflops']:8.0f}  {100 * row['ratio']:5.1f}%  (max rel err {error:.1e})")
    result = {"device": device, "cublas": name, "repeat": args.repeat, "results": rows}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
