"""Kernel loading and launching.

A family's kernels live in a `.cu` file beside its Python module; the file is compiled by
PyCUDA's SourceModule once per process and element type (`-DDtype=float` or `double`) and cached
on disk by PyCUDA across processes. Kernels are `extern "C" __global__`; their parameter types
are read from the preprocessed source, so a launch packs each argument as the kernel declares it
and a wrong argument count is an error naming the kernel, not a corrupted launch.

    _kernels = kernels.Source(__file__, "conv.cu")
    _kernels.get("im2col", dtype).launch(n, n, x, ...)   # n threads, grid-stride, then the arguments

`_kernels.get(name, dtype)` on the module's `Source` is the one way to look a kernel up (no
per-module wrappers): the call names the kernel and its element type where it is launched.
What nvcc tells of a file without a GPU (parameter names, ptxas's registers and shared memory
for sm_90, hence blocks per SM) serves the SGEMM's tile table and benchmarks/gpu_model.py.
"""
import functools
import os
import re
import shutil
import subprocess
import weakref

import numpy as np

from ...errors import CaffeError
from . import context, streams

INCLUDE_DIR = os.path.dirname(os.path.abspath(__file__))
BLOCK = 256
BLOCKS_PER_SM = 2048 // BLOCK  # enough resident blocks to fill every multiprocessor
C_TYPES = {np.dtype(np.float32): "float", np.dtype(np.float64): "double"}

_SIGNATURE = re.compile(
    r'extern\s+"C"\s+__attribute__\(\(global\)\)\s+void\s+'
    r'(?:__attribute__\(\(launch_bounds\([^()]*\)\)\)\s+)?(\w+)\s*\(([^)]*)\)')
_SCALAR_CODES = {
    "int": "i", "unsigned int": "I", "unsigned": "I", "long long": "q", "long long int": "q",
    "unsigned long long": "Q", "unsigned long long int": "Q", "float": "f", "double": "d",
}


def nvcc() -> str:
    return os.environ.get("NVCC") or shutil.which("nvcc") or "/usr/local/cuda/bin/nvcc"


def compile_options(dtype) -> list:
    dtype = np.dtype(dtype)
    if dtype not in C_TYPES:
        raise CaffeError(f"the CUDA kernels support float32 and float64, not {dtype.name}")
    return [f"-DDtype={C_TYPES[dtype]}"]


def parse_parameters(preprocessed: str) -> dict:
    """{kernel name: [(code, parameter name), ...]} of every extern "C" kernel in preprocessed
    source; the code 'P' is a pointer, the other letters are struct codes of the scalar types."""
    kernels = {}
    for name, params in _SIGNATURE.findall(preprocessed):
        parameters = []
        for param in (p.strip() for p in params.split(",")):
            if not param or param == "void":
                continue
            words = [w for w in param.replace("*", " * ").split() if w not in ("const", "__restrict__")]
            if "*" in words:
                parameters.append(("P", words[-1]))
                continue
            base = " ".join(words[:-1])  # drop the parameter's name
            if base not in _SCALAR_CODES:
                raise CaffeError(f"kernel {name}: parameter '{param}' has a type the launcher cannot pass")
            parameters.append((_SCALAR_CODES[base], words[-1]))
        kernels[name] = parameters
    return kernels


def parse_signatures(preprocessed: str) -> dict:
    """{kernel name: PyCUDA argument format} of every extern "C" kernel in preprocessed source."""
    return {name: "".join(code for code, _ in params) for name, params in parse_parameters(preprocessed).items()}


