"""A stand-in for PyCUDA that runs the project's CUDA kernels on the CPU, so that the CUDA
backend's Python code and kernels are exercised on machines without a GPU.

`installed()` is a context manager that puts fake `pycuda.driver`, `.gpuarray`, `.tools` and
`.compiler` modules into sys.modules (and resets the backend's context and memory pool around
it). SourceModule compiles the .cu source with g++ and tests/cuda_emulator.h, where each CUDA
thread is a std::thread; device memory is host memory, so a device address is a host address.
It checks our code's logic, not the GPU's behaviour (timing, memory model, compiler).

Streams are queues of operations, so that a missing event wait shows: the legacy default stream
(the synchronous calls, `prepared_call`) runs at once, after draining the blocking streams as CUDA
does; of the explicit streams, those `late()` names run nothing until something waits for them
(a synchronize, an event synchronized or waited on by a stream that runs), the others run each
operation when it is issued. `late("side")` (the default) defers the non-blocking streams (an
upload that nobody waits for has not happened yet), `late("compute")` the blocking ones (kernels
queued before an upload into their memory have not read it yet), `late("all")` both (a host
buffer whose upload nobody waited for has not been read yet). An asynchronous copy from
page-locked memory reads its source when it runs; one from pageable memory copies it when issued
(the driver's staging), and is counted in `PAGEABLE_ASYNC_COPIES`. Every driver call needs a
context current in the calling thread (Context.push/pop keep a stack per thread), as CUDA's do.
"""
import collections
import contextlib
import ctypes
import hashlib
import os
import re
import subprocess
import sys
import tempfile
import threading
import types
import weakref

import numpy as np

HEADER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cuda_emulator.h")
CACHE = os.path.join(tempfile.gettempdir(), "nvcaffe_cuda_emulator")
# A kernel in g++'s preprocessed output, where the header turned __global__ into this attribute.
_KERNEL = re.compile(r'extern\s+"C"\s+__attribute__\(\(used\)\)\s+void\s+(\w+)\s*\(')
_CTYPES = {"P": ctypes.c_void_p, "i": ctypes.c_int, "I": ctypes.c_uint, "q": ctypes.c_longlong,
           "Q": ctypes.c_ulonglong, "f": ctypes.c_float, "d": ctypes.c_double}


class Error(Exception):
    pass


# -- driver: contexts and streams -------------------------------------------------------------
_threads = threading.local()  # .contexts: this thread's context stack
_lock = threading.RLock()  # stream queues are drained from any thread
_late = {"flags": {1}}  # the stream flags whose streams run only when waited for
PAGEABLE_ASYNC_COPIES = [0]


def _contexts():
    if not hasattr(_threads, "contexts"):
        _threads.contexts = []
    return _threads.contexts


def _require_context():
    if not _contexts():
        raise Error(f"invalid device context: no CUDA context is current in thread "
                    f"'{threading.current_thread().name}'")


@contextlib.contextmanager
def late(which):
    """Inside the block, streams of kind `which` ("side": non-blocking, "compute": blocking, "all")
    run their operations only when something waits for them."""
    saved = _late["flags"]
    _late["flags"] = {"side": {1}, "compute": {0}, "all": {0, 1}}[which]
    try:
        yield
    finally:
        _late["flags"] = saved


class Stream:
    """An in-order queue of operations; see the module's docstring for when they run."""

    def __init__(self, flags=0, _legacy=False):
        _require_context()
        self.flags, self._legacy = int(flags), _legacy
        self._ops = collections.deque()
        self._issued = self._done = 0
        _streams.add(self)

    def _enqueue(self, op):
        with _lock:
            if self._legacy:  # synchronous: the blocking streams' work first, then this, now
                for stream in list(_streams):
                    if stream.flags == 0 and not stream._legacy:
                        stream._drain(stream._issued)
                op()
                return
            self._ops.append(op)
            self._issued += 1
            if self.flags not in _late["flags"]:
                self._drain(self._issued)

    def _drain(self, upto):
        with _lock:
            while self._done < upto:
                op = self._ops.popleft()
                op()
                self._done += 1

    def synchronize(self):
        _require_context()
        self._drain(self._issued)

    def is_done(self):
        return self._done == self._issued

    def wait_for_event(self, event):
        _require_context()
        self._enqueue(event._complete)


_streams = weakref.WeakSet()


def _stream(stream):
    return stream if stream is not None else _LEGACY[0]


_LEGACY = []


class Event:
    def __init__(self, flags=0):
        _require_context()
        self._stream, self._position = None, 0

    def record(self, stream=None):
        _require_context()
        stream = _stream(stream)
        with _lock:
            self._stream, self._position = stream, stream._issued
        return self

    def _complete(self):
        if self._stream is not None:
            self._stream._drain(self._position)

    def synchronize(self):
        _require_context()
        self._complete()
        return self

    def query(self):
        return self._stream is None or self._stream._done >= self._position


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

    def free(self):
        pass  # kept: a use after free reads stale data rather than crashing the test process


def mem_alloc(nbytes):
    _require_context()
    return DeviceAllocation(nbytes)


