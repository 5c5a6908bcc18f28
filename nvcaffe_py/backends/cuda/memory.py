"""Device memory: every device array comes from one pycuda.tools.DeviceMemoryPool, so a buffer
freed by one layer (a temporary, a reshaped blob) is reused by the next instead of going back to
the driver. Device arrays are PyCUDA GPUArrays.

The first five functions are what SyncedArray and Blob call; the rest serve the kernels' wrappers.
PyCUDA, an optional dependency, is imported inside the functions, so that importing this module
(which Blob does, on every `import nvcaffe_py`) never loads it.
"""
import atexit

import numpy as np

from . import context

_state = {"pool": None}


def _pool():
    if _state["pool"] is None:
        from pycuda.tools import DeviceMemoryPool

        context.ensure_active()
        _state["pool"] = DeviceMemoryPool()
        atexit.register(_release_pool)  # runs before the context's release (registered earlier)
    return _state["pool"]


def _release_pool():
    pool = _state["pool"]
    if pool is not None:
        pool.stop_holding()
        _state["pool"] = None


# -- the SyncedArray / Blob interface ---------------------------------------------------------
def empty(size, dtype):
    """A flat device array of `size` elements (uninitialised)."""
    from pycuda import gpuarray

    return gpuarray.GPUArray((int(size),), np.dtype(dtype), allocator=_pool().allocate)


def fill_zero(dev):
    import pycuda.driver as cuda

    if dev.size:
        cuda.memset_d8(pointer(dev), 0, dev.nbytes)


def copy_to_host(host_flat, dev):
    import pycuda.driver as cuda

    if dev.size:
        cuda.memcpy_dtoh(host_flat, pointer(dev))


def copy_to_device(dev, host_flat):
    import pycuda.driver as cuda

    if dev.size:
        cuda.memcpy_htod(pointer(dev), np.ascontiguousarray(host_flat))


def view(flat_dev, count, shape):
    """The first `count` elements of a flat device array seen with `shape`, sharing its memory."""
    from pycuda import gpuarray

    if not count:
        return gpuarray.GPUArray(shape, flat_dev.dtype, gpudata=0, base=flat_dev)
    return gpuarray.GPUArray(shape, flat_dev.dtype, gpudata=flat_dev.gpudata, base=flat_dev)


# -- helpers for the kernel wrappers ----------------------------------------------------------
def pointer(dev, offset: int = 0) -> int:
    """The device address of element `offset` of a GPUArray (0 for an empty one)."""
    if dev.gpudata is None:
        return 0
    return int(dev.gpudata) + int(offset) * dev.dtype.itemsize


def region(dev, offset: int, count: int, shape=None):
    """Elements [offset, offset + count) of a contiguous device array, as a view (default 1-D)."""
    from pycuda import gpuarray

    shape = (int(count),) if shape is None else tuple(shape)
    return gpuarray.GPUArray(shape, dev.dtype, gpudata=pointer(dev, offset) if count else 0, base=dev)


def copy(dst, src, count=None, dst_offset=0, src_offset=0):
    """Device-to-device copy of `count` elements (default: all of src); nothing to do when both
    are the same memory (an in-place layer's top and bottom)."""
    import pycuda.driver as cuda

    count = src.size if count is None else int(count)
    target, source = pointer(dst, dst_offset), pointer(src, src_offset)
    if count and target != source:
        cuda.memcpy_dtod(target, source, count * src.dtype.itemsize)


def to_device(host):
    """A device copy of a host array (same shape and dtype)."""
    host = np.ascontiguousarray(host)
    dev = empty(host.size, host.dtype)
    copy_to_device(dev, host.reshape(-1))
    return view(dev, host.size, host.shape)


def to_host(dev) -> np.ndarray:
    host = np.empty(dev.shape, dev.dtype)
    copy_to_host(host.reshape(-1), dev)
    return host
