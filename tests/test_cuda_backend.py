"""The CUDA backend's plumbing: a clear reason where no GPU is usable, no PyCUDA import on
`import nvcaffe_py`, GPU mode refused with that reason, the launcher's argument checks, the
host Philox reference, and (on the CPU emulator) the lazy host/device synchronisation of blobs."""
import os
import subprocess
import sys

import numpy as np
import pytest

import nvcaffe_py
from nvcaffe_py import mode
from nvcaffe_py.backends import cuda_unavailable_reason
from nvcaffe_py.backends.cuda import context, kernels, rng, streams
from nvcaffe_py.backends.cuda import math_functions as mf
from nvcaffe_py.blob import Blob
from nvcaffe_py.errors import CaffeError
from nvcaffe_py.synced_array import AT_DEVICE, AT_HOST, SYNCED

import cuda_emulator

no_gpu = pytest.mark.skipif(cuda_unavailable_reason() is None, reason="a GPU is usable on this machine")


def test_import_never_loads_pycuda():
    code = ("import sys, nvcaffe_py, nvcaffe_py.layers, nvcaffe_py.solvers; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'pycuda'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@no_gpu
def test_unavailable_reason_is_one_clear_line():
    reason = cuda_unavailable_reason()
    assert isinstance(reason, str) and reason and "\n" not in reason
    assert any(word in reason for word in ("PyCUDA", "driver", "device"))


@no_gpu
def test_gpu_mode_is_refused_with_the_reason():
    with pytest.raises(CaffeError, match="no GPU is usable") as info:
        nvcaffe_py.set_mode_gpu()
    assert cuda_unavailable_reason() in str(info.value)
    assert mode.mode() == mode.CPU
    with pytest.raises(CaffeError, match="not usable"):
        context.activate(0)


class _RecordingFunction:
    def prepare(self, arg_format):
        self.arg_format = arg_format

    def prepared_async_call(self, grid, block, stream, *args, shared_size=0):
        self.call = (grid, block, stream, args)


class _DeviceArray:
    def __init__(self, address):
        self.gpudata = address


def test_kernel_packs_arguments_as_declared(monkeypatch):
    monkeypatch.setattr(streams, "compute", lambda: "the compute stream")
    function = _RecordingFunction()
    kernel = kernels.Kernel(function, "k", "iPfdP")
    kernel((2, 1, 1), (256, 1, 1), np.int64(5), _DeviceArray(4096), 1, np.float32(0.5), None)
    grid, block, stream, args = function.call
    assert function.arg_format == "iPfdP" and stream == "the compute stream"
    assert args == (5, 4096, 1.0, 0.5, 0) and type(args[2]) is float
    with pytest.raises(TypeError, match="kernel k takes 5 arguments"):
        kernel((1, 1, 1), (256, 1, 1), 1, 2)


def test_unknown_kernel_names_the_file():
    if not os.path.exists(kernels.nvcc()):
        pytest.skip("nvcc not found")
    source = kernels.Source(kernels.__file__, "math_functions.cu")
    with pytest.raises(CaffeError, match="no extern \"C\" kernel named nonexistent"):
        source.get("nonexistent", np.float32)
    with pytest.raises(CaffeError, match="float32 and float64"):
        source.get("axpy", np.float16)


def test_host_philox_matches_random123_known_answers():
    def philox(counter, key):
        return [int(v) for v in rng.philox4x32_10(np.array([counter], np.uint32), key)[0]]

    assert philox([0, 0, 0, 0], [0, 0]) == [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]
    assert philox([0xffffffff] * 4, [0xffffffff] * 2) == [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd]
    assert philox([0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344], [0xa4093822, 0x299f31d0]) == \
        [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1]


def test_device_stream_restarts_with_the_host_seed():
    nvcaffe_py.set_random_seed(42)
    first = [rng.next_stream() for _ in range(2)]
    nvcaffe_py.set_random_seed(42)
    assert [rng.next_stream() for _ in range(2)] == first
    assert first[0][0] == 42 and first[1][1] == first[0][1] + 1


@no_gpu
def test_blob_syncs_lazily_between_host_and_device():
    if cuda_emulator.available():
        pytest.skip(cuda_emulator.available())

    with cuda_emulator.installed():
        nvcaffe_py.set_mode_gpu()
        blob = Blob(2, 3)
        blob.data[...] = np.arange(6).reshape(2, 3)
        assert blob._data.head == AT_HOST
        view = blob.gpu_data_readonly()
        assert view.shape == (2, 3) and blob._data.head == SYNCED
        mf.scale(2.0, blob.gpu_data)
        assert blob._data.head == AT_DEVICE
        np.testing.assert_array_equal(blob.data, 2 * np.arange(6).reshape(2, 3))
        assert blob.gpu_diff.size == 6 and not blob.diff.any()  # uninitialised diff: zeros on both sides
        blob.reshape(3)  # smaller: same buffers, a 3-element view
        assert blob.gpu_data.shape == (3,)
        nvcaffe_py.set_mode_cpu()


@no_gpu
def test_zero_diff_stays_on_the_side_in_use():
    """Net.clear_param_diffs in GPU mode zeros the device copy without a host round trip."""
    if cuda_emulator.available():
        pytest.skip(cuda_emulator.available())

    with cuda_emulator.installed():
        nvcaffe_py.set_mode_gpu()
        blob = Blob(2, 3)
        mf.set_value(blob.gpu_diff, 1.5)
        blob.zero_diff()
        assert blob._diff.head == AT_DEVICE
        assert not blob.diff.any()
        nvcaffe_py.set_mode_cpu()
        blob.diff[...] = 2.0
        blob.zero_diff()
        assert blob._diff.head == AT_HOST and not blob.diff.any()