_pinned = []  # (start, end) of page-locked host arrays
_byte_bounds = getattr(np.lib, "array_utils", np).byte_bounds  # NumPy 2 moved it


def pagelocked_empty(shape, dtype, order="C", mem_flags=0):
    _require_context()
    array = np.empty(shape, dtype, order=order)
    start, end = _byte_bounds(array)
    with _lock:
        _pinned.append((start, end))
    return array


def _is_pinned(array):
    start, end = _byte_bounds(array)
    return any(s <= start and end <= e for s, e in _pinned)


def memset_d8(dest, value, count):
    memset_d8_async(dest, value, count, None)


def memset_d8_async(dest, value, count, stream=None):
    _require_context()
    dest, count = int(dest), int(count)
    _stream(stream)._enqueue(lambda: ctypes.memset(dest, value, count))


def memcpy_htod(dest, src):
    _require_context()
    src = np.ascontiguousarray(src)
    _stream(None)._enqueue(lambda: ctypes.memmove(int(dest), src.ctypes.data, src.nbytes))


def memcpy_htod_async(dest, src, stream=None):
    _require_context()
    if not _is_pinned(src):  # the driver stages pageable memory before it returns
        PAGEABLE_ASYNC_COPIES[0] += 1
        src = np.array(src, copy=True)
    dest = int(dest)
    _stream(stream)._enqueue(lambda: ctypes.memmove(dest, src.ctypes.data, src.nbytes))


def memcpy_dtoh(dest, src):
    _require_context()
    _stream(None)._enqueue(lambda: ctypes.memmove(dest.ctypes.data, int(src), dest.nbytes))


def memcpy_dtod(dest, src, size):
    memcpy_dtod_async(dest, src, size, None)


def memcpy_dtod_async(dest, src, size, stream=None):
    _require_context()
    dest, src, size = int(dest), int(src), int(size)
    _stream(stream)._enqueue(lambda: ctypes.memmove(dest, src, size))


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
        _contexts().append(self)
        with _lock:
            if not _LEGACY:
                _LEGACY.append(Stream(_legacy=True))

    @staticmethod
    def pop():
        if not _contexts():
            raise Error("cannot pop: no context is current in this thread")
        return _contexts().pop()

    @staticmethod
    def get_current():
        return _contexts()[-1] if _contexts() else None

    @staticmethod
    def synchronize():
        _require_context()
        for stream in list(_streams):
            stream._drain(stream._issued)

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
        self.prepared_async_call(grid, block, None, *args, shared_size=shared_size)

    def prepared_async_call(self, grid, block, stream, *args, shared_size=0):
        _require_context()
        if len(args) != len(self.arg_format):
            raise Error(f"{len(args)} arguments for format {self.arg_format}")
        values = [_CTYPES[code](arg) for code, arg in zip(self.arg_format, args)]
        pointers = (ctypes.c_void_p * max(len(values), 1))(*[ctypes.addressof(v) for v in values])
        grid = tuple(grid) + (1,) * (3 - len(grid))
        block = tuple(block) + (1,) * (3 - len(block))
        if any(g <= 0 for g in grid) or block[0] * block[1] * block[2] > 1024:
            raise Error(f"invalid launch configuration grid {grid} block {block}")
        dims = [ctypes.c_uint(v) for v in grid + block]

        def run(values=values):  # the argument values live until the launch runs
            self._launch(*dims, pointers)

        _stream(stream)._enqueue(run)


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
        _require_context()
        host = np.empty(self.shape, self.dtype)
        if self.size:
            memcpy_dtoh(host, self.gpudata)
        return host


def pycuda_modules():
    """The stand-in modules, fresh objects on each call (benchmarks/launch_tracer.py replaces parts)."""
    pycuda = types.ModuleType("pycuda")
    driver = types.ModuleType("pycuda.driver")
    for name in ("Error", "DeviceAllocation", "mem_alloc", "memset_d8", "memset_d8_async", "memcpy_htod",
                 "memcpy_htod_async", "memcpy_dtoh", "memcpy_dtod", "memcpy_dtod_async", "pagelocked_empty", "Device",
                 "Context", "Stream", "Event"):
        setattr(driver, name, globals()[name])
    driver.init = lambda: None
    driver.POISON_REUSED_MEMORY = True  # a pooled block reads as NaN until written, as a fresh one
    driver.device_attribute = _Attribute
    gpuarray = types.ModuleType("pycuda.gpuarray")
    gpuarray.GPUArray = GPUArray
    tools = types.ModuleType("pycuda.tools")
    tools.clear_context_caches = lambda: None
    compiler = types.ModuleType("pycuda.compiler")
    compiler.SourceModule = SourceModule
    pycuda.driver, pycuda.gpuarray, pycuda.tools, pycuda.compiler = driver, gpuarray, tools, compiler
    return {"pycuda": pycuda, "pycuda.driver": driver, "pycuda.gpuarray": gpuarray, "pycuda.tools": tools,
            "pycuda.compiler": compiler}


def _reset_backend():
    from nvcaffe_py.backends.cuda import context, kernels

    context._reset()
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
