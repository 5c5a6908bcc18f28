import os
import sys

import pytest

from nvcaffe_py.backends import cuda_unavailable_reason

import cuda_emulator

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.path.abspath(os.environ.get("NVCAFFE_SHARED", os.path.join(HERE, "..", "..", "shared")))
# pycaffe-style Python layer modules used by the tests (e.g. `pyloss`) live here.
sys.path.insert(0, os.path.join(HERE, "pycaffe_modules"))


def shared_path(*parts):
    """A path under ../shared, or skip the test with the reason when it is absent."""
    path = os.path.join(SHARED, *parts)
    if not os.path.exists(path):
        pytest.skip(f"shared test material not found: {path} (expected ../shared beside the checkout)")
    return path


@pytest.fixture(autouse=True)
def _cpu_mode_and_seed():
    import nvcaffe_py

    nvcaffe_py.set_mode_cpu()
    nvcaffe_py.set_random_seed(1234)
    yield


@pytest.fixture(scope="module", params=[pytest.param("gpu", marks=pytest.mark.cuda), "emulator"])
def device(request):
    """Where the GPU code of a test runs: a usable GPU (the `gpu` case, marked `cuda`), else the
    CUDA emulator of tests/cuda_emulator.py (the `emulator` case: the same kernels and Python
    code, run by CPU threads). Each case skips, with the reason, where it cannot run; with
    NVCAFFE_REQUIRE_GPU=1 (tools/gpu_check.sh on a GPU machine) the `gpu` case fails instead."""
    reason = cuda_unavailable_reason()
    if request.param == "gpu":
        if reason is not None and os.environ.get("NVCAFFE_REQUIRE_GPU") == "1":
            pytest.fail(f"NVCAFFE_REQUIRE_GPU=1 but no GPU is usable: {reason}")
        if reason is not None:
            pytest.skip(f"no usable GPU: {reason}")
        yield "gpu"
        return
    if reason is None:
        pytest.skip("a GPU is usable: the gpu case runs this on it")
    missing = cuda_emulator.available()
    if missing:
        pytest.skip(missing)
    with cuda_emulator.installed():
        yield "emulator"
