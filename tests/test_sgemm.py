"""Our SGEMM's paths: every tile variant with all four transposes, in one slice of K and split
into uneven slices, batched and strided, against float64 NumPy (on the `device` fixture: a GPU,
or the CUDA emulator); the plan that picks them; the limits it refuses with a clear error."""
import os

import numpy as np
import pytest

import nvcaffe_py
from nvcaffe_py.backends.cuda import gemm_plan, kernels
from nvcaffe_py.backends.cuda.gemm_plan import TILES, Plan
from nvcaffe_py.conformance import assert_close
from nvcaffe_py.errors import CaffeError


def rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def op(x, transposed):
    return x.T if transposed else x


# (M, N, K): ragged (scalar loads, partial tiles) and multiples of 4 (vector loads) over several tiles
SHAPES = [(70, 45, 83), (68, 132, 80)]


@pytest.mark.parametrize("M,N,K", SHAPES)
@pytest.mark.parametrize("slice_k", [None, 24], ids=["one-slice", "split-k"])
@pytest.mark.parametrize("tile", TILES, ids=[t.name for t in TILES])
@pytest.mark.parametrize("trans_a,trans_b", [(False, False), (False, True), (True, False), (True, True)],
                         ids=["nn", "nt", "tn", "tt"])
def test_every_kernel_path_matches_numpy(device, trans_a, trans_b, tile, slice_k, M, N, K):
    """slice_k 24 cuts K = 83 into 24 + 24 + 24 + 11 (and 80 into 24 x 3 + 8)."""
    from nvcaffe_py.backends.cuda import memory
    from nvcaffe_py.backends.cuda.sgemm import gemm

    nvcaffe_py.set_mode_gpu()
    plan = Plan(tile, 1, K) if slice_k is None else Plan(tile, -(-K // slice_k), slice_k)
    a = rand(*((K, M) if trans_a else (M, K)), seed=1)
    b = rand(*((N, K) if trans_b else (K, N)), seed=2)
    c = rand(M, N, seed=3)
    product = op(a, trans_a).astype(np.float64) @ op(b, trans_b)
    out = memory.to_device(c)
    gemm(trans_a, trans_b, M, N, K, 1.5, memory.to_device(a), memory.to_device(b), -0.5, out, plan=plan)
    assert_close(memory.to_host(out), 1.5 * product - 0.5 * c, f"{plan}")
    # beta = 0 never reads C (nor does the split-K reduction): NaNs there must not leak.
    out = memory.to_device(np.full((M, N), np.nan, np.float32))
    gemm(trans_a, trans_b, M, N, K, 2.0, memory.to_device(a), memory.to_device(b), 0.0, out, plan=plan)
    assert_close(memory.to_host(out), 2.0 * product, f"{plan} with beta 0")


@pytest.mark.parametrize("tile", TILES, ids=[t.name for t in TILES])
def test_batched_split_k_with_offsets_strides_and_a_shared_matrix(device, tile):
    """Three products in one launch, A shared (stride 0) at an unaligned offset with a padded
    row stride, C's rows padded, K = 37 in slices of 16, 16, 5: each product gets its own C."""
    from nvcaffe_py.backends.cuda import memory
    from nvcaffe_py.backends.cuda.sgemm import gemm

    nvcaffe_py.set_mode_gpu()
    M, N, K, batch, lda, ldc = 33, 20, 37, 3, 41, 23
    a = rand(1 + M * lda, seed=4)
    b = rand(batch, K, N, seed=5)
    c = rand(batch, M, ldc, seed=6)
    out = memory.to_device(c)
    gemm(False, False, M, N, K, 1.0, memory.to_device(a), memory.to_device(b), 2.0, out, offset_a=1, lda=lda,
         ldc=ldc, batch=batch, stride_a=0, stride_b=K * N, stride_c=M * ldc, plan=Plan(tile, 3, 16))
    a_matrix = a[1:].reshape(M, lda)[:, :K].astype(np.float64)
    expected = c.astype(np.float64).copy()
    expected[:, :, :N] = np.stack([a_matrix @ b[i] for i in range(batch)]) + 2.0 * c[:, :, :N]
    assert_close(memory.to_host(out), expected, "batched split-k gemm (padding columns untouched)")


def test_split_k_repeats_bit_for_bit(device):
    from nvcaffe_py.backends.cuda import memory
    from nvcaffe_py.backends.cuda.sgemm import gemm

    nvcaffe_py.set_mode_gpu()
    M, N, K = 20, 12, 400
    a, b = memory.to_device(rand(M, K, seed=7)), memory.to_device(rand(K, N, seed=8))
    results = []
    for _ in range(2):
        out = memory.to_device(np.zeros((M, N), np.float32))
        gemm(False, False, M, N, K, 1.0, a, b, 0.0, out, plan=Plan(TILES[2], 7, 64))
        results.append(memory.to_host(out))
    np.testing.assert_array_equal(results[0], results[1])


def test_the_chosen_plan_runs(device):
    """Whatever the plan picks for this device (the emulator has one multiprocessor)."""
    from nvcaffe_py.backends.cuda import memory
    from nvcaffe_py.backends.cuda.sgemm import gemm

    nvcaffe_py.set_mode_gpu()
    M, N, K = 9, 10, 3000
    a, b = rand(K, M, seed=9), rand(K, N, seed=10)
    out = memory.to_device(np.zeros((M, N), np.float32))
    gemm(True, False, M, N, K, 1.0, memory.to_device(a), memory.to_device(b), 1.0, out)
    assert_close(memory.to_host(out), a.T.astype(np.float64) @ b, "planned gemm")


# -- the plan (pure Python) -----------------------------------------------------------------------
H100_SMS = 132


def test_the_law_rewards_filling_the_gpu():
    def seconds(blocks, depth):  # `blocks` 128x128 tiles in a row, each `depth` deep
        return gemm_plan.gemm_seconds(128, 128, 256, 2, 128, 128 * blocks, depth, 1, 1, depth, False, 4, H100_SMS)

    few, bound = seconds(3, 132 * 2 * 512)  # 3 SMs busy
    many, _ = seconds(264, 3 * 512)  # the same multiply-adds over two blocks per SM
    assert bound == "ffma" and few > 30 * many
    big, _ = seconds(4 * 264, 4096)
    gpu = gemm_plan.H100
    peak = 2 * gpu.ffma_per_clock * gpu.clock_hz * H100_SMS
    assert 0.7 * gpu.ffma_efficiency * peak < 2 * 128 * 128 * 4 * 264 * 4096 / big <= gpu.ffma_efficiency * peak


def test_small_grids_with_deep_k_are_split():
    conv1_dw = gemm_plan.plan(96, 363, 184525, 1, True, 4, H100_SMS)  # AlexNet conv1's weight gradient
    assert conv1_dw.splits >= 8
    unsplit = gemm_plan.gemm_seconds(128, 128, 256, 2, 96, 363, 184525, 1, 1, 184525, True, 4, H100_SMS)[0]
    split = gemm_plan.gemm_seconds(conv1_dw.tile.rows, conv1_dw.tile.cols, conv1_dw.tile.threads,
                                   conv1_dw.tile.blocks_per_sm, 96, 363, 184525, 1, conv1_dw.splits,
                                   conv1_dw.slice_k, True, 4, H100_SMS)[0]
    assert split * 5 < unsplit


def test_big_products_keep_the_big_tile_and_all_of_k():
    assert gemm_plan.plan(4096, 4096, 4096, 1, False, 4, H100_SMS) == Plan(TILES[0], 1, 4096)
    assert gemm_plan.plan(2304, 19266, 128, 1, False, 4, H100_SMS).splits == 1  # a data gradient: shallow K


def test_a_short_wide_product_takes_a_smaller_tile():
    chosen = gemm_plan.plan(64, 4096, 9216, 1, False, 4, H100_SMS)  # AlexNet fc6 forward at batch 64
    assert chosen.tile.rows == 64 or chosen.splits > 1


@pytest.mark.parametrize("M,N,K,products", [(96, 363, 184525, 1), (20, 25, 36864, 1), (7, 5, 1001, 2),
                                            (64, 64, 8, 1), (3, 3, 0, 1), (16, 16, 10 ** 6, 4000)])
def test_slices_cover_k_within_the_limits(M, N, K, products):
    tile, splits, slice_k = gemm_plan.plan(M, N, K, products, False, 4, H100_SMS)
    if splits == 1:
        assert slice_k == K
        return
    assert slice_k % gemm_plan.K_STEP == 0 and (splits - 1) * slice_k < K <= splits * slice_k
    assert products * splits <= gemm_plan.MAX_GRID_Z
    assert products * splits * M * N <= gemm_plan.WORKSPACE_ELEMENTS


@pytest.mark.skipif(not os.path.exists(kernels.nvcc()), reason=f"nvcc not found ({kernels.nvcc()})")
def test_tile_occupancy_matches_ptxas():
    usage = kernels.resource_usage(os.path.join(kernels.INCLUDE_DIR, "sgemm.cu"), "float32")
    for tile in TILES:
        for ops in ("nn", "nt", "tn", "tt"):
            registers, shared = usage[f"gemm_{ops}_{tile.name}"]
            assert kernels.blocks_per_sm(tile.threads, registers, shared) == tile.blocks_per_sm, (ops, tile)


# -- limits ---------------------------------------------------------------------------------------
class _Matrix:
    dtype = np.dtype(np.float32)


@pytest.mark.parametrize("shape,kwargs,message", [
    ((4, 4, 4), dict(batch=2, stride_c=0), "would race"),
    ((2 ** 31, 4, 4), {}, "M = 2147483648 exceeds"),
    ((2 ** 31 - 1, 2 ** 31 - 1, 4), {}, "more than a grid holds"),
])
def test_limits_are_refused_with_a_clear_error(shape, kwargs, message):
    from nvcaffe_py.backends.cuda.sgemm import gemm

    with pytest.raises(CaffeError, match=message):
        gemm(False, False, *shape, 1.0, _Matrix(), _Matrix(), 0.0, _Matrix(), plan=Plan(TILES[0], 1, shape[2]),
             **kwargs)


def test_reductions_refuse_sizes_past_32_bit_indexing(device):
    from nvcaffe_py.backends.cuda import math_functions as mf
    from nvcaffe_py.backends.cuda import memory

    nvcaffe_py.set_mode_gpu()
    small = memory.empty(4, np.float32)
    with pytest.raises(CaffeError, match="reduce_partial: 2147483647 elements exceed 32-bit indexing"):
        mf.asum(small, n=2 ** 31 - 1)
