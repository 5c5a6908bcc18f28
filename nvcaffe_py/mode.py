"""Process-wide execution mode, as Caffe's `Caffe::mode()` singleton: CPU or GPU, and the device.

This module only holds the state; switching to the GPU checks that one is usable first, which is
the backends' business (`nvcaffe_py.backends.set_mode_gpu`, exported as `nvcaffe_py.set_mode_gpu`).
"""
CPU = "CPU"
GPU = "GPU"

_state = {"mode": CPU, "device": 0}


def set_mode(value: str):
    """CPU or GPU, unchecked: callers use backends.set_mode_cpu / set_mode_gpu."""
    if value not in (CPU, GPU):
        raise ValueError(f"mode must be {CPU!r} or {GPU!r}, got {value!r}")
    _state["mode"] = value


def set_device(device_id: int):
    _state["device"] = int(device_id)


def mode() -> str:
    return _state["mode"]


def device_id() -> int:
    return _state["device"]


def gpu_mode() -> bool:
    return _state["mode"] == GPU
