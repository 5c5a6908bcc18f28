"""The CUDA backend (PyCUDA): one context per process (context.py), a pooled device memory
(memory.py), kernels compiled from `.cu` files beside their Python modules (kernels.py), our own
GEMM (sgemm.py) and vector primitives (math_functions.py), and a counter-based device RNG (rng.py).

Nothing in this package imports PyCUDA at import time; `context.unavailable_reason()` says why a
GPU cannot be used on this machine.
"""
