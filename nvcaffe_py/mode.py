"""Process-wide execution mode, as Caffe's `Caffe::mode()` singleton: CPU or GPU, and the device."""
CPU = "CPU"
GPU = "GPU"

_state = {"mode": CPU, "device": 0}


def set_mode_cpu():
    _state["mode"] = CPU


def set_mode_gpu():
    """Switch to the GPU; raises CaffeError with the reason when no usable GPU exists."""
    from .backends import require_cuda

    require_cuda(_state["device"])
    _state["mode"] = GPU


def set_device(device_id: int):
    _state["device"] = int(device_id)


def mode() -> str:
    return _state["mode"]


def device_id() -> int:
    return _state["device"]


def gpu_mode() -> bool:
    return _state["mode"] == GPU
