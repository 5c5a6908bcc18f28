"""One CUDA context per process, on the device chosen with `-gpu N` / `caffe.set_device(N)`.

PyCUDA is imported inside the functions only, so importing this module never needs a GPU, a
driver or PyCUDA. The context is the device's primary context (the one the CUDA runtime, CuPy and
PyTorch use), so benchmarks can compare against those libraries in the same process; it is never
created by `import pycuda.autoinit`.
"""
import atexit

from ... import mode
from ...errors import CaffeError

_state = {"context": None, "device_id": None, "sm_count": None}


def _first_line(exc) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def unavailable_reason():
    """None when a GPU is usable, else one line: no pycuda, no libcuda, driver error, no device."""
    try:
        import pycuda.driver as cuda
    except ImportError as exc:  # no PyCUDA, or PyCUDA without libcuda.so.1
        return f"PyCUDA cannot be imported ({_first_line(exc)})"
    except OSError as exc:
        return f"the CUDA driver library cannot be loaded ({_first_line(exc)})"
    try:
        cuda.init()
        count = cuda.Device.count()
    except cuda.Error as exc:
        return f"the CUDA driver is not usable ({_first_line(exc)})"
    if count == 0:
        return "no CUDA device is present"
    return None


def activate(device_id: int = 0):
    """Make device `device_id` current for this process (once; a second device is an error)."""
    device_id = int(device_id)
    if _state["context"] is not None:
        if device_id != _state["device_id"]:
            raise CaffeError(f"the process already uses GPU {_state['device_id']}; "
                             f"one GPU per process (asked for GPU {device_id})")
        return
    reason = unavailable_reason()
    if reason is not None:
        raise CaffeError(f"GPU {device_id} is not usable: {reason}")
    import pycuda.driver as cuda

    count = cuda.Device.count()
    if not 0 <= device_id < count:
        raise CaffeError(f"there is no GPU {device_id}: this machine has {count} (numbered from 0)")
    context = cuda.Device(device_id).retain_primary_context()
    context.push()
    _state.update(context=context, device_id=device_id)
    atexit.register(_release)


def ensure_active():
    """Activate the device selected in `nvcaffe_py.mode` unless a context is already current."""
    if _state["context"] is None:
        activate(mode.device_id())


def is_active() -> bool:
    return _state["context"] is not None


def synchronize():
    import pycuda.driver as cuda

    cuda.Context.synchronize()


def device_count() -> int:
    """How many CUDA devices there are (after unavailable_reason() found the driver usable)."""
    import pycuda.driver as cuda

    return cuda.Device.count()


def multiprocessor_count() -> int:
    if _state["sm_count"] is None:
        import pycuda.driver as cuda

        ensure_active()
        attribute = cuda.device_attribute.MULTIPROCESSOR_COUNT
        _state["sm_count"] = cuda.Context.get_device().get_attribute(attribute)
    return _state["sm_count"]


def describe(device_id: int = 0) -> dict:
    """What `device_query` prints: name, compute capability, memory, multiprocessors."""
    reason = unavailable_reason()
    if reason is not None:
        raise CaffeError(f"GPU {device_id} is not usable: {reason}")
    import pycuda.driver as cuda

    count = device_count()
    if not 0 <= device_id < count:
        raise CaffeError(f"there is no GPU {device_id}: this machine has {count}")
    device = cuda.Device(device_id)
    major, minor = device.compute_capability()
    return {
        "device_id": device_id,
        "name": device.name(),
        "compute_capability": f"{major}.{minor}",
        "total_memory_bytes": device.total_memory(),
        "multiprocessors": device.get_attribute(cuda.device_attribute.MULTIPROCESSOR_COUNT),
    }


def _release():
    context = _state["context"]
    if context is None:
        return
    from pycuda.tools import clear_context_caches

    context.pop()
    _state.update(context=None, device_id=None, sm_count=None)
    clear_context_caches()
