"""oneDNN's convolution through its C API (ctypes): the optional fast CPU engine of forward-only
passes (the deploy-time forward), `pip install nvcaffe_py[onednn]` (the onednn-cpu-gomp wheel's
libdnnl.so.3, found under sys.prefix/lib or on the loader's path). The NumPy engine stays the
reference: tests/test_onednn.py checks this one against it on every Convolution conformance case.

A `Convolution` is one primitive for one geometry (cached by the layer per shape). Its NCHW
inputs and outputs are the blobs' arrays, reordered in and out of oneDNN's blocked layout
(nChw16c) through per-thread work buffers, where its direct, depthwise and 1x1 kernels run: on
plain NCHW arrays oneDNN falls back to a GEMM convolution, measured on the 2-core development
machine (with the reorders counted) 5x slower on 3x3 convolutions (16 channels, 32x32, batch 16:
3.9 against 0.7 ms), 3-7x on depthwise ones and 2.6x on MobileNet v2's 1x1 expansions; only its
1x1 projections at batch 16 were faster plain (144 -> 24 channels at 56x56: 12.7 against 17.0 ms).
The weights are reordered into the primitive's layout once per version of the weight blob's
buffer (SyncedArray.version), the bias is read in place.

OpenMP's threads (libgomp) run inside each primitive. They are made to sleep rather than spin
between primitives (OMP_WAIT_POLICY=PASSIVE unless set), so that they leave the cores to the
NumPy layers in between. Waking them costs more than a small convolution's whole work, so a
Convolution of less work than tuning.ONEDNN_THREADED_WORK is created and run on the calling
thread alone (OpenMP's thread count set to 1 around it; oneDNN sizes a primitive's work for the
count at its creation).

What a run repeats is kept: the ctypes argument array of each primitive, the address each of its
memory objects points at (set again only when the array moved), the reordered weights and the
bias per version of their buffers, and per thread the two blocked work buffers.
"""
import contextlib
import ctypes
import ctypes.util
import math
import os
import sys
import threading

import numpy as np

from .tuning import ONEDNN_ELEMENT_WORK, ONEDNN_THREADED_WORK

_F32, _ANY, _CPU, _IN_ORDER = 3, 1, 1, 1
_FORWARD_INFERENCE, _CONVOLUTION_DIRECT, _ELTWISE_RELU = 96, 1, 0x20
_QUERY_IMPLEMENTATION, _QUERY_SRC_MD, _QUERY_WEIGHTS_MD, _QUERY_DST_MD = 8, 129, 131, 133
_ARG_SRC, _ARG_DST, _ARG_WEIGHTS, _ARG_BIAS = 1, 17, 33, 41
_Dims = ctypes.c_int64 * 12


class _ExecArg(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_int), ("memory", ctypes.c_void_p)]


class _Library:
    """libdnnl, a CPU engine and an in-order stream (one per process)."""

    def __init__(self):
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        candidates = [os.path.join(sys.prefix, "lib", "libdnnl.so.3"), ctypes.util.find_library("dnnl")]
        errors = []
        for path in filter(None, candidates):
            try:
                self.lib = ctypes.CDLL(path)
                break
            except OSError as exc:
                errors.append(str(exc))
        else:
            raise OSError("; ".join(errors) or "libdnnl.so.3 not found (pip install nvcaffe_py[onednn])")
        self.lib.dnnl_primitive_desc_query_md.restype = ctypes.c_void_p
        self.lib.dnnl_memory_desc_get_size.restype = ctypes.c_size_t
        self.lib.dnnl_memory_desc_get_size.argtypes = [ctypes.c_void_p]
        self.lib.dnnl_memory_set_data_handle.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        self.lib.dnnl_primitive_execute.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p]
        self.set_handle, self.execute = self.lib.dnnl_memory_set_data_handle, self.lib.dnnl_primitive_execute
        self.openmp = _openmp()
        self.engine, self.stream = ctypes.c_void_p(), ctypes.c_void_p()
        self.check(self.lib.dnnl_engine_create(ctypes.byref(self.engine), _CPU, ctypes.c_size_t(0)), "engine")
        self.check(self.lib.dnnl_stream_create(ctypes.byref(self.stream), self.engine, ctypes.c_uint(_IN_ORDER)),
                   "stream")

    def threads(self, count):
        """Set OpenMP's thread count for this thread's next primitives (creation and runs) to
        `count` (None: leave it); the count before (None without libgomp)."""
        if self.openmp is None:
            return None
        before = self.openmp.omp_get_max_threads()
        if count is not None and count != before:
            self.openmp.omp_set_num_threads(count)
        return before

    @contextlib.contextmanager
    def thread_count(self, count):
        """OpenMP's thread count `count` inside the block (None: as it is)."""
        before = self.threads(count)
        try:
            yield
        finally:
            if count is not None:
                self.threads(before)

    @staticmethod
    def check(status, what):
        if status != 0:
            raise OSError(f"oneDNN {what} failed with status {status}")

    def desc(self, shape, plain=True):
        """A float32 memory descriptor: C-contiguous (plain) or for the primitive to choose."""
        md = ctypes.c_void_p()
        if plain:
            strides = np.cumprod((list(shape[1:]) + [1])[::-1])[::-1]
            status = self.lib.dnnl_memory_desc_create_with_strides(ctypes.byref(md), len(shape), _Dims(*shape), _F32,
                                                                   _Dims(*strides))
        else:
            status = self.lib.dnnl_memory_desc_create_with_tag(ctypes.byref(md), len(shape), _Dims(*shape), _F32, _ANY)
        self.check(status, "memory descriptor")
        return md

    def memory(self, md):
        memory = ctypes.c_void_p()
        self.check(self.lib.dnnl_memory_create(ctypes.byref(memory), md, self.engine, None), "memory")
        return memory

    def primitive(self, pd):
        primitive = ctypes.c_void_p()
        self.check(self.lib.dnnl_primitive_create(ctypes.byref(primitive), pd), "primitive")
        return primitive

    def reorder(self, source, destination):
        pd = ctypes.c_void_p()
        self.check(self.lib.dnnl_reorder_primitive_desc_create(ctypes.byref(pd), source, self.engine, destination,
                                                               self.engine, None), "reorder")
        return _Step(self, self.primitive(pd), {_ARG_SRC: source, _ARG_DST: destination})

    def size(self, md) -> int:
        """Elements (float32) of a memory descriptor's buffer."""
        return self.lib.dnnl_memory_desc_get_size(md) // 4


