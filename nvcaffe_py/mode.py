"""Process-wide execution state, as Caffe's `Caffe` singleton: CPU or GPU mode, the device, and
the multi-solver bookkeeping pycaffe exposes (solver_count, solver_rank, multiprocess).

This module only holds the state; switching to the GPU checks that one is usable first, which is
the backends' business (`nvcaffe_py.backends.set_mode_gpu`, exported as `nvcaffe_py.set_mode_gpu`).
"""
CPU = "CPU"
GPU = "GPU"

_state = {"mode": CPU, "device": 0, "solver_count": 1, "solver_rank": 0, "multiprocess": False}


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


# pycaffe's Caffe::solver_count & co.: how many solvers train together and which one this is, set by
# nvcaffe_py.scaleout when a data-parallel run starts (or by a pycaffe script, as BVLC's train.py).
# Only rank 0 logs, tests and snapshots; the data layers deal by rank (docs/DESIGN.md, "Scale-out").
def solver_count() -> int:
    return _state["solver_count"]


def set_solver_count(count: int):
    _state["solver_count"] = int(count)


def solver_rank() -> int:
    return _state["solver_rank"]


def set_solver_rank(rank: int):
    _state["solver_rank"] = int(rank)


def multiprocess() -> bool:
    return _state["multiprocess"]


def set_multiprocess(value: bool):
    _state["multiprocess"] = bool(value)
