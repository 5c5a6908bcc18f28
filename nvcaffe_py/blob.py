"""Blob: an N-d array of data and its gradient (diff), as Caffe's Blob.

Data and diff are SyncedArrays holding flat buffers; `blob.data` / `blob.diff` are NumPy views of
them in the blob's shape. Reshaping keeps the buffers while they are big enough (Caffe's capacity
rule), so views handed out earlier stay valid, and two blobs can share one buffer (`share_data`),
which is how Flatten/Reshape and shared parameters avoid copies.
"""
import math

import numpy as np

from . import host_memory, mode
from .backends.cuda import memory
from .errors import CaffeError
from .synced_array import SyncedArray

MAX_BLOB_AXES = 32
MAX_COUNT = (1 << 63) - 1  # element counts and offsets are int64 throughout
# Shapes of fewer bytes than this are not checked against the memory the process may use (the
# check reads resource limits; this keeps the per-forward reshape at one comparison).
_MEMORY_CHECK_BYTES = 1 << 26


class ShapeError(CaffeError):
    """A shape no blob can take (a negative dimension, more values than fit or than memory holds);
    the Net adds the layer that asked for it."""


class Blob:
    def __init__(self, *shape, dtype=np.float32):
        if len(shape) == 1 and isinstance(shape[0], (list, tuple)):
            shape = tuple(shape[0])
        self.dtype = np.dtype(dtype)
        self._shape = ()
        self._count = 0
        self._data = SyncedArray(0, self.dtype)
        self._diff = SyncedArray(0, self.dtype)
        self.reshape(*shape)

    # -- shape -------------------------------------------------------------------------------
    def reshape(self, *shape):
        if len(shape) == 1 and isinstance(shape[0], (list, tuple, np.ndarray)):
            shape = tuple(shape[0])
        shape = tuple(int(d) for d in shape)
        if len(shape) > MAX_BLOB_AXES:
            raise ShapeError(f"blob shape has {len(shape)} axes; at most {MAX_BLOB_AXES} are allowed")
        if any(d < 0 for d in shape):
            raise ShapeError(f"blob shape {shape} has a negative dimension")
        count = math.prod(shape)
        if count * self.dtype.itemsize > _MEMORY_CHECK_BYTES:
            self._check_size(shape, count)
        self._shape = shape
        self._count = count
        if count > self._data.size:
            self._data = SyncedArray(count, self.dtype)
            self._diff = SyncedArray(count, self.dtype)

    def _check_size(self, shape, count):
        if count > MAX_COUNT:
            raise ShapeError(f"blob shape {shape} holds {count} values, more than 2^63 - 1")
        usable = host_memory.usable_bytes()
        if count * self.dtype.itemsize > usable:
            raise ShapeError(f"blob shape {shape} needs {count * self.dtype.itemsize} bytes, more than this process "
                             f"may use ({usable})")

    def reshape_like(self, other: "Blob"):
        self.reshape(other.shape)

    @property
    def shape(self) -> tuple:
        return self._shape

    @property
    def num_axes(self) -> int:
        return len(self._shape)

    @property
    def count(self) -> "_Count":
        """Number of elements. pycaffe reads `blob.count` as a number; Caffe's C++ API calls
        `count(start, end)` for a range of axes; both spellings work."""
        return _Count(self._count, self._shape)

    def canonical_axis_index(self, axis: int) -> int:
        n = len(self._shape)
        if not -n <= axis < max(n, 1):
            raise CaffeError(f"axis {axis} out of range for a {n}-axis blob of shape {self._shape}")
        return axis + n if axis < 0 else axis

    def legacy_shape(self, index: int) -> int:
        """Caffe's LegacyShape: num/channels/height/width, padding missing axes with 1."""
        if index >= len(self._shape) or index < -len(self._shape):
            return 1
        return self._shape[index]

    num = property(lambda self: self.legacy_shape(0))
    channels = property(lambda self: self.legacy_shape(1))
    height = property(lambda self: self.legacy_shape(2))
    width = property(lambda self: self.legacy_shape(3))

    # -- host data ---------------------------------------------------------------------------
    # `data` and `diff` are writable (pycaffe scripts assign through them), so asking for one
    # marks the device copy stale; code that only reads uses `data_readonly()` / `diff_readonly()`,
    # which keep it valid (in GPU mode a host read then costs no re-upload) and refuse writes.
    @property
    def data(self) -> np.ndarray:
        return self._data.host[: self._count].reshape(self._shape)

    @data.setter
    def data(self, value):
        self.data[...] = value

    @property
    def diff(self) -> np.ndarray:
        return self._diff.host[: self._count].reshape(self._shape)

    @diff.setter
    def diff(self, value):
        self.diff[...] = value

    def data_readonly(self) -> np.ndarray:
        return _readonly(self._data.host_readonly()[: self._count].reshape(self._shape))

    def diff_readonly(self) -> np.ndarray:
        return _readonly(self._diff.host_readonly()[: self._count].reshape(self._shape))

    # -- device data (CUDA backend) ----------------------------------------------------------
    @property
    def gpu_data(self):
        return memory.view(self._data.device, self._count, self._shape)

    @property
    def gpu_diff(self):
        return memory.view(self._diff.device, self._count, self._shape)

    def gpu_data_readonly(self):
        return memory.view(self._data.device_readonly(), self._count, self._shape)

    def gpu_diff_readonly(self):
        return memory.view(self._diff.device_readonly(), self._count, self._shape)

    @property
    def capacity(self) -> int:
        """Elements the data buffer holds (at least count: reshaping smaller keeps the buffer)."""
        return self._data.size

    def set_gpu_data(self, flat_dev):
        """Hold data in `flat_dev`, a flat device array of at least `capacity` elements, now the
        current values (the host copy is stale); see SyncedArray.adopt_device."""
        self._data.adopt_device(flat_dev)

    def zero_diff(self):
        """Zero the gradient on the side that computes it: the device in GPU mode (no host round
        trip), the host otherwise."""
        if mode.gpu_mode():
            memory.fill_zero(self.gpu_diff)
        else:
            self.diff[...] = 0

    # -- sharing -----------------------------------------------------------------------------
    def share_data(self, other: "Blob"):
        if other._count != self._count:
            raise CaffeError(f"cannot share data between blobs of shapes {other.shape} and {self.shape}")
        self._data = other._data

    def share_diff(self, other: "Blob"):
        if other._count != self._count:
            raise CaffeError(f"cannot share diff between blobs of shapes {other.shape} and {self.shape}")
        self._diff = other._diff

    def shares_data_with(self, other: "Blob") -> bool:
        return self._data is other._data

    @property
    def data_storage(self) -> SyncedArray:
        """The buffer that holds this blob's data (one object for blobs that share it)."""
        return self._data

    def use_data_storage(self, storage: SyncedArray):
        """Hold data in `storage`, a SyncedArray of at least this blob's count: blobs whose values
        are never needed at the same time may share one (the deploy-time memory plan). A later
        reshape past its size gives the blob a buffer of its own again."""
        if storage.size < self._count:
            raise CaffeError(f"a buffer of {storage.size} elements cannot hold a blob of shape {self.shape}")
        self._data = storage

    def __repr__(self):
        return f"Blob(shape={self._shape}, dtype={self.dtype.name})"


class _Count(int):
    def __new__(cls, value, shape):
        obj = super().__new__(cls, value)
        obj._shape = shape
        return obj

    def __call__(self, start: int = 0, end: int | None = None) -> int:
        end = len(self._shape) if end is None else end
        return math.prod(self._shape[start:end])


def _readonly(view: np.ndarray) -> np.ndarray:
    view.flags.writeable = False
    return view
