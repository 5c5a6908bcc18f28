"""Reusable per-thread working buffers for the CPU layers.

A fresh allocation of a few MB per layer call costs more in page faults than the work done in
it, so im2col's column matrices, pooling's phase grids and the like come from here and are
reused from call to call. Each thread has its own buffers, so chunks of one layer may run in
parallel (see threads.py).
"""
import math
import threading

import numpy as np

_buffers = threading.local()


def scratch(name, shape, dtype):
    """A reusable per-thread buffer of `shape` (contents undefined), valid until the next request
    for the same name and dtype in this thread; different names never overlap."""
    pool = getattr(_buffers, "pool", None)
    if pool is None:
        pool = _buffers.pool = {}
    size = math.prod(shape)
    key = (name, np.dtype(dtype))
    flat = pool.get(key)
    if flat is None or flat.size < size:
        flat = pool[key] = np.empty(size, dtype)
    return flat[:size].reshape(shape)
