"""oneDNN's convolution through its C API (ctypes): the optional fast CPU engine of forward-only
passes (the deploy-time forward), `pip install nvcaffe_py[onednn]` (the onednn-cpu-gomp wheel's
libdnnl.so.3, found under sys.prefix/lib or on the loader's path). The NumPy engine stays the
reference: tests/test_onednn.py checks this one against it on every Convolution conformance case.

A `Convolution` is one primitive for one geometry (cached by the layer per shape). Its NCHW
inputs and outputs are the blobs' arrays, reordered in and out of oneDNN's blocked layout
(nChw16c) through per-thread scratch buffers, where its direct, depthwise and 1x1 kernels run: on
plain NCHW arrays oneDNN falls back to a GEMM convolution, measured on the 2-core development
machine (with the reorders counted) 5x slower on 3x3 convolutions (16 channels, 32x32, batch 16:
3.9 against 0.7 ms), 3-7x on depthwise ones and 2.6x on MobileNet v2's 1x1 expansions; only its
1x1 projections at batch 16 were faster plain (144 -> 24 channels at 56x56: 12.7 against 17.0 ms).
The weights are reordered into the primitive's layout once per version of the weight blob's
buffer (SyncedArray.version), the bias is read in place.

OpenMP's threads (libgomp) run inside each primitive. They are made to sleep rather than spin
between primitives (OMP_WAIT_POLICY=PASSIVE unless set), so that they leave the cores to the
NumPy layers in between.
"""
import ctypes
import ctypes.util
import os
import sys

import numpy as np

from .scratch import scratch

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
        self.engine, self.stream = ctypes.c_void_p(), ctypes.c_void_p()
        self.check(self.lib.dnnl_engine_create(ctypes.byref(self.engine), _CPU, ctypes.c_size_t(0)), "engine")
        self.check(self.lib.dnnl_stream_create(ctypes.byref(self.stream), self.engine, ctypes.c_uint(_IN_ORDER)),
                   "stream")

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


class _Step:
    """A primitive and a memory object per argument, pointed at the caller's arrays each run."""

    def __init__(self, library, primitive, descs):
        self.library, self.primitive = library, primitive
        self.memories = {arg: library.memory(md) for arg, md in descs.items()}
        self.args = (_ExecArg * len(descs))(*[_ExecArg(arg, m) for arg, m in self.memories.items()])

    def run(self, arrays):
        lib = self.library.lib
        for arg, array in arrays.items():
            lib.dnnl_memory_set_data_handle(self.memories[arg], array.ctypes.data)
        self.library.check(lib.dnnl_primitive_execute(self.primitive, self.library.stream, len(self.args), self.args),
                           "execution")
        self.library.check(lib.dnnl_stream_wait(self.library.stream), "execution")


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
    Convolution, it reads that one's blocked output as it is (`convolve` runs them in a row)."""

    def __init__(self, num, channels, spatial, out_spatial, out_channels, group, kernel, pad, stride, dilation,
                 negative_slope=None, after=None):
        library = _library
        self.library = library
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
            library.check(library.lib.dnnl_post_ops_append_eltwise(post_ops, _ELTWISE_RELU, ctypes.c_float(negative_slope),
                                                                   ctypes.c_float(0)), "ReLU post-op")
            library.check(library.lib.dnnl_primitive_attr_set_post_ops(attr, post_ops), "post-ops")
        pd = ctypes.c_void_p()
        library.check(library.lib.dnnl_convolution_forward_primitive_desc_create(
            ctypes.byref(pd), library.engine, _FORWARD_INFERENCE, _CONVOLUTION_DIRECT,
            after.dst if after else library.desc(images, plain=False), library.desc(weights, plain=False),
            library.desc((out_channels,)),
            library.desc(outputs, plain=False), _Dims(*stride), _Dims(*(d - 1 for d in dilation)), _Dims(*pad),
            _Dims(*pad), attr), "convolution")
        implementation = ctypes.c_char_p()
        library.check(library.lib.dnnl_primitive_desc_query(pd, _QUERY_IMPLEMENTATION, 0, ctypes.byref(implementation)),
                      "query")
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
        self._weights, self._weights_of = None, None

    def weights(self, weights, version):
        """The weights in the primitive's layout; `version`, (buffer, its version), names their
        values: they are reordered once each."""
        if self._weights_of is None or self._weights_of[0] is not version[0] or self._weights_of[1] != version[1]:
            self._weights = np.empty(self.library.size(self.weights_md), np.float32)
            self.library.reorder(self.weights_user, self.weights_md).run(
                {_ARG_SRC: np.ascontiguousarray(weights), _ARG_DST: self._weights})
            self._weights_of = version
        return self._weights


def convolve(convolutions, parameters, images, outputs):
    """Convolutions in a row, each built `after` the one before (a single one alone): images in
    NCHW reordered in once, each blocked output read by the next, the last reordered out into
    `outputs`. parameters: (weights, their version, bias) of each."""
    names = ("onednn.a", "onednn.b")
    src = scratch(names[0], (convolutions[0].src_size,), np.float32)
    convolutions[0].reorder_in.run({_ARG_SRC: images, _ARG_DST: src})
    for i, (convolution, (weights, version, bias)) in enumerate(zip(convolutions, parameters)):
        dst = scratch(names[(i + 1) % 2], (convolution.dst_size,), np.float32)
        convolution.step.run({_ARG_SRC: src, _ARG_WEIGHTS: convolution.weights(weights, version), _ARG_BIAS: bias,
                              _ARG_DST: dst})
        src = dst
    convolutions[-1].reorder_out.run({_ARG_SRC: src, _ARG_DST: outputs})
