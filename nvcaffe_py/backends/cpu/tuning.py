"""The measured constants of the CPU backend, in one place: each was chosen by timing this
project's layers on the 2-core development machine (benchmarks/results/ holds the figures), and
each says what it trades off, so that retuning for another machine starts here.
"""

# -- threads (threads.py) ---------------------------------------------------------------------
# Below this many elements of element-wise work a part is not worth handing to a thread: waking
# an idle one costs ~90 us here (measured break-even for one ufunc: 1-2M elements in all).
MIN_PART_ELEMENTS = 1 << 20

# -- pooling (pooling.py) ---------------------------------------------------------------------
# Input elements per chunk of planes: the kh*kw passes over one chunk stay in the L2 cache, which
# doubles the speed on large layers; small layers are one chunk. (2 MB: with the chunks on two
# threads, fewer and longer NumPy calls contend less for the GIL; CIFAR-10 pool1 forward 8.0 ->
# 6.9 ms against 1 MB, the same on one thread.)
POOLING_CHUNK_ELEMENTS = 1 << 19

# -- im2col (im2col.py) -----------------------------------------------------------------------
# Elements per tile of the batch transposes (measured: scattered writes want smaller tiles than
# scattered reads).
BATCH_FIRST_TILE = 1 << 13
BATCH_LAST_TILE = 1 << 16
# Outputs per row from which the image-major column order is used: rows this long copy nearly as
# fast as batch-last stretches, and the order saves the batch transposes of input and output
# (measured per training iteration: LeNet conv1, 24 wide, and CIFAR-10 conv1, 32 wide, ~10%
# faster, AlexNet conv1 2x; CIFAR-10 conv2, 16 wide, slower).
IMAGE_MAJOR_ROW = 24

# -- convolution (convolution.py) -------------------------------------------------------------
# The working memory of one chunk (its column matrix or GEMM product): bounded whatever the batch,
# as Caffe's one-image column buffer is, yet thousands of GEMM columns per chunk.
COLUMN_BUFFER_BYTES = 16 << 20
# What moving one element through im2col costs, in GEMM multiply-adds (OpenBLAS, calibrated on
# the LeNet, CIFAR10-quick and AlexNet layer shapes).
MOVE_COST = 16
# Output positions per image from which a GEMM per image (image-major columns, the bias folded
# in) beats one GEMM for the chunk and a copy of its product (measured per forward: 14x14 1x1
# 13% slower; LeNet conv1, 24x24, 35% faster; CIFAR-10 conv1, 32x32, 15%; AlexNet conv1 10%).
PER_IMAGE_GEMM_COLUMNS = 512
# OpenBLAS's time per multiply-add grows as (1 + SHORT_GEMM_COST / M) for a product with few
# rows M (2 cores, K = 800: 145 GFLOPS at M = 32, 226 at 64, 279 at 160).
SHORT_GEMM_COST = 25

# -- oneDNN (onednn.py) -----------------------------------------------------------------------
# The work from which a oneDNN primitive runs on OpenMP's threads: below, it is created and run on
# the calling thread alone. Work: its multiply-adds plus ONEDNN_ELEMENT_WORK per input and output
# element (a depthwise convolution does few multiply-adds per element moved). While the threads
# slept between primitives (OMP_WAIT_POLICY=PASSIVE, ~100 us to wake), one thread won below 15M
# (LeNet conv2, 1.6M multiply-adds: 56 against 206 us). Now that they spin between primitives
# (ONEDNN_SPIN_COUNT), two threads win everywhere measured, whole deploy forwards at batch 1 on the
# 2-core machine, 15M against 0: LeNet 0.152 against 0.110 ms, ResNet-56 2.5 against 1.5 ms,
# MobileNet v2 8.6 against 5.4 ms, res10 22 against 20 ms (RFB-320 and batch 16 within noise);
# mixing one-thread and threaded primitives (thresholds 64K, 512K) was slower than either.
ONEDNN_THREADED_WORK = 0
ONEDNN_ELEMENT_WORK = 8
# How long OpenMP's threads spin between oneDNN primitives before they sleep (libgomp's
# GOMP_SPINCOUNT; its default is 300000, PASSIVE is 0). Asleep, each primitive pays ~100 us to wake
# them; spinning, they would keep a core from the NumPy layers after a oneDNN run.
ONEDNN_SPIN_COUNT = 30000

# -- inner product (layers/inner_product.py) --------------------------------------------------
# Multiply-adds per thread below which a product stays on one thread: a thread hand-over costs
# ~90 us here, and LeNet's ip1 (26M in all) measured the same split in two as not.
MIN_PART_MULTIPLY_ADDS = 1 << 24
# The weight gradient is summed a block of output rows at a time, so that its temporary stays
# this small (a whole AlexNet fc6 gradient would be another 150 MB at the memory peak).
GRADIENT_BLOCK_BYTES = 16 << 20
