"""Device memory: every device array comes from one stream-ordered pool (memory_pool.py), so a
buffer freed by one layer (a temporary, a reshaped blob) is reused by the next instead of going
back to the driver. Device arrays are PyCUDA GPUArrays. Device work (memsets, device copies) runs
on the compute stream (streams.py); the synchronous host copies wait for it.

The first functions are what SyncedArray and Blob call; then the input path's (page-locked host
arrays, asynchronous uploads); the rest serve the kernels' wrappers. PyCUDA, an optional
dependency, is imported inside the functions, so that importing this module (which Blob does, on
every `import nvcaffe_py`) never loads it.
"""
import atexit

import numpy as np

from . import context, streams, traffic
from .memory_pool import StreamOrderedPool, use_on as _use_on

_state = {"pool": None}


def _pool():
    if _state["pool"] is None:
        import pycuda.driver as cuda

        context.ensure_active()
        _state["pool"] = StreamOrderedPool(cuda, streams.compute())
        atexit.register(_release_pool)  # runs before the context's release (registered earlier)
    return _state["pool"]


def _release_pool():
    pool = _state["pool"]
    if pool is not None:
        pool.stop_holding()
        _state["pool"] = None


context.on_reset(lambda: _state.update(pool=None))


# -- the SyncedArray / Blob interface ---------------------------------------------------------
def empty(size, dtype, stream=None):
    """A flat device array of `size` elements (uninitialised), for work on `stream` (default:
    the compute stream; `use_on` adds others)."""
    from pycuda import gpuarray

    pool = _pool()
    return gpuarray.GPUArray((int(size),), np.dtype(dtype), allocator=lambda n: pool.allocate(n, stream))


def fill_zero(dev):
    import pycuda.driver as cuda

    if dev.size:
        cuda.memset_d8_async(pointer(dev), 0, dev.nbytes, streams.compute())


def copy_to_host(host_flat, dev):
    import pycuda.driver as cuda

    context.ensure_active()
    if dev.size:
        traffic.count("dtoh", host_flat.nbytes)
        cuda.memcpy_dtoh(host_flat, pointer(dev))


def copy_to_device(dev, host_flat):
    import pycuda.driver as cuda

    context.ensure_active()
    if dev.size:
        traffic.count("htod", host_flat.nbytes)
        cuda.memcpy_htod(pointer(dev), np.ascontiguousarray(host_flat))


# -- the input path -----------------------------------------------------------------------------
def pinned_empty(shape, dtype) -> np.ndarray:
    """A page-locked host array (the calling thread needs the context: context.pushed())."""
    import pycuda.driver as cuda

    return cuda.pagelocked_empty(tuple(shape), np.dtype(dtype))


def upload_async(dev, host_flat, stream):
    """Queue a copy of a host array (page-locked, or the driver stages it) into `dev` on `stream`;
    the host array must stay unchanged until an event recorded after it is done."""
    import pycuda.driver as cuda

    if host_flat.size:
        traffic.count("htod_async", host_flat.nbytes)
        cuda.memcpy_htod_async(pointer(dev), host_flat, stream)


def use_on(dev, stream):
    """Record that work on `stream` uses the memory of `dev` (a device array from `empty`), so
    that the pool orders its reuse after that work."""
    while not hasattr(dev.gpudata, "streams"):
        dev = dev.base
    _use_on(dev.gpudata, stream)


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
        cuda.memcpy_dtod_async(target, source, count * src.dtype.itemsize, streams.compute())


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
