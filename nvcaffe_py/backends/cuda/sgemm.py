"""Our GEMM and GEMV (sgemm.cu), with Caffe's row-major conventions.

    gemm(trans_a, trans_b, M, N, K, alpha, A, B, beta, C)   C = alpha op(A) op(B) + beta C
    gemv(trans, M, N, alpha, A, x, beta, y)                 y = alpha op(A) x + beta y, A M x N

Matrices are GPUArrays, with element offsets and row strides; a batched GEMM runs `batch`
products at strides stride_a/b/c (a or b may repeat one matrix with stride 0) in one launch. The
tile variant and the K slices come from gemm_plan.plan for the shape (split-K: the slices' partial
products go to a workspace that gemm_splitk_reduce adds up in slice order).
"""
from ...errors import CaffeError
from . import context, gemm_plan, kernels, memory
from .memory import pointer

_A_VEC, _B_VEC, _C_VEC = 1, 2, 4
_INT_MAX = 2 ** 31 - 1
_kernels = kernels.Source(__file__, "sgemm.cu")


def _vector_ok(address, ld, itemsize):
    # 4-wide loads need 16-byte aligned rows: aligned base, row stride a multiple of 4 elements.
    return address % 16 == 0 and (ld * itemsize) % 16 == 0 and ld % 4 == 0


def _check(M, N, K, lda, ldb, ldc, batch, stride_c, tiles):
    for name, value in (("M", M), ("N", N), ("K", K), ("lda", lda), ("ldb", ldb), ("ldc", ldc)):
        if value > _INT_MAX:
            raise CaffeError(f"gemm: {name} = {value} exceeds the kernel's 32-bit sizes (at most {_INT_MAX})")
    if tiles > _INT_MAX:
        raise CaffeError(f"gemm: {M} x {N} outputs make {tiles} tiles, more than a grid holds ({_INT_MAX})")
    if batch > 1 and stride_c == 0:
        raise CaffeError(f"gemm: a batch of {batch} products into one C (stride_c 0) would race; "
                         "give each product its own C")


def gemm(trans_a, trans_b, M, N, K, alpha, A, B, beta, C, *, lda=None, ldb=None, ldc=None,
         offset_a=0, offset_b=0, offset_c=0, batch=1, stride_a=0, stride_b=0, stride_c=0, plan=None):
    """`plan`: a gemm_plan.Plan to run instead of the one chosen for the shape (tests and
    benchmarks compare the variants)."""
    M, N, K, batch = int(M), int(N), int(K), int(batch)
    if M == 0 or N == 0 or batch == 0:
        return
    lda = (M if trans_a else K) if lda is None else int(lda)
    ldb = (K if trans_b else N) if ldb is None else int(ldb)
    ldc = N if ldc is None else int(ldc)
    itemsize = C.dtype.itemsize
    tile, splits, slice_k = plan or gemm_plan.plan(M, N, K, batch, beta != 0, itemsize,
                                                   context.multiprocessor_count())
    tiles = -(-M // tile.rows) * -(-N // tile.cols)
    _check(M, N, K, lda, ldb, ldc, batch, stride_c, tiles)
    a, b, c = pointer(A, offset_a), pointer(B, offset_b), pointer(C, offset_c)
    in_flags = ((_A_VEC if _vector_ok(a, lda, itemsize) and stride_a % 4 == 0 else 0)
                | (_B_VEC if _vector_ok(b, ldb, itemsize) and stride_b % 4 == 0 else 0))
    kernel = _kernels.get(f"gemm_{'t' if trans_a else 'n'}{'t' if trans_b else 'n'}_{tile.name}", C.dtype)
    per_launch = gemm_plan.MAX_GRID_Z // splits
    for first in range(0, batch, per_launch):
        count = min(per_launch, batch - first)
        a_first, b_first = a + first * stride_a * itemsize, b + first * stride_b * itemsize
        c_first = c + first * stride_c * itemsize
        if splits == 1:
            flags = in_flags | (_C_VEC if _vector_ok(c, ldc, itemsize) and stride_c % 4 == 0 else 0)
            kernel((tiles, 1, count), (tile.threads, 1, 1), M, N, K, alpha, a_first, lda, stride_a, b_first, ldb,
                   stride_b, beta, c_first, ldc, stride_c, 1, K, flags)
            continue
        # Each slice's partial product, dense (row stride N), then their sum in slice order.
        workspace = memory.empty(count * splits * M * N, C.dtype)
        flags = in_flags | (_C_VEC if _vector_ok(pointer(workspace), N, itemsize) else 0)
        kernel((tiles, 1, count * splits), (tile.threads, 1, 1), M, N, K, 1.0, a_first, lda, stride_a, b_first, ldb,
               stride_b, 0.0, workspace, N, M * N, splits, slice_k, flags)
        n = count * M * N
        _kernels.get("gemm_splitk_reduce", C.dtype).launch(n, n, M, N, splits, alpha, workspace, beta, c_first, ldc,
                                                           stride_c)


def gemv(trans, M, N, alpha, A, x, beta, y, *, offset_a=0):
    """y = alpha * A x + beta * y (trans: A^T x), A an M x N row-major matrix."""
    M, N = int(M), int(N)
    a = pointer(A, offset_a)
    if trans:
        _kernels.get("gemv_t", y.dtype).launch(N, M, N, alpha, a, N, x, beta, y)
    else:
        _kernels.get("gemv_n", y.dtype).launch(M * 32, M, N, alpha, a, N, x, beta, y)
