"""One CUDA context per process, on the device chosen with `-gpu N` / `caffe.set_device(N)`.

PyCUDA is imported inside the functions only, so importing this module never needs a GPU, a
driver or PyCUDA. The context is the device's primary context (the one the CUDA runtime, CuPy and
PyTorch use), so benchmarks can compare against those libraries in the same process; it is never
created by `import pycuda.autoinit`.

A CUDA context is current per thread: the thread that activates it has it; another thread that
issues CUDA calls (a data layer's prefetch thread allocating page-locked memory and waiting for
its uploads) does so inside `pushed()`. A context does not survive fork: a child forked after the
parent used the GPU gets a CaffeError saying so on its first GPU call (the modules that keep
device state register with `on_reset` to forget it there).
"""
import atexit
import contextlib
import os

from ... import mode
from ...errors import CaffeError
from . import traffic

_state = {"context": None, "device_id": None, "sm_count": None, "forked_from": None}
_resets = []  # functions that forget device state kept elsewhere (streams, the memory pool)


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


def on_reset(function):
    """Call `function()` whenever the context goes (exit, tests, a forked child)."""
    _resets.append(function)


def _reset():
    _state.update(context=None, device_id=None, sm_count=None)
    for function in _resets:
        function()


def _forked_child():
    if _state["context"] is not None:
        _state["forked_from"] = (os.getppid(), _state["device_id"])
        _reset()


os.register_at_fork(after_in_child=_forked_child)


def _refuse_if_forked():
    if _state["forked_from"] is not None:
        parent, used = _state["forked_from"]
        raise CaffeError(f"this process was forked from process {parent} after that one used GPU {used}, and a CUDA "
                         f"context does not survive fork: start worker processes with multiprocessing's 'spawn' or "
                         f"'forkserver' method, or let only the child processes use the GPU")


def activate(device_id: int = 0):
    """Make device `device_id` current for this process (once; a second device is an error)."""
    device_id = int(device_id)
    _refuse_if_forked()
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


@contextlib.contextmanager
def pushed():
    """The process's context current in the calling thread inside the block (for threads other
    than the one that activated it, which set_mode_gpu did)."""
    _refuse_if_forked()
    context = _state["context"]
    if context is None:
        raise CaffeError("no CUDA context is active in this process: GPU mode must be set (set_mode_gpu) before "
                         "another thread uses the GPU")
    context.push()
    try:
        yield
    finally:
        context.pop()


def synchronize():
    import pycuda.driver as cuda

    traffic.count("sync")
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
    _reset()
    clear_context_caches()
