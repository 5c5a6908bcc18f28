"""oneDNN's primitives through its C API (ctypes): the optional fast CPU engine of forward-only
passes (the deploy-time forward), `pip install nvcaffe_py[onednn]` (the onednn-cpu-gomp wheel's
libdnnl.so.3, found under sys.prefix/lib or on the loader's path). The NumPy engine stays the
reference: tests/test_onednn.py checks this one against it on every conformance case of the
layers it runs.

Each primitive is one operation for one geometry and one input layout (cached by its layer): a
Convolution (a ReLU and a residual add fused in as post-ops), a max or average Pooling, an
InnerProduct, an LRN across channels and a Concat. (Not Softmax: oneDNN's flushes results below
FLT_MIN to 0, where Caffe's, as the NumPy engine's, keeps them.) Run alone, a Convolution's NCHW
inputs and outputs are the blobs' arrays, reordered in and out of oneDNN's blocked layout
(nChw16c) through per-thread work buffers, where its direct, depthwise and 1x1 kernels run: on
plain NCHW arrays oneDNN falls back to a GEMM convolution, measured on the 2-core development
machine (with the reorders counted) 5x slower on 3x3 convolutions (16 channels, 32x32, batch 16:
3.9 against 0.7 ms), 3-7x on depthwise ones and 2.6x on MobileNet v2's 1x1 expansions; only its
1x1 projections at batch 16 were faster plain (144 -> 24 channels at 56x56: 12.7 against 17.0 ms).
The weights are reordered into the primitive's layout once per version of the weight blob's
buffer (SyncedArray.version), the bias is read in place.

Runs of these, each reading the blocked output of those before (onednn_segment.py), pass the
layout on with no reorder between.

OpenMP's threads (libgomp) run inside each primitive. Between primitives they spin a while
(tuning.ONEDNN_SPIN_COUNT, as GOMP_SPINCOUNT unless OMP_WAIT_POLICY or GOMP_SPINCOUNT is set), then
sleep: primitives back to back find them awake, and NumPy layers after a run get the cores back
soon. Where waking them would cost more than they save, a primitive of less work than
tuning.ONEDNN_THREADED_WORK is created and run on the calling thread alone (OpenMP's thread count
set to 1 around it; oneDNN sizes a primitive's work for the count at its creation).

What a run repeats is kept: the ctypes argument array of each primitive, the address each of its
memory objects points at (set again only when the array moved), the reordered weights and the
bias per version of their buffers, and per thread the numbered blocked work buffers.
"""
import contextlib
import ctypes
import ctypes.util
import math
import os
import sys
import threading

import numpy as np

from .tuning import ONEDNN_ELEMENT_WORK, ONEDNN_SPIN_COUNT, ONEDNN_THREADED_WORK

_F32, _ANY, _CPU, _IN_ORDER = 3, 1, 1, 1
_FORWARD_INFERENCE, _CONVOLUTION_DIRECT, _ELTWISE_RELU = 96, 1, 0x20
_POOLING_MAX, _POOLING_AVERAGE_INCLUDING_PADDING, _LRN_ACROSS_CHANNELS = 0x1FF, 0x2FF, 0xAFF
_QUERY_IMPLEMENTATION, _QUERY_SRC_MD, _QUERY_WEIGHTS_MD, _QUERY_DST_MD = 8, 129, 131, 133
_ARG_SRC, _ARG_DST, _ARG_WEIGHTS, _ARG_BIAS, _ARG_MULTIPLE_SRC = 1, 17, 33, 41, 1024
_Dims = ctypes.c_int64 * 12


class _ExecArg(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_int), ("memory", ctypes.c_void_p)]


