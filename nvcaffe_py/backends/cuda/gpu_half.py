"""GPUHalf: the base of every layer's GPU half, and DeviceBuffer, the device arrays a half keeps.

A layer's `make_gpu()` builds its half with explicit arguments (what setup decided: a kernel size,
a method, the owner layer when it needs the parameter blobs); the half launches its family's
kernels in `forward` / `backward`, as the layer's `forward_cpu` / `backward_cpu` compute the
same thing in NumPy. What it keeps between calls (a pooling mask, saved statistics) it declares
in its constructor as DeviceBuffers, so nothing is hung on the layer.

    class PoolingGPU(GPUHalf):
        def __init__(self, *, max_pool, kernel, stride, pad):
            ...
            self.mask = DeviceBuffer(np.int32)
        def forward(self, bottom, top): ...
        def backward(self, top, propagate_down, bottom): ...
"""
import numpy as np

from . import memory


class GPUHalf:
    def forward(self, bottom, top):
        raise NotImplementedError

    def backward(self, top, propagate_down, bottom):
        # As Layer.backward_cpu: a half without a gradient is never asked for one by the Net.
        if any(propagate_down):
            raise NotImplementedError(f"{type(self).__name__} has no backward")


class ViewOnly(GPUHalf):
    """The half of a layer whose tops only share its bottoms' memory (Flatten, Reshape): there is
    no work on either backend, so it counts as running on the GPU."""

    def forward(self, bottom, top):
        pass

    def backward(self, top, propagate_down, bottom):
        pass


class DeviceBuffer:
    """A device array a GPU half keeps from call to call, of `dtype`: `get(n)` gives its first n
    elements, reallocated (contents lost) only when it must grow."""

    def __init__(self, dtype):
        self.dtype = np.dtype(dtype)
        self._array = None

    def get(self, size: int, shape=None):
        size = int(size)
        if self._array is None or self._array.size < size:
            self._array = memory.empty(size, self.dtype)
        return memory.region(self._array, 0, size, shape)

    @property
    def allocated(self) -> bool:
        return self._array is not None