def preprocess(path: str, dtype) -> str:
    command = [nvcc(), "-E", "-x", "cu", f"-I{INCLUDE_DIR}", *compile_options(dtype), path]
    try:
        result = subprocess.run(command, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise CaffeError(f"{path}: cannot run nvcc ({exc})") from exc
    if result.returncode != 0:
        raise CaffeError(f"{path}: nvcc -E failed: {result.stderr.strip().splitlines()[-1:]}")
    return result.stdout


@functools.lru_cache(maxsize=None)
def signatures(path: str, dtype_name: str) -> dict:
    return parse_signatures(preprocess(path, dtype_name))


# What one sm_90 multiprocessor holds (CUDA C++ Programming Guide, compute capability 9.0).
SM90_REGISTERS, SM90_THREADS, SM90_BLOCKS = 65536, 2048, 32
SM90_SHARED, SM90_SHARED_PER_BLOCK_RESERVED = 228 * 1024, 1024
_PTXAS_ENTRY = re.compile(r"Function properties for (\w+)\n.*?Used (\d+) registers(?:, used \d+ barriers)?"
                          r"(?:, (\d+) bytes smem)?", re.S)


def resource_usage(path: str, dtype) -> dict:
    """{kernel: (registers per thread, static shared-memory bytes per block)}: what ptxas reports
    compiling `path` for sm_90. Needs nvcc, not a GPU."""
    command = [nvcc(), "-cubin", "-arch=sm_90", "--resource-usage", f"-I{INCLUDE_DIR}", *compile_options(dtype),
               "-o", os.devnull, path]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise CaffeError(f"{path}: nvcc --resource-usage failed: {result.stderr.strip().splitlines()[-1:]}")
    return {name: (int(registers), int(shared or 0))
            for name, registers, shared in _PTXAS_ENTRY.findall(result.stdout + result.stderr)}


def blocks_per_sm(threads: int, registers: int, shared_bytes: int) -> int:
    """How many blocks of a kernel one sm_90 multiprocessor runs at once, limited by threads,
    registers (allocated per warp, in units of 256) and shared memory."""
    warps = -(-threads // 32)
    register_warps = SM90_REGISTERS // (-(-registers * 32 // 256) * 256) if registers else SM90_THREADS // 32
    by_shared = SM90_SHARED // (shared_bytes + SM90_SHARED_PER_BLOCK_RESERVED)
    return max(0, min(SM90_BLOCKS, SM90_THREADS // (warps * 32), register_warps // warps, by_shared))


def _pointer(arg) -> int:
    if arg is None:
        return 0
    if isinstance(arg, (int, np.integer)):
        return int(arg)
    gpudata = getattr(arg, "gpudata", None)
    if gpudata is None and not hasattr(arg, "gpudata"):
        raise TypeError(f"expected a device array or address, got {type(arg).__name__}")
    return 0 if gpudata is None else int(gpudata)


def _pack(code: str, arg):
    if code == "P":
        return _pointer(arg)
    if code in "fd":
        return float(arg)
    return int(arg)


class Kernel:
    """One compiled kernel; `launch(threads, *args)` runs it on a 1-D grid-stride grid."""

    def __init__(self, function, name: str, arg_format: str):
        self.name = name
        self.arg_format = arg_format
        self._function = function
        function.prepare(arg_format)

    def __call__(self, grid, block, *args, shared: int = 0):
        if len(args) != len(self.arg_format):
            raise TypeError(f"kernel {self.name} takes {len(self.arg_format)} arguments "
                            f"({self.arg_format}), got {len(args)}")
        packed = [_pack(code, arg) for code, arg in zip(self.arg_format, args)]
        self._function.prepared_async_call(tuple(grid), tuple(block), streams.compute(), *packed,
                                           shared_size=shared)

    def launch(self, threads: int, *args):
        """Run `threads` threads' worth of a grid-stride kernel (see grid_blocks)."""
        threads = int(threads)
        if threads <= 0:
            return
        blocks = grid_blocks(threads)
        check_32bit_loop(self.name, threads, blocks)
        self((blocks, 1, 1), (BLOCK, 1, 1), *args)


def check_32bit_loop(name: str, items: int, blocks: int):
    """A grid-stride loop's int index must not overflow: items plus one grid's threads fit 2^31."""
    if items + blocks * BLOCK >= 2 ** 31:
        raise CaffeError(f"kernel {name}: {items} elements exceed 32-bit indexing")


def grid_blocks(threads: int) -> int:
    """Blocks of BLOCK threads for a grid-stride kernel over `threads` items: enough to cover
    them, capped at what the GPU holds at once (the kernels loop over the rest)."""
    return max(1, min(-(-int(threads) // BLOCK), context.multiprocessor_count() * BLOCKS_PER_SM))


_SOURCES = weakref.WeakSet()


def clear_compiled():
    """Forget every Source's compiled modules and kernels: they belong to the PyCUDA they were
    built with (tests/cuda_emulator.py and benchmarks/launch_tracer.py stand in for it)."""
    for source in _SOURCES:
        source._modules.clear()
        source._kernels.clear()


class Source:
    """A `.cu` file beside a Python module; its kernels are compiled on first use."""

    def __init__(self, module_file: str, filename: str):
        self.path = os.path.join(os.path.dirname(os.path.abspath(module_file)), filename)
        self._modules = {}
        self._kernels = {}
        _SOURCES.add(self)

    def get(self, name: str, dtype) -> Kernel:
        key = (name, np.dtype(dtype))
        if key not in self._kernels:
            formats = signatures(self.path, np.dtype(dtype).name)
            if name not in formats:
                raise CaffeError(f"{self.path}: no extern \"C\" kernel named {name}")
            module = self._module(np.dtype(dtype))
            self._kernels[key] = Kernel(module.get_function(name), name, formats[name])
        return self._kernels[key]

    def _module(self, dtype):
        if dtype not in self._modules:
            from pycuda.compiler import SourceModule  # optional: loaded on first GPU use only

            context.ensure_active()
            with open(self.path) as f:
                source = f.read()
            self._modules[dtype] = SourceModule(source, nvcc=nvcc(), options=compile_options(dtype),
                                                include_dirs=[INCLUDE_DIR], no_extern_c=True)
        return self._modules[dtype]