def _openmp():
    """libgomp (the OpenMP runtime libdnnl was built with; already loaded with it), or None."""
    for name in ("libgomp.so.1", ctypes.util.find_library("gomp")):
        try:
            openmp = ctypes.CDLL(name) if name else None
        except OSError:
            continue
        if openmp is not None and hasattr(openmp, "omp_set_num_threads"):
            openmp.omp_set_num_threads.argtypes = [ctypes.c_int]
            return openmp
    return None


def address(array) -> int:
    """The address of an array's first element."""
    return array.__array_interface__["data"][0]


class _Step:
    """A primitive and a memory object per argument (in argument order), pointed at addresses the
    caller gives for each run; an address that did not change since the last run is not set again."""

    def __init__(self, library, primitive, descs):
        self.library, self.primitive = library, primitive
        self.memories = [library.memory(md) for md in descs.values()]
        self.args = (_ExecArg * len(descs))(*[_ExecArg(arg, m) for arg, m in zip(descs, self.memories)])
        self.count = len(descs)
        self.addresses = [None] * len(descs)

    def run(self, *addresses):
        """Run on these addresses, one per argument in the order built. The stream is in order: the
        caller waits for it once after a row of runs (`wait`)."""
        library, current = self.library, self.addresses
        for k, value in enumerate(addresses):
            if current[k] != value:
                library.set_handle(self.memories[k], value)
                current[k] = value
        library.check(library.execute(self.primitive, library.stream, self.count, self.args), "execution")

    def wait(self):
        self.library.check(self.library.lib.dnnl_stream_wait(self.library.stream), "execution")


class _Workspace(threading.local):
    """Per thread, the two blocked buffers that convolutions in a row write and read in turn."""

    def __init__(self):
        self.arrays, self.addresses = [None, None], [0, 0]

    def buffer(self, which, size) -> int:
        """The address of work buffer `which` (0 or 1), of at least `size` float32 elements."""
        array = self.arrays[which]
        if array is None or array.size < size:
            self.arrays[which] = array = np.empty(size, np.float32)
            self.addresses[which] = address(array)
        return self.addresses[which]


_workspace = _Workspace()


_library = None
_unavailable = None


def unavailable_reason():
    """None when oneDNN can be used, else why not (one line)."""
    global _library, _unavailable
    if _library is None and _unavailable is None:
        try:
            _library = _Library()
        except OSError as exc:
            _unavailable = f"oneDNN is not usable: {exc}"
    return _unavailable


