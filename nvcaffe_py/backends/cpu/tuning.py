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
