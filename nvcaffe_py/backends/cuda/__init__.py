"""The CUDA backend (PyCUDA): one context per process (context.py), the compute and upload streams
and the events between them (streams.py), a stream-ordered pool of device memory (memory.py,
memory_pool.py), page-locked host arrays for the input path (pinned.py), counts of host<->device
traffic (traffic.py), kernels compiled from `.cu` files beside their Python modules (kernels.py),
our own GEMM (sgemm.py) and vector primitives (math_functions.py), and a counter-based device RNG
(rng.py).

Nothing in this package imports PyCUDA at import time; `context.unavailable_reason()` says why a
GPU cannot be used on this machine.
"""
