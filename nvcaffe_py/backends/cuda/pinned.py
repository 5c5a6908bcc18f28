"""PinnedArrays: page-locked host arrays for the batches a prefetch thread builds, so that their
upload is a DMA on the upload stream with no staging copy, reused once that upload has run.

    arrays = PinnedArrays()
    a = arrays.empty(shape, dtype)     # in the prefetch thread: page-locked, filled in place
    ...                                # the GPU forward queues a's upload, records `uploaded`
    arrays.give_back([a], uploaded)    # a may be refilled once `uploaded` is done

`empty` runs in the prefetch thread, with the process's CUDA context pushed there; its wait for a
returned array's upload happens in that thread, never in the training iteration.
"""
import threading

import numpy as np

from . import context, memory, streams


class PinnedArrays:
    def __init__(self):
        self._returned = []  # (array, event after its upload)
        self._lock = threading.Lock()

    def empty(self, shape, dtype) -> np.ndarray:
        shape, dtype = tuple(shape), np.dtype(dtype)
        with self._lock:
            found = next((i for i, (a, _) in enumerate(self._returned) if a.shape == shape and a.dtype == dtype), None)
            array, uploaded = self._returned.pop(found) if found is not None else (None, None)
        with context.pushed():
            if array is None:
                return memory.pinned_empty(shape, dtype)
            streams.wait(uploaded)
        return array

    def give_back(self, arrays, uploaded):
        """`arrays` may be reused once event `uploaded` (after their uploads) is done."""
        with self._lock:
            self._returned.extend((a, uploaded) for a in arrays)
            del self._returned[:-8]  # a few batches' worth; older ones go back to the driver
