"""A launch tracer: our CUDA backend's Python code runs with PyCUDA replaced by a recorder, so the
kernel launches, copies and synchronisations of a training iteration can be listed on a machine
without a GPU (benchmarks/gpu_model.py turns them into predicted times).

    tracer = LaunchTracer(multiprocessors=132)
    with tracer.installed():
        nvcaffe_py.set_mode_gpu()
        ...                       # build a solver, run a warm-up step
        with tracer.recording() as events:
            tracer.label = "conv1 forward"
            ...
    events: [Event(kind, name, label, ...), ...]

No kernel runs: device memory is address space only (a bump allocator, never read), a copy to
the host gives zeros, and a launch records its kernel's name, grid, block and arguments by the
parameter names its .cu file declares, how many bytes each pointer argument has before the end
of its allocation, and what ptxas says of the kernel for sm_90 (registers, shared memory). The
host time between events is measured, so the Python work of a step (layers, launcher, solver)
is in the trace as it costs on this CPU. Only the recording thread's events are kept: a prefetch
thread's waits (for a page-locked buffer's upload) do not hold the iteration up. Asynchronous
uploads are "htod_async" events; stream waits on events are "wait" events (no host cost); a
synchronize of the context, a stream or an event is a "sync".
"""
import bisect
import contextlib
import functools
import os
import sys
import tempfile
import threading
import time
from typing import NamedTuple

import numpy as np

from nvcaffe_py.backends.cuda import kernels

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))
import cuda_emulator  # noqa: E402  (the fake PyCUDA modules this tracer records through)


class Event(NamedTuple):
    kind: str  # "launch", "htod", "dtoh", "dtod", "memset", "htod_async", "wait" or "sync"
    name: str  # the kernel's name for a launch
    label: str  # what was running: a layer's pass, "solver update", ...
    grid: tuple
    block: tuple
    args: dict  # a launch's arguments by parameter name (device pointers as addresses)
    extents: dict  # a launch's non-null pointer arguments: bytes from there to their allocation's end
    itemsize: int  # a launch's element size (the Dtype its kernel was compiled for)
    registers: int  # a launch's registers per thread (ptxas, sm_90)
    shared_bytes: int  # a launch's static shared memory per block
    nbytes: int  # bytes a copy or memset moves
    host_seconds: float  # host time since the previous event (or since recording began)


class _Allocation(int):
    """A device address that was never backed by memory."""

    def free(self):
        pass


class LaunchTracer:
    def __init__(self, multiprocessors=132, device_name="traced GPU"):
        self.multiprocessors = multiprocessors
        self.device_name = device_name
        self.label = ""
        self._events = None
        self._thread = None  # the recording thread
        self._last = 0.0
        self._allocations = []  # (start, end), in increasing order: addresses are never reused

    # -- recording -------------------------------------------------------------------------------
    @contextlib.contextmanager
    def recording(self):
        """Record the events of the block into the list it yields."""
        self._events = []
        self._thread = threading.get_ident()
        self._last = time.perf_counter()
        try:
            yield self._events
        finally:
            self._events = None

    def _record(self, kind, nbytes=0, launch=None):
        if self._events is None or threading.get_ident() != self._thread:
            return
        now = time.perf_counter()
        function, grid, block, args = launch or (None, (), (), {})
        extents = {name: self._extent(args[name]) for name in (function.pointers if function else ()) if args[name]}
        self._events.append(Event(kind, function.name if function else "", self.label, tuple(grid), tuple(block), args,
                                  extents, function.itemsize if function else 0,
                                  *(function.resources if function else (0, 0)), int(nbytes), now - self._last))
        self._last = time.perf_counter()  # the recorder's own time is not the step's

    def _allocate(self, nbytes):
        start = self._allocations[-1][1] if self._allocations else 1 << 32
        start += -start % 256
        self._allocations.append((start, start + max(int(nbytes), 1)))
        return _Allocation(start)

    def _extent(self, address):
        index = bisect.bisect_right(self._allocations, (address, float("inf"))) - 1
        start, end = self._allocations[index]
        if not start <= address < end:
            raise ValueError(f"address {address:#x} is in no allocation")
        return end - address

    # -- the stand-in for PyCUDA: the emulator's, with memory, copies, syncs and launches recorded ----
    def _modules(self):
        tracer = self
        modules = cuda_emulator.pycuda_modules()
        driver = modules["pycuda.driver"]

        class Device(driver.Device):
            def name(self):
                return tracer.device_name

            def get_attribute(self, attribute):
                return tracer.multiprocessors

        class Context(driver.Context):
            @staticmethod
            def synchronize():
                tracer._record("sync")

            @staticmethod
            def get_device():
                return Device(0)

        class Stream:
            def __init__(self, flags=0):
                self.flags = flags

            def synchronize(self):
                tracer._record("sync")

            def wait_for_event(self, event):
                tracer._record("wait")

        class Event:
            def __init__(self, flags=0):
                pass

            def record(self, stream=None):
                return self

            def synchronize(self):
                tracer._record("sync")
                return self

            def query(self):
                return True

        class Function:
            def __init__(self, name, facts):
                self.name = name
                self.parameters, self.pointers, self.itemsize, self.resources = facts

            def prepare(self, arg_format):
                return self

            def prepared_async_call(self, grid, block, stream, *args, shared_size=0):
                tracer._record("launch", launch=(self, grid, block, dict(zip(self.parameters, args))))

        class SourceModule:
            def __init__(self, source, nvcc="nvcc", options=(), include_dirs=(), no_extern_c=False, **_):
                self._facts = _kernel_facts(source, tuple(options))

            def get_function(self, name):
                return Function(name, self._facts[name])

        def memcpy_dtoh(dest, src):
            dest[...] = 0
            tracer._record("dtoh", dest.nbytes)

        driver.Device, driver.Context, driver.mem_alloc = Device, Context, tracer._allocate
        driver.Stream, driver.Event, driver.POISON_REUSED_MEMORY = Stream, Event, False
        driver.pagelocked_empty = lambda shape, dtype, order="C", mem_flags=0: np.empty(shape, dtype, order=order)
        driver.memset_d8_async = lambda dest, value, count, stream=None: tracer._record("memset", count)
        driver.memcpy_htod = lambda dest, src: tracer._record("htod", np.asarray(src).nbytes)
        driver.memcpy_htod_async = lambda dest, src, stream=None: tracer._record("htod_async", np.asarray(src).nbytes)
        driver.memcpy_dtoh = memcpy_dtoh
        driver.memcpy_dtod_async = lambda dest, src, size, stream=None: tracer._record("dtod", size)
        modules["pycuda.compiler"].SourceModule = SourceModule
        return modules

    def installed(self):
        """Our CUDA backend runs on the recorder inside the block (GPU mode is left to the caller)."""
        return cuda_emulator.installed(self._modules())


@functools.lru_cache(maxsize=None)
def _kernel_facts(source, options):
    """{kernel: (parameter names, pointer parameter names, element size, (registers, shared bytes))}
    of a .cu source compiled with `options`, read as kernels.py reads a file."""
    dtype = next(dtype for dtype, c_type in kernels.C_TYPES.items() if f"-DDtype={c_type}" in options)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "source.cu")
        with open(path, "w") as f:
            f.write(source)
        parameters = kernels.parse_parameters(kernels.preprocess(path, dtype))
        resources = kernels.resource_usage(path, dtype)
    return {name: ([p for _, p in params], [p for code, p in params if code == "P"], dtype.itemsize, resources[name])
            for name, params in parameters.items()}
