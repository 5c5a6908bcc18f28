"""Compute backends: `cpu` (NumPy, always there) and `cuda` (PyCUDA, optional), and the switch
between them.

Nothing here imports PyCUDA until a GPU is asked for, so `import nvcaffe_py` never needs a GPU.
"""
import contextlib

from .. import mode
from ..errors import CaffeError
from .cpu import threads
from .cuda import context


def cuda_unavailable_reason():
    """None when a GPU is usable, else a one-line reason (no pycuda, no driver, no device)."""
    return context.unavailable_reason()


def require_cuda(device_id=0):
    """Activate GPU `device_id`; a CaffeError with the reason where no GPU is usable."""
    reason = cuda_unavailable_reason()
    if reason is not None:
        raise CaffeError(f"GPU mode requested but no GPU is usable: {reason}")
    context.activate(device_id)


def set_mode_cpu():
    mode.set_mode(mode.CPU)


def set_mode_gpu():
    """Switch to the GPU chosen with set_device (default 0); raises CaffeError with the reason
    when no usable GPU exists, and the mode stays as it was."""
    require_cuda(mode.device_id())
    mode.set_mode(mode.GPU)


@contextlib.contextmanager
def net_pass():
    """What the backends need around a pass over a net's layers: the CPU backend's threads (a
    CPU layer runs its parts on them; CPU-fallback layers in GPU mode too)."""
    with threads.scope():
        yield


def synchronize():
    """Wait for the queued GPU work (a no-op in CPU mode), so that a timer measures it."""
    if mode.gpu_mode():
        context.synchronize()
