"""A stand-in for PyCUDA that runs the project's CUDA kernels on the CPU, so that the CUDA
backend's Python code and kernels are exercised on machines without a GPU.

`installed()` is a context manager that puts fake `pycuda.driver`, `.gpuarray`, `.tools` and
`.compiler` modules into sys.modules (and resets the backend's context and memory pool around
it). SourceModule compiles the .cu source with g++ and tests/cuda_emulator.h, where each CUDA
thread is a std::thread; device memory is host memory, so a device address is a host address.
It checks our code's logic, not the GPU's behaviour (timing, memory model, compiler).
"""
import contextlib
import ctypes
import hashlib
import os
import re
import subprocess
import sys
import tempfile
import types

import numpy as np

HEADER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cuda_emulator.h")
CACHE = os.path.join(tempfile.gettempdir(), "nvcaffe_cuda_emulator")
# A kernel in g++'s preprocessed output, where the header turned __global__ into this attribute.
_KERNEL = re.compile(r'extern\s+"C"\s+__attribute__\(\(used\)\)\s+void\s+(\w+)\s*\(')
_CTYPES = {"P": ctypes.c_void_p, "i": ctypes.c_int, "I": ctypes.c_uint, "q": ctypes.c_longlong,
           "Q": ctypes.c_ulonglong, "f": ctypes.c_float, "d": ctypes.c_double}


class Error(Exception):
    pass


# -- driver: memory ---------------------------------------------------------------------------
class DeviceAllocation:
    """Host memory standing in for device memory, 256-byte aligned like cudaMalloc's. It starts
    as all-ones bytes (NaN as a float), so a kernel that reads memory nothing wrote yet gives NaN
    rather than whatever an earlier case left there, as a reused pool block could on a GPU."""

    def __init__(self, nbytes):
        self._buffer = np.full(int(nbytes) + 256, 0xFF, np.uint8)
        base = self._buffer.ctypes.data
        self._address = base + (-base) % 256

    def __int__(self):
        return self._address

    __index__ = __int__


def mem_alloc(nbytes):
    return DeviceAllocation(nbytes)


def memset_d8(dest, value, count):
    ctypes.memset(int(dest), value, int(count))


def memcpy_htod(dest, src):
    src = np.ascontiguousarray(src)
    ctypes.memmove(int(dest), src.ctypes.data, src.nbytes)


def memcpy_dtoh(dest, src):
    ctypes.memmove(dest.ctypes.data, int(src), dest.nbytes)


def memcpy_dtod(dest, src, size):
    ctypes.memmove(int(dest), int(src), int(size))


# -- driver: device and context -----------------------------------------------------------------
class _Attribute:
    MULTIPROCESSOR_COUNT = "MULTIPROCESSOR_COUNT"


class Device:
    def __init__(self, ordinal):
        self.ordinal = ordinal

    @staticmethod
    def count():
        return 1

    def name(self):
        return "CPU emulator"

    def compute_capability(self):
        return (9, 0)

    def total_memory(self):
        return 1 << 30

    def get_attribute(self, attribute):
        return 1  # one multiprocessor: grid-stride kernels get few blocks, which keeps them fast

    def retain_primary_context(self):
        return Context()


class Context:
    def push(self):
        pass

    def pop(self):
        pass

    @staticmethod
    def synchronize():
        pass

    @staticmethod
    def get_device():
        return Device(0)


# -- compiler -----------------------------------------------------------------------------------
class Function:
    def __init__(self, library, name):
        self._launch = getattr(library, f"emu_launch_{name}")
        self._launch.restype = None
        self.arg_format = None

    def prepare(self, arg_format):
        self.arg_format = arg_format
        return self

    def prepared_call(self, grid, block, *args, shared_size=0):
        if len(args) != len(self.arg_format):
            raise Error(f"{len(args)} arguments for format {self.arg_format}")
        values = [_CTYPES[code](arg) for code, arg in zip(self.arg_format, args)]
        pointers = (ctypes.c_void_p * max(len(values), 1))(*[ctypes.addressof(v) for v in values])
        grid = tuple(grid) + (1,) * (3 - len(grid))
        block = tuple(block) + (1,) * (3 - len(block))
        if any(g <= 0 for g in grid) or block[0] * block[1] * block[2] > 1024:
            raise Error(f"invalid launch configuration grid {grid} block {block}")
        self._launch(*[ctypes.c_uint(v) for v in grid + block], pointers)


