"""The device memory pool, stream-ordered (as cudaMallocAsync's pools are).

A freed block goes back to the pool at once, whatever work on it is still queued: on the stream it
was used on, later work runs after that work, so the block can serve the next allocation for that
stream at once (the layers' temporaries, all on the compute stream, are reused within a pass as
before). Given to another stream, it would be reused too early: a block remembers every stream it
was used on (`use_on`), and an allocation for another stream first makes its stream wait for an
event recorded on those (the work queued there when the block was freed comes before the event).

A stand-in driver may ask for reused blocks to be filled with 0xFF bytes (NaN as a float) on their
new stream (`POISON_REUSED_MEMORY`), as tests/cuda_emulator.py does for fresh ones, so that a kernel
reading what nothing wrote fails there.

Sizes are rounded up to bins (multiples of 512 bytes, then eight bins per power of two), and a
block serves any request of its bin. When the driver has no memory left, the pool waits for the
device, returns the blocks it holds and tries once more.
"""
import threading

_GRANULE = 512


def bin_bytes(nbytes: int) -> int:
    """The size a request of `nbytes` is served with: at most 1/8 more (and at least 512 bytes)."""
    nbytes = max(int(nbytes), 1)
    if nbytes <= 8 * _GRANULE:
        return -(-nbytes // _GRANULE) * _GRANULE
    step = 1 << (nbytes.bit_length() - 4)
    return -(-nbytes // step) * step


class Block:
    """A pooled allocation: converts to its device address; goes back to the pool when dropped."""

    __slots__ = ("raw", "nbytes", "streams", "_pool", "__weakref__")

    def __init__(self, raw, nbytes, stream, pool):
        self.raw, self.nbytes, self.streams, self._pool = raw, nbytes, {stream}, pool

    def __int__(self):
        return int(self.raw)

    __index__ = __int__

    def __del__(self):
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.release(self.raw, self.nbytes, self.streams)


class StreamOrderedPool:
    def __init__(self, driver, default_stream):
        self._driver = driver  # pycuda.driver (or a stand-in)
        self._default = default_stream  # the stream an allocation is for unless told otherwise
        self._free = {}  # bin bytes -> [(raw allocation, streams it was used on)]
        self._lock = threading.RLock()  # a block dropped by garbage collection inside allocate releases
        self.held_bytes = 0  # bytes of the free blocks the pool keeps

    def allocate(self, nbytes, stream=None) -> Block:
        stream = stream or self._default
        size = bin_bytes(nbytes)
        with self._lock:
            free = self._free.get(size)
            entry = free.pop() if free else None
            if entry is not None:
                self.held_bytes -= size
        if entry is None:
            return Block(self._new(size), size, stream, self)
        raw, used_on = entry
        for other in used_on - {stream}:  # its work on the block, queued before the free, comes first
            stream.wait_for_event(self._driver.Event().record(other))
        if getattr(self._driver, "POISON_REUSED_MEMORY", False):
            self._driver.memset_d8_async(int(raw), 0xFF, size, stream)
        return Block(raw, size, stream, self)

    def _new(self, size):
        try:
            return self._driver.mem_alloc(size)
        except self._driver.Error:
            self._driver.Context.synchronize()
            self.stop_holding()
            return self._driver.mem_alloc(size)

    def release(self, raw, size, streams):
        with self._lock:
            self._free.setdefault(size, []).append((raw, frozenset(streams)))
            self.held_bytes += size

    def stop_holding(self):
        """Give the free blocks back to the driver (after the work queued on them is done)."""
        with self._lock:
            blocks = [raw for entries in self._free.values() for raw, _ in entries]
            self._free.clear()
            self.held_bytes = 0
        for raw in blocks:
            raw.free()


def use_on(block: Block, stream):
    """Record that work on `stream` uses `block` (beside the stream it was allocated for)."""
    block.streams.add(stream)