class Convolution:
    """out = W * images + bias for `num` NCHW images of (channels, *spatial) into (out_channels,
    *out_spatial), in `group` groups, with Caffe's symmetric pads (2-D only); then, unless
    `negative_slope` is None, a ReLU with that slope, fused in as a post-op. Built `after` another
    Convolution, it reads that one's blocked output as it is (`convolve` runs them in a row). One
    of less work than ONEDNN_THREADED_WORK (tuning.py) runs on the calling thread alone (`threads`
    1; None: OpenMP's count), created so and run so."""

    def __init__(self, num, channels, spatial, out_spatial, out_channels, group, kernel, pad, stride, dilation,
                 negative_slope=None, after=None):
        library = _library
        self.library = library
        self.multiply_adds = num * out_channels * math.prod(out_spatial) * (channels // group) * math.prod(kernel)
        elements = num * (channels * math.prod(spatial) + out_channels * math.prod(out_spatial))
        self.threads = 1 if self.multiply_adds + ONEDNN_ELEMENT_WORK * elements < ONEDNN_THREADED_WORK else None
        with library.thread_count(self.threads):  # a primitive's work is sized at its creation
            images, outputs = (num, channels) + tuple(spatial), (num, out_channels) + tuple(out_spatial)
            weights = (out_channels, channels // group) + tuple(kernel)
            if group > 1:
                weights = (group, out_channels // group) + weights[1:]
            plain_images, plain_outputs = library.desc(images), library.desc(outputs)
            self.weights_user = library.desc(weights)
            attr = None
            if negative_slope is not None:
                attr, post_ops = ctypes.c_void_p(), ctypes.c_void_p()
                library.check(library.lib.dnnl_primitive_attr_create(ctypes.byref(attr)), "attributes")
                library.check(library.lib.dnnl_post_ops_create(ctypes.byref(post_ops)), "post-ops")
                library.check(library.lib.dnnl_post_ops_append_eltwise(
                    post_ops, _ELTWISE_RELU, ctypes.c_float(negative_slope), ctypes.c_float(0)), "ReLU post-op")
                library.check(library.lib.dnnl_primitive_attr_set_post_ops(attr, post_ops), "post-ops")
            pd = ctypes.c_void_p()
            library.check(library.lib.dnnl_convolution_forward_primitive_desc_create(
                ctypes.byref(pd), library.engine, _FORWARD_INFERENCE, _CONVOLUTION_DIRECT,
                after.dst if after else library.desc(images, plain=False), library.desc(weights, plain=False),
                library.desc((out_channels,)),
                library.desc(outputs, plain=False), _Dims(*stride), _Dims(*(d - 1 for d in dilation)), _Dims(*pad),
                _Dims(*pad), attr), "convolution")
            implementation = ctypes.c_char_p()
            library.check(library.lib.dnnl_primitive_desc_query(pd, _QUERY_IMPLEMENTATION, 0,
                                                                ctypes.byref(implementation)), "query")
            self.implementation = implementation.value.decode()  # the kernel oneDNN chose, e.g. brgconv:avx512_core
            # Its reference kernels, for what no optimised one covers (a layout it cannot take), are
            # far slower than the NumPy engine: measured 350 against 27 ms for MobileNet v2 at batch 1.
            self.slow = self.implementation.startswith("ref")
            query = library.lib.dnnl_primitive_desc_query_md
            src, self.weights_md, self.dst = (ctypes.c_void_p(query(pd, what, 0))
                                              for what in (_QUERY_SRC_MD, _QUERY_WEIGHTS_MD, _QUERY_DST_MD))
            self.step = _Step(library, library.primitive(pd),
                              {_ARG_SRC: src, _ARG_WEIGHTS: self.weights_md, _ARG_BIAS: library.desc((out_channels,)),
                               _ARG_DST: self.dst})
            self.reorder_in = None if after else library.reorder(plain_images, src)
            self.reorder_out = library.reorder(self.dst, plain_outputs)
            self.src_size, self.dst_size = library.size(src), library.size(self.dst)
            self._version, self._weights, self._bias, self._addresses = None, None, None, None

    def set_parameters(self, version, values):
        """Point the primitive at the weights (reordered into its layout) and the bias that
        `version` names (a tuple that changes whenever their values may have: buffers and their
        versions); `values()` gives (weights, bias) as NCHW-shaped and flat float32 arrays, asked
        for only for a version not seen last."""
        if version != self._version:
            weights, bias = values()
            self._weights = np.empty(self.library.size(self.weights_md), np.float32)
            reorder = self.library.reorder(self.weights_user, self.weights_md)
            reorder.run(address(np.ascontiguousarray(weights)), address(self._weights))
            reorder.wait()
            self._bias = np.ascontiguousarray(bias, np.float32)  # the blob's own buffer where it can be
            self._version, self._addresses = version, (address(self._weights), address(self._bias))
        return self._addresses


def convolve(convolutions, parameters, images, outputs):
    """Convolutions in a row, each built `after` the one before (a single one alone): images in
    NCHW reordered in once, each blocked output read by the next, the last reordered out into
    `outputs`. parameters: (version, values) of each, as Convolution.set_parameters takes them.
    The reorders run with the first and last convolution's thread count."""
    library = convolutions[0].library
    single = [convolution.threads for convolution in convolutions]
    switching = any(single)  # some run on one thread: set the count before each, restore it after
    before = library.threads(single[0]) if switching else None
    try:
        src = _workspace.buffer(0, convolutions[0].src_size)
        convolutions[0].reorder_in.run(address(images), src)
        for i, (convolution, (version, values)) in enumerate(zip(convolutions, parameters)):
            if switching and i:
                library.threads(single[i] or before)
            dst = _workspace.buffer((i + 1) % 2, convolution.dst_size)
            weights, bias = convolution.set_parameters(version, values)
            convolution.step.run(src, weights, bias, dst)
            src = dst
        convolutions[-1].reorder_out.run(src, address(outputs))
        convolutions[-1].reorder_out.wait()
    finally:
        if switching:
            library.threads(before)
