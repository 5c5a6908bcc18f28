"""NCCL through ctypes: the few calls data-parallel training makes, on the library of the
`nvidia-nccl-cu12` wheel (the [nccl] extra) or a system libnccl.so.2.

Why ctypes: the wheel ships the library and no Python binding, and the bindings that exist come
with a framework (CuPy's with its own CUDA memory pool beside PyCUDA's, PyTorch's with all of
PyTorch). A dozen C calls on PyCUDA's device pointers and streams need neither. The library is
loaded on first use, never by importing this module.
"""
import ctypes
import ctypes.util
import functools
import importlib.util
import os

from ..errors import CaffeError

# ncclDataType_t and ncclRedOp_t values (nccl.h)
DATA_TYPES = {"int8": 0, "uint8": 1, "int32": 2, "uint32": 3, "int64": 4, "uint64": 5, "float16": 6,
              "float32": 7, "float64": 8}
AVERAGE = 4  # ncclAvg: the sum divided by the number of ranks (NCCL 2.10 and later)
UNIQUE_ID_BYTES = 128
_IN_PROGRESS = 7  # ncclInProgress


class UniqueId(ctypes.Structure):
    _fields_ = [("internal", ctypes.c_char * UNIQUE_ID_BYTES)]


def _candidates():
    spec = importlib.util.find_spec("nvidia")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        yield os.path.join(folder, "nccl", "lib", "libnccl.so.2")
    yield ctypes.util.find_library("nccl") or "libnccl.so.2"


@functools.cache
def library():
    """The loaded libnccl, its functions typed; CaffeError saying how to install it where none loads."""
    errors = []
    for path in _candidates():
        try:
            lib = ctypes.CDLL(path)
            break
        except OSError as exc:
            errors.append(str(exc))
    else:
        raise CaffeError(f"NCCL cannot be loaded ({'; '.join(errors)}); install it with pip install -e '.[nccl]'")
    pointer, size, handle = ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p
    signatures = {
        "ncclGetVersion": [ctypes.POINTER(ctypes.c_int)],
        "ncclGetUniqueId": [ctypes.POINTER(UniqueId)],
        "ncclCommInitRank": [ctypes.POINTER(handle), ctypes.c_int, UniqueId, ctypes.c_int],
        "ncclAllReduce": [pointer, pointer, size, ctypes.c_int, ctypes.c_int, handle, handle],
        "ncclBroadcast": [pointer, pointer, size, ctypes.c_int, ctypes.c_int, handle, handle],
        "ncclAllGather": [pointer, pointer, size, ctypes.c_int, handle, handle],
        "ncclGroupStart": [],
        "ncclGroupEnd": [],
        "ncclCommGetAsyncError": [handle, ctypes.POINTER(ctypes.c_int)],
        "ncclCommAbort": [handle],
        "ncclCommDestroy": [handle],
    }
    for name, arguments in signatures.items():
        function = getattr(lib, name)
        function.argtypes, function.restype = arguments, ctypes.c_int
    lib.ncclGetErrorString.argtypes, lib.ncclGetErrorString.restype = [ctypes.c_int], ctypes.c_char_p
    return lib


def check(result, what):
    if result not in (0, _IN_PROGRESS):
        message = library().ncclGetErrorString(result).decode()
        raise CaffeError(f"NCCL {what} failed: {message} (NCCL error {result})")


def available() -> bool:
    """pycaffe's caffe.has_nccl(): whether NCCL loads here."""
    try:
        library()
    except CaffeError:
        return False
    return True


def version() -> str:
    value = ctypes.c_int()
    check(library().ncclGetVersion(ctypes.byref(value)), "ncclGetVersion")
    major, rest = divmod(value.value, 10000) if value.value >= 10000 else divmod(value.value, 1000)
    minor, patch = divmod(rest, 100)
    return f"{major}.{minor}.{patch}"


def new_unique_id() -> bytes:
    """ncclGetUniqueId: the id every rank's communicator is made with (pycaffe's NCCL.new_uid())."""
    uid = UniqueId()
    check(library().ncclGetUniqueId(ctypes.byref(uid)), "ncclGetUniqueId")
    return ctypes.string_at(ctypes.addressof(uid), UNIQUE_ID_BYTES)
