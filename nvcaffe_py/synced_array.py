"""SyncedArray: one flat buffer with a host (NumPy) side and a lazily synchronised device side.

As Caffe's SyncedMemory: whichever side was written last is the "head"; reading the other side
copies first. Host access through `host` assumes the caller may write (NumPy cannot tell reads
from writes), so it marks the device copy stale; `host_readonly` does not.
The device side is provided by the CUDA backend (`nvcaffe_py.backends.cuda.memory`) and is only
touched when a device array is asked for, so a CPU-only process never imports PyCUDA.
"""
import numpy as np

from .backends.cuda import memory

UNINITIALIZED, AT_HOST, AT_DEVICE, SYNCED = "uninitialized", "host", "device", "synced"


class SyncedArray:
    __slots__ = ("size", "dtype", "_host", "_device", "head", "version")

    def __init__(self, size: int, dtype=np.float32):
        self.size = int(size)
        self.dtype = np.dtype(dtype)
        self._host = None
        self._device = None
        self.head = UNINITIALIZED
        self.version = 0

    # -- host side ---------------------------------------------------------------------------
    def _sync_to_host(self):
        if self.head == UNINITIALIZED:
            self._host = np.zeros(self.size, self.dtype)
            self.head = AT_HOST
        elif self.head == AT_DEVICE:
            if self._host is None:
                self._host = np.empty(self.size, self.dtype)
            memory.copy_to_host(self._host, self._device)
            self.head = SYNCED

    @property
    def host(self) -> np.ndarray:
        """Flat host array, writable: the device copy becomes stale."""
        if self.head is not AT_HOST:  # (every layer asks, several times a forward)
            self._sync_to_host()
            self.head = AT_HOST
        self.version += 1
        return self._host

    def host_readonly(self) -> np.ndarray:
        if self.head is not AT_HOST and self.head is not SYNCED:
            self._sync_to_host()
        return self._host

    # -- device side -------------------------------------------------------------------------
    def _sync_to_device(self):
        if self._device is None:
            self._device = memory.empty(self.size, self.dtype)
        if self.head == UNINITIALIZED:
            memory.fill_zero(self._device)
            self.head = AT_DEVICE
        elif self.head == AT_HOST:
            memory.copy_to_device(self._device, self._host)
            self.head = SYNCED

    @property
    def device(self):
        """Flat device array, writable: the host copy becomes stale."""
        self._sync_to_device()
        self.head = AT_DEVICE
        self.version += 1
        return self._device

    def device_readonly(self):
        self._sync_to_device()
        return self._device

    def adopt_device(self, dev):
        """Make `dev`, a flat device array of at least `size` elements that the caller's device work
        fills, the device side and the head (Caffe's set_gpu_data): a data layer's GPU forward
        swaps its double buffer in this way, with no copy."""
        if dev.size < self.size:
            raise ValueError(f"a device array of {dev.size} elements cannot hold {self.size}")
        self._device = dev
        self.head = AT_DEVICE
        self.version += 1
