"""Our GEMM and GEMV (sgemm.cu), with Caffe's row-major conventions.

    gemm(trans_a, trans_b, M, N, K, alpha, A, B, beta, C)   C = alpha op(A) op(B) + beta C
    gemv(trans, M, N, alpha, A, x, beta, y)                 y = alpha op(A) x + beta y, A M x N

Matrices are GPUArrays, with element offsets and row strides; a batched
GEMM runs `batch` products at strides stride_a/b/c (0 repeats one matrix) in one launch.
"""
from . import kernels
from .memory import pointer

TILE = 128  # the kernel's block tile (BM = BN)
THREADS = 256
MAX_GRID_Z = 65535  # batches beyond this many products take several launches
_A_VEC, _B_VEC, _C_VEC = 1, 2, 4
_kernels = kernels.Source(__file__, "sgemm.cu")


def _vector_ok(address, ld, itemsize):
    # 4-wide loads need 16-byte aligned rows: aligned base, row stride a multiple of 4 elements.
    return address % 16 == 0 and (ld * itemsize) % 16 == 0 and ld % 4 == 0


def gemm(trans_a, trans_b, M, N, K, alpha, A, B, beta, C, *, lda=None, ldb=None, ldc=None,
         offset_a=0, offset_b=0, offset_c=0, batch=1, stride_a=0, stride_b=0, stride_c=0):
    M, N, K, batch = int(M), int(N), int(K), int(batch)
    if M == 0 or N == 0 or batch == 0:
        return
    lda = (M if trans_a else K) if lda is None else int(lda)
    ldb = (K if trans_b else N) if ldb is None else int(ldb)
    ldc = N if ldc is None else int(ldc)
    itemsize = C.dtype.itemsize
    a, b, c = pointer(A, offset_a), pointer(B, offset_b), pointer(C, offset_c)
    flags = ((_A_VEC if _vector_ok(a, lda, itemsize) and stride_a % 4 == 0 else 0)
             | (_B_VEC if _vector_ok(b, ldb, itemsize) and stride_b % 4 == 0 else 0)
             | (_C_VEC if _vector_ok(c, ldc, itemsize) and stride_c % 4 == 0 else 0))
    kernel = _kernels.get("gemm_" + ("t" if trans_a else "n") + ("t" if trans_b else "n"), C.dtype)
    for first in range(0, batch, MAX_GRID_Z):
        grid = (-(-N // TILE), -(-M // TILE), min(MAX_GRID_Z, batch - first))
        kernel(grid, (THREADS, 1, 1), M, N, K, alpha, a + first * stride_a * itemsize, lda, stride_a,
               b + first * stride_b * itemsize, ldb, stride_b, beta, c + first * stride_c * itemsize, ldc, stride_c,
               flags)


def gemv(trans, M, N, alpha, A, x, beta, y, *, offset_a=0):
    """y = alpha * A x + beta * y (trans: A^T x), A an M x N row-major matrix."""
    M, N = int(M), int(N)
    a = pointer(A, offset_a)
    if trans:
        _kernels.get("gemv_t", y.dtype).launch(N, M, N, alpha, a, N, x, beta, y)
    else:
        _kernels.get("gemv_n", y.dtype).launch(M * 32, M, N, alpha, a, N, x, beta, y)