def _preprocess(source, flags):
    result = subprocess.run(["g++", "-std=c++20", "-E", "-include", HEADER, *flags, "-x", "c++", "-"], input=source,
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise Error(f"emulator preprocessing failed:\n{result.stderr[-4000:]}")
    return result.stdout


class SourceModule:
    def __init__(self, source, nvcc="nvcc", options=(), include_dirs=(), no_extern_c=False, **_):
        flags = [f"-I{d}" for d in include_dirs] + [o for o in options if o.startswith("-D")]
        names = _KERNEL.findall(_preprocess(source, flags))
        trampolines = "".join(
            f'\nextern "C" void emu_launch_{n}(unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, '
            f"unsigned bz, void** args) {{ emu::launch(dim3{{gx, gy, gz}}, dim3{{bx, by, bz}}, "
            f"[args] {{ emu::call(&{n}, args); }}); }}\n" for n in names)
        text = source + trampolines
        key = hashlib.sha256((text + repr(flags) + open(HEADER).read()).encode()).hexdigest()[:24]
        os.makedirs(CACHE, exist_ok=True)
        library = os.path.join(CACHE, f"{key}.so")
        if not os.path.exists(library):
            src = os.path.join(CACHE, f"{key}.cpp")
            with open(src, "w") as f:
                f.write(text)
            command = ["g++", "-std=c++20", "-O1", "-shared", "-fPIC", "-pthread", "-include", HEADER, *flags,
                       src, "-o", library + ".tmp"]
            result = subprocess.run(command, capture_output=True, text=True)
            if result.returncode != 0:
                raise Error(f"emulator compile failed:\n{result.stderr[-4000:]}")
            os.replace(library + ".tmp", library)
        self._library = ctypes.CDLL(library)

    def get_function(self, name):
        return Function(self._library, name)


# -- gpuarray and tools -------------------------------------------------------------------------
class GPUArray:
    def __init__(self, shape, dtype, allocator=mem_alloc, base=None, gpudata=None, strides=None, order="C"):
        self.shape = (int(shape),) if np.isscalar(shape) else tuple(int(d) for d in shape)
        self.dtype = np.dtype(dtype)
        self.size = int(np.prod(self.shape, dtype=np.int64))
        self.nbytes = self.size * self.dtype.itemsize
        self.base = base
        if gpudata is None:
            self.gpudata = allocator(self.nbytes) if self.size else None
        else:
            self.gpudata = gpudata

    @property
    def ptr(self):
        return int(self.gpudata)

    def get(self):
        host = np.empty(self.shape, self.dtype)
        if self.size:
            memcpy_dtoh(host, self.gpudata)
        return host


class DeviceMemoryPool:
    def allocate(self, nbytes):
        return DeviceAllocation(nbytes)

    def stop_holding(self):
        pass


def pycuda_modules():
    """The stand-in modules, fresh objects on each call (benchmarks/launch_tracer.py replaces parts)."""
    pycuda = types.ModuleType("pycuda")
    driver = types.ModuleType("pycuda.driver")
    for name in ("Error", "DeviceAllocation", "mem_alloc", "memset_d8", "memcpy_htod", "memcpy_dtoh", "memcpy_dtod",
                 "Device", "Context"):
        setattr(driver, name, globals()[name])
    driver.init = lambda: None
    driver.device_attribute = _Attribute
    gpuarray = types.ModuleType("pycuda.gpuarray")
    gpuarray.GPUArray = GPUArray
    tools = types.ModuleType("pycuda.tools")
    tools.DeviceMemoryPool = DeviceMemoryPool
    tools.clear_context_caches = lambda: None
    compiler = types.ModuleType("pycuda.compiler")
    compiler.SourceModule = SourceModule
    pycuda.driver, pycuda.gpuarray, pycuda.tools, pycuda.compiler = driver, gpuarray, tools, compiler
    return {"pycuda": pycuda, "pycuda.driver": driver, "pycuda.gpuarray": gpuarray, "pycuda.tools": tools,
            "pycuda.compiler": compiler}


def _reset_backend():
    from nvcaffe_py.backends.cuda import context, kernels, memory

    context._state.update(context=None, device_id=None, sm_count=None)
    memory._state["pool"] = None
    kernels.clear_compiled()


@contextlib.contextmanager
def installed(modules=None):
    """Run the CUDA backend on the emulator (or on `modules`, from pycuda_modules()) inside the
    block; GPU mode is left to the caller."""
    modules = modules or pycuda_modules()
    saved = {name: sys.modules.get(name) for name in modules}
    sys.modules.update(modules)
    _reset_backend()
    try:
        yield
    finally:
        _reset_backend()
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


def available():
    """None when g++ can build the emulator, else the reason."""
    try:
        subprocess.run(["g++", "--version"], capture_output=True, check=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        return f"g++ is not usable ({exc})"
    return None