class _Library:
    """libdnnl, a CPU engine and an in-order stream (one per process)."""

    def __init__(self):
        if "OMP_WAIT_POLICY" not in os.environ:  # read by libgomp once, when libdnnl loads it
            os.environ.setdefault("GOMP_SPINCOUNT", str(ONEDNN_SPIN_COUNT))
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
        self.lib.dnnl_memory_desc_equal.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        self.lib.dnnl_memory_set_data_handle.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        self.lib.dnnl_primitive_execute.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p]
        self.set_handle, self.execute = self.lib.dnnl_memory_set_data_handle, self.lib.dnnl_primitive_execute
        self.openmp = _openmp()
        self.engine, self.stream = ctypes.c_void_p(), ctypes.c_void_p()
        self.check(self.lib.dnnl_engine_create(ctypes.byref(self.engine), _CPU, ctypes.c_size_t(0)), "engine")
        self.check(self.lib.dnnl_stream_create(ctypes.byref(self.stream), self.engine, ctypes.c_uint(_IN_ORDER)),
                   "stream")
        self._layouts = []  # one descriptor of each layout seen, its index the layout's key

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

    def desc(self, shape, plain=True, strides=None):
        """A float32 memory descriptor: C-contiguous (plain), with these strides, or for the
        primitive to choose."""
        md = ctypes.c_void_p()
        if plain or strides is not None:
            if strides is None:
                strides = np.cumprod((list(shape[1:]) + [1])[::-1])[::-1]
            status = self.lib.dnnl_memory_desc_create_with_strides(ctypes.byref(md), len(shape), _Dims(*shape), _F32,
                                                                   _Dims(*strides))
        else:
            status = self.lib.dnnl_memory_desc_create_with_tag(ctypes.byref(md), len(shape), _Dims(*shape), _F32, _ANY)
        self.check(status, "memory descriptor")
        return md

    def layout(self, md) -> int:
        """A key for a memory descriptor's dims and layout: equal descriptors, equal keys."""
        for key, known in enumerate(self._layouts):
            if self.lib.dnnl_memory_desc_equal(md, known):
                return key
        self._layouts.append(md)
        return len(self._layouts) - 1

    def attributes(self, negative_slope=None, residual_scale=None):
        """Post-ops, in order: dst = residual_scale * dst + result (a residual add: dst holds the
        residual before the run), then a ReLU with `negative_slope`; None without either."""
        if negative_slope is None and residual_scale is None:
            return None
        attr, post_ops = ctypes.c_void_p(), ctypes.c_void_p()
        self.check(self.lib.dnnl_primitive_attr_create(ctypes.byref(attr)), "attributes")
        self.check(self.lib.dnnl_post_ops_create(ctypes.byref(post_ops)), "post-ops")
        if residual_scale is not None:
            self.check(self.lib.dnnl_post_ops_append_sum(post_ops, ctypes.c_float(residual_scale), ctypes.c_int32(0),
                                                         _F32), "sum post-op")
        if negative_slope is not None:
            self.check(self.lib.dnnl_post_ops_append_eltwise(
                post_ops, _ELTWISE_RELU, ctypes.c_float(negative_slope), ctypes.c_float(0)), "ReLU post-op")
        self.check(self.lib.dnnl_primitive_attr_set_post_ops(attr, post_ops), "post-ops")
        return attr

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
        self.addresses = (None,) * len(descs)
        self._execute, self._stream = library.execute, library.stream

    def run(self, *addresses):
        """Run on these addresses, one per argument in the order built. The stream is in order: the
        caller waits for it once after a row of runs (`wait`)."""
        if addresses != self.addresses:
            for memory, value, before in zip(self.memories, addresses, self.addresses):
                if value != before:
                    self.library.set_handle(memory, value)
            self.addresses = addresses
        if self._execute(self.primitive, self._stream, self.count, self.args):
            raise OSError("oneDNN execution failed")

    def wait(self):
        self.library.check(self.library.lib.dnnl_stream_wait(self.library.stream), "execution")


class _Workspace(threading.local):
    """Per thread, the blocked buffers oneDNN's runs write and read (numbered slots; a run's
    values do not outlive it, so every run shares them)."""

    def __init__(self):
        self.arrays, self.addresses = [], []

    def buffer(self, which, size) -> int:
        """The address of slot `which`, of at least `size` float32 elements."""
        return self.reserve([0] * which + [size])[which]

    def reserve(self, sizes) -> list:
        """Slots 0, 1, ... of at least these sizes; the addresses of all slots."""
        arrays = self.arrays
        for which, size in enumerate(sizes):
            if which == len(arrays):
                arrays.append(None)
                self.addresses.append(0)
            if arrays[which] is None or arrays[which].size < size:
                arrays[which] = np.empty(max(size, 1), np.float32)
                self.addresses[which] = address(arrays[which])
        return self.addresses


_workspace = _Workspace()


def work_buffers(sizes) -> list:
    """This thread's work slots 0, 1, ... of at least these sizes: the addresses of all slots."""
    return _workspace.reserve(sizes)


