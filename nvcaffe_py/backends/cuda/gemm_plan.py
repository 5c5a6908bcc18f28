"""How our GEMM (sgemm.cu) covers a product: which tile variant, and in how many K slices.

A launch runs in waves of as many blocks as the GPU holds at once (multiprocessors x blocks per
SM), so a grid that is a fraction of a wave leaves SMs idle however deep K is: AlexNet's conv1
weight gradient (96 x 363 outputs, K = 184k) was 3 blocks on a 132-SM GPU. Two remedies, which
`plan` weighs against each other: smaller tiles (more blocks and less waste on ragged edges, but
more loads per multiply-add), and split-K (K cut into slices, each a block of its own writing a
partial product to a workspace, then one reduction adding the slices in order, so that results
repeat bit for bit). The choice minimises `gemm_seconds` + `reduce_seconds`, a model of an H100
(benchmarks/gpu_model.py predicts traced launches with the same functions); only the ratios of
its constants matter for the choice, which is made once per shape.
"""
import functools
from typing import NamedTuple

K_STEP = 8  # the kernel's BK: K slices are multiples of it, so vector loads stay aligned
MAX_GRID_Z = 65535
WORKSPACE_ELEMENTS = 1 << 25  # at most 128 MB of float32 partial products per launch
SPLITS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256)


class Tile(NamedTuple):
    """A tile variant of the kernel: rows x cols outputs per block, 8 x 8 per thread."""
    rows: int
    cols: int
    blocks_per_sm: int  # what an sm_90 SM holds, from ptxas's registers (tests/test_sgemm_plan.py checks)

    @property
    def threads(self):
        return self.rows * self.cols // 64

    @property
    def name(self):
        return f"{self.rows}x{self.cols}"


TILES = (Tile(128, 128, 2), Tile(128, 64, 3), Tile(64, 64, 6))


class Throughput(NamedTuple):
    """What the model assumes of the GPU besides its multiprocessor count."""
    clock_hz: float
    ffma_per_clock: int  # per multiprocessor
    warps_for_full_rate: int  # resident warps per multiprocessor that keep its FFMA pipes busy
    ffma_efficiency: float  # of the FFMA issue rate, for the kernel's register-blocked inner loop
    l2_bytes_per_s: float
    dram_bytes_per_s: float
    launch_s: float  # a launch's device time without work (the gap between dependent kernels)
    wave_overhead_s: float  # a block's prologue (first loads) and epilogue (stores), once per wave


H100 = Throughput(
    clock_hz=1.98e9,  # boost clock; seen on this workplace's Hopper machines right after matrix work
    ffma_per_clock=128,  # 128 FP32 lanes per SM: 66.9 TFLOP/s over 132 SMs
    warps_for_full_rate=12,  # three per scheduler, each with 64 independent FFMAs per K step
    ffma_efficiency=0.85,  # 64 FFMA per 4 shared-memory vector loads, plus the loop and barrier
    l2_bytes_per_s=5.5e12,  # measured on an H100 PCIe (chipsandcheese, 2023); the SXM has more SMs
    dram_bytes_per_s=2.6e12,  # a device copy ran at 3.0 TB/s on the lent H100; plain kernels get less
    launch_s=3e-6,
    wave_overhead_s=1e-6,
)


class Plan(NamedTuple):
    tile: Tile
    splits: int  # K slices (1: no split-K)
    slice_k: int  # each slice's depth (the last may be shorter)


def gemm_seconds(rows, cols, threads, resident, M, N, K, products, splits, slice_k, beta, itemsize, multiprocessors,
                 gpu=H100):
    """(seconds, bound) of one launch of the GEMM kernel: the busiest SM's FFMA time (its blocks
    in waves of `resident`, slower while it holds fewer warps than keep the pipes busy), bounded
    below by the L2 traffic (each block reads its panels of A and B), the DRAM traffic (A and B
    once; C, or each slice's partial product, once) and the launch."""
    depth = -(-min(slice_k, K) // K_STEP) * K_STEP
    blocks = -(-M // rows) * -(-N // cols) * products * splits
    busiest = -(-blocks // multiprocessors)
    full_waves, last = divmod(busiest, resident)

    def wave(count):
        warps = count * threads / 32
        rate = gpu.ffma_per_clock * gpu.clock_hz * gpu.ffma_efficiency * min(1.0, warps / gpu.warps_for_full_rate)
        return count * rows * cols * depth / rate + gpu.wave_overhead_s

    ffma = full_waves * wave(resident) + (wave(last) if last else 0.0)
    l2 = blocks * (rows + cols) * depth * itemsize / gpu.l2_bytes_per_s
    c_passes = splits if splits > 1 else 2 if beta else 1
    dram = products * (M * K + K * N + c_passes * M * N) * itemsize / gpu.dram_bytes_per_s
    return max((ffma, "ffma"), (l2, "l2"), (dram, "dram"), (gpu.launch_s, "launch"))


def reduce_seconds(M, N, products, splits, beta, itemsize, gpu=H100):
    """Device seconds of the split-K reduction: every slice's partial product read, C written
    (and read when beta is not 0)."""
    moved = products * M * N * (splits + (2 if beta else 1)) * itemsize
    return max(moved / gpu.dram_bytes_per_s, gpu.launch_s)


@functools.lru_cache(maxsize=4096)
def plan(M, N, K, products, beta, itemsize, multiprocessors):
    """The tile and K slices with the least modelled time for `products` M x N x K products
    (beta: whether C is read); ties go to fewer slices, then the larger tile."""
    best = None
    for tile in TILES:
        for splits in SPLITS:
            slice_k = max(K_STEP, -(-K // (splits * K_STEP)) * K_STEP)
            splits = -(-K // slice_k) if K else 1  # slices that are not empty
            if splits > 1 and (products * splits > MAX_GRID_Z or products * splits * M * N > WORKSPACE_ELEMENTS):
                continue
            seconds = gemm_seconds(tile.rows, tile.cols, tile.threads, tile.blocks_per_sm, M, N, K, products, splits,
                                   slice_k, beta, itemsize, multiprocessors)[0]
            if splits > 1:
                seconds += reduce_seconds(M, N, products, splits, beta, itemsize)
            key = (seconds, splits, -tile.rows * tile.cols)
            if best is None or key < best[0]:
                best = (key, Plan(tile, splits, slice_k if splits > 1 else K))
    return best[1]
