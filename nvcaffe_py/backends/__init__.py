"""Compute backends: `cpu` is NumPy and always there; `cuda` (PyCUDA) is optional.

Nothing here imports PyCUDA until a GPU is asked for, so `import nvcaffe_py` never needs a GPU.
"""
from ..errors import CaffeError


def cuda_unavailable_reason():
    """None when a GPU is usable, else a one-line reason (no pycuda, no driver, no device)."""
    try:
        from .cuda import context
    except ImportError as exc:
        return f"the CUDA backend cannot be imported: {exc}"
    return context.unavailable_reason()


def require_cuda(device_id=0):
    reason = cuda_unavailable_reason()
    if reason is not None:
        raise CaffeError(f"GPU mode requested but no GPU is usable: {reason}")
    from .cuda import context

    context.activate(device_id)