_library = None
_unavailable = None


def library():
    """The loaded library (after unavailable_reason() said it is usable)."""
    return _library


def unavailable_reason():
    """None when oneDNN can be used, else why not (one line)."""
    global _library, _unavailable
    if _library is None and _unavailable is None:
        try:
            _library = _Library()
        except OSError as exc:
            _unavailable = f"oneDNN is not usable: {exc}"
    return _unavailable


def chosen_for(layer, engine=0) -> bool:
    """Whether oneDNN may run this layer's forward: it is installed, the layer is float32, and no
    engine says otherwise: Intel Caffe's layer `engine` string ("MKLDNN", "MKL2017", "CAFFE", with
    options after a ':'), else the layer's own `engine` field (its value; CAFFE, 1 in every
    Caffe engine enum, chooses the NumPy engine, DEFAULT the fastest built in)."""
    intel = layer.layer_param.engine.partition(":")[0].upper()
    numpy_engine = intel == "CAFFE" if intel else engine == 1
    return not numpy_engine and layer.dtype == np.float32 and unavailable_reason() is None


def layer_parameters(layer):
    """(version, values) of a layer's weights (blobs[0]) and bias (blobs[1] where `bias_term`, else
    zeros of `num_output`) as WeightedOperation.set_parameters takes them: `version` changes
    whenever their values may have (their buffers, and each buffer's version)."""
    weights = layer.blobs[0].data_storage
    bias = layer.blobs[1].data_storage if layer.bias_term else None
    return ((weights, weights.version, bias, None if bias is None else bias.version),
            lambda: (layer.blobs[0].data_readonly(),
                     layer.blobs[1].data_readonly() if layer.bias_term else np.zeros(layer.num_output, np.float32)))


def cached(cache, key, operation, *args):
    """cache[key], made by create(operation, *args) the first time."""
    if key not in cache:
        cache[key] = create(operation, *args)
    return cache[key]


class Operation:
    """One primitive for one geometry: `source` the layout it reads (a descriptor; for a Convolution
    None: NCHW arrays, reordered in), `dst` the layout it writes, `src_size` / `dst_size` their
    float32 elements, `threads` 1 where it runs on the calling thread alone (None: OpenMP's count),
    `step` the primitive with its arguments in the order `run` takes their addresses. `slow`: oneDNN
    has only its reference kernel for it (far slower than the NumPy engine: measured 350 against
    27 ms for MobileNet v2 at batch 1), so it is not to be used."""

    parameters = False  # whether its arguments include weights and bias (set_parameters)

    def _create(self, library, create, what, threads, arguments):
        """The primitive from `create(pd_pointer)`; arguments: (argument, query or descriptor),
        with a query for what the primitive chose."""
        self.library, self.threads = library, threads
        pd = ctypes.c_void_p()
        with library.thread_count(threads):  # a primitive's work is sized at its creation
            library.check(create(ctypes.byref(pd)), what)
            implementation = ctypes.c_char_p()
            library.check(library.lib.dnnl_primitive_desc_query(pd, _QUERY_IMPLEMENTATION, 0,
                                                                ctypes.byref(implementation)), "query")
            self.implementation = implementation.value.decode()  # the kernel oneDNN chose, e.g. brgconv:avx512_core
            self.slow = self.implementation.startswith("ref")
            query = library.lib.dnnl_primitive_desc_query_md
            descs = {arg: ctypes.c_void_p(query(pd, md, 0)) if isinstance(md, int) else md for arg, md in arguments}
            self.step = _Step(library, library.primitive(pd), descs)
        self.src, self.dst = descs[_ARG_SRC], descs[_ARG_DST]
        self.src_size, self.dst_size = library.size(self.src), library.size(self.dst)
        return descs

    @staticmethod
    def threads_for(work):
        return 1 if work < ONEDNN_THREADED_WORK else None


class WeightedOperation(Operation):
    """An Operation with weights (reordered into the layout it chose, `weights_md`, from Caffe's
    `weights_user`) and a bias."""

    parameters = True
    _version = _weights = _bias = _addresses = None

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


class Convolution(WeightedOperation):
    """out = W * images + bias for `num` NCHW images of (channels, *spatial) into (out_channels,
    *out_spatial), in `group` groups, with Caffe's symmetric pads (2-D only); then, with
    `residual_scale`, plus that times what the output held before the run (a residual add: `dst`,
    where given, is the residual's layout); then, unless `negative_slope` is None, a ReLU with that
    slope. It reads `source`, a blocked layout another primitive writes, or (None) NCHW arrays,
    reordered in (`reorder_in`) to the layout it chooses; `reorder_out` writes its output as NCHW."""

    def __init__(self, num, channels, spatial, out_spatial, out_channels, group, kernel, pad, stride, dilation,
                 negative_slope=None, source=None, residual_scale=None, dst=None):
        library = _library
        self.multiply_adds = num * out_channels * math.prod(out_spatial) * (channels // group) * math.prod(kernel)
        elements = num * (channels * math.prod(spatial) + out_channels * math.prod(out_spatial))
        images, outputs = (num, channels) + tuple(spatial), (num, out_channels) + tuple(out_spatial)
        weights = (out_channels, channels // group) + tuple(kernel)
        if group > 1:
            weights = (group, out_channels // group) + weights[1:]
        self.weights_user = library.desc(weights)
        bias = library.desc((out_channels,))
        attr = library.attributes(negative_slope, residual_scale)
        src_request = source if source is not None else library.desc(images, plain=False)
        dst_request = dst if dst is not None else library.desc(outputs, plain=False)
        descs = self._create(library, lambda pd: library.lib.dnnl_convolution_forward_primitive_desc_create(
            pd, library.engine, _FORWARD_INFERENCE, _CONVOLUTION_DIRECT, src_request,
            library.desc(weights, plain=False), bias, dst_request, _Dims(*stride), _Dims(*(d - 1 for d in dilation)),
            _Dims(*pad), _Dims(*pad), attr), "convolution",
            self.threads_for(self.multiply_adds + ONEDNN_ELEMENT_WORK * elements),
            [(_ARG_SRC, _QUERY_SRC_MD), (_ARG_WEIGHTS, _QUERY_WEIGHTS_MD), (_ARG_BIAS, bias),
             (_ARG_DST, _QUERY_DST_MD)])
        self.weights_md = descs[_ARG_WEIGHTS]
        with library.thread_count(self.threads):
            self.reorder_in = None if source is not None else library.reorder(library.desc(images), self.src)
            self.reorder_out = library.reorder(self.dst, library.desc(outputs))

    def convolve(self, parameters, images, outputs):
        """Run alone: NCHW images reordered in, the output reordered out into NCHW `outputs`;
        parameters: (version, values) as set_parameters takes them."""
        before = self.library.threads(self.threads)
        try:
            src, dst = _workspace.buffer(0, self.src_size), _workspace.buffer(1, self.dst_size)
            self.reorder_in.run(address(images), src)
            self.step.run(src, *self.set_parameters(*parameters), dst)
            self.reorder_out.run(dst, address(outputs))
            self.reorder_out.wait()
        finally:
            if self.threads is not None:
                self.library.threads(before)


class InnerProduct(WeightedOperation):
    """out = W x + bias for the `num` rows of `source` (its dims after the first flattened as Caffe
    flattens them; W is (out_channels, inputs), or (inputs, out_channels) `transposed`), then,
    unless `negative_slope` is None, a ReLU with that slope. Writes plain (num, out_channels)."""

    def __init__(self, source, dims, out_channels, transposed, negative_slope=None):
        library = _library
        self.multiply_adds = math.prod(dims) * out_channels
        weights = (out_channels,) + tuple(dims[1:])
        inputs = math.prod(dims[1:])
        # Caffe's weights, row-major (out_channels, inputs) or transposed, seen with the source's dims.
        inner = np.cumprod((list(dims[2:]) + [1])[::-1])[::-1].tolist()
        strides = ([inputs] + inner) if not transposed else ([1] + [s * out_channels for s in inner])
        self.weights_user = library.desc(weights, strides=strides)
        bias = library.desc((out_channels,))
        attr = library.attributes(negative_slope)
        descs = self._create(library, lambda pd: library.lib.dnnl_inner_product_forward_primitive_desc_create(
            pd, library.engine, _FORWARD_INFERENCE, source, library.desc(weights, plain=False), bias,
            library.desc((dims[0], out_channels)), attr), "inner product",
            self.threads_for(self.multiply_adds), [(_ARG_SRC, source), (_ARG_WEIGHTS, _QUERY_WEIGHTS_MD),
                                                   (_ARG_BIAS, bias), (_ARG_DST, _QUERY_DST_MD)])
        self.weights_md = descs[_ARG_WEIGHTS]


class Pooling(Operation):
    """Max or average pooling of `source` (num, channels, *spatial) into out_spatial windows, the
    windows as Caffe places them (from -pad, `stride` apart): oneDNN's right padding is whatever
    makes its output length Caffe's. Average divides by the whole window (padding included), which
    is Caffe's divisor where no window reaches past the padded image (the caller's to check). Then,
    unless `negative_slope` is None, a ReLU."""

    def __init__(self, source, dims, out_spatial, kernel, stride, pad, average, negative_slope=None):
        library = _library
        spatial = dims[2:]
        pad_right = [(o - 1) * s + k - i - p for o, s, k, i, p in zip(out_spatial, stride, kernel, spatial, pad)]
        pad_right = [max(r, 0) for r in pad_right]
        attr = library.attributes(negative_slope)
        elements = math.prod(dims) + math.prod(dims[:2]) * math.prod(out_spatial)
        self._create(library, lambda pd: library.lib.dnnl_pooling_forward_primitive_desc_create(
            pd, library.engine, _FORWARD_INFERENCE, _POOLING_AVERAGE_INCLUDING_PADDING if average else _POOLING_MAX,
            source, library.desc(tuple(dims[:2]) + tuple(out_spatial), plain=False), _Dims(*stride), _Dims(*kernel),
            _Dims(0, 0), _Dims(*pad), _Dims(*pad_right), attr), "pooling",
            self.threads_for(ONEDNN_ELEMENT_WORK * elements), [(_ARG_SRC, source), (_ARG_DST, _QUERY_DST_MD)])


class LRN(Operation):
    """Local response normalization across channels of `source` (its `dims`): x * (k + alpha /
    size * the sum of x^2 over `size` channels centred on x's)^-beta, zeros beyond the edges
    (Caffe's ACROSS_CHANNELS), written in the same layout."""

    def __init__(self, source, dims, size, alpha, beta, k):
        library = _library
        self._create(library, lambda pd: library.lib.dnnl_lrn_forward_primitive_desc_create(
            pd, library.engine, _FORWARD_INFERENCE, _LRN_ACROSS_CHANNELS, source, source, ctypes.c_int64(size),
            ctypes.c_float(alpha), ctypes.c_float(beta), ctypes.c_float(k), None), "LRN",
            self.threads_for(ONEDNN_ELEMENT_WORK * math.prod(dims) * size), [(_ARG_SRC, source),
                                                                             (_ARG_DST, _QUERY_DST_MD)])


class Concat(Operation):
    """The `sources` (descriptors of `dims`, each its own layout) joined along `axis` into the
    layout oneDNN chooses (where every source's channels fill whole blocks, the blocked one, each
    source a view of it). oneDNN's generic concat is a reorder per source, no reference kernel."""

    def __init__(self, sources, dims, axis):
        library = _library
        self.library, self.threads = library, None
        out = list(dims[0])
        out[axis] = sum(d[axis] for d in dims)
        pd = ctypes.c_void_p()
        library.check(library.lib.dnnl_concat_primitive_desc_create(
            ctypes.byref(pd), library.engine, library.desc(tuple(out), plain=False), len(sources), axis,
            (ctypes.c_void_p * len(sources))(*sources), None), "concat")
        implementation = ctypes.c_char_p()
        library.check(library.lib.dnnl_primitive_desc_query(pd, _QUERY_IMPLEMENTATION, 0, ctypes.byref(implementation)),
                      "query")
        self.implementation, self.slow = implementation.value.decode(), False
        self.dst = ctypes.c_void_p(library.lib.dnnl_primitive_desc_query_md(pd, _QUERY_DST_MD, 0))
        descs = {_ARG_MULTIPLE_SRC + k: md for k, md in enumerate(sources)}
        descs[_ARG_DST] = self.dst
        self.step = _Step(library, library.primitive(pd), descs)
        self.dst_size = library.size(self.dst)


def create(operation, *args, **kwargs):
    """operation(*args, **kwargs), or None where oneDNN has no kernel for it (it refuses, or offers
    only its reference kernel)."""
    try:
        built = operation(*args, **kwargs)
    except OSError:
        return None
    return None if built.slow else built
