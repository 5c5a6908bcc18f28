"""Every built-in layer type, on the cases it declares beside its code (`cases` on its class):
the float64 gradient check, and CPU<->GPU parity on a GPU (the `gpu` cases, marked `cuda`) or,
where there is none, on the CUDA emulator (tests/cuda_emulator.py: the same kernels and Python
code, run by CPU threads). A type that declares no cases fails the first test, by name.
"""
import zlib

import pytest

import nvcaffe_py as caffe
from nvcaffe_py import conformance
from nvcaffe_py.errors import CaffeError
from nvcaffe_py.registry import builtin_layer_types, layer_class


TYPES = builtin_layer_types()
CASES = [pytest.param(type_name, k, id=f"{type_name}-{k}")
         for type_name in TYPES for k, _ in enumerate(conformance.declared_cases(layer_class(type_name)) or ())]


def case(type_name, k):
    return conformance.declared_cases(layer_class(type_name))[k]


def seed(type_name, k):
    """Each case its own inputs, so that no check passes on what an earlier case left behind."""
    return zlib.crc32(f"{type_name}-{k}".encode())


def test_every_builtin_type_declares_cases():
    missing = [t for t in TYPES if conformance.declared_cases(layer_class(t)) is None]
    empty = [t for t in TYPES if conformance.declared_cases(layer_class(t)) == []]
    assert not missing, (f"layer types without conformance cases: {', '.join(missing)} (declare `cases` on the "
                         f"class, see docs/adding-a-layer.md)")
    assert not empty, f"layer types with an empty `cases` list: {', '.join(empty)}"


@pytest.mark.parametrize("type_name,k", CASES)
def test_gradient(type_name, k):
    reason = conformance.check_gradient(type_name, case(type_name, k), seed(type_name, k))
    if reason:
        pytest.skip(reason)


@pytest.mark.parametrize("type_name,k", CASES)
def test_gpu_parity(device, type_name, k):
    reason = conformance.check_gpu_parity(type_name, case(type_name, k), seed(type_name, k))
    if reason:
        pytest.skip(reason)


# -- what a plugin author runs ----------------------------------------------------------------------
@caffe.register_layer("ConformanceTestScale")
class ScaleByThree(caffe.Layer):
    """y = 3x, with its cases; test types are not built-in, so only the calls below check them."""
    exact_num_bottom = exact_num_top = 1
    cases = [conformance.Case("", [(2, 3)]), conformance.Case("", [(4,)])]

    def reshape(self, bottom, top):
        top[0].reshape_like(bottom[0])

    def forward_cpu(self, bottom, top):
        top[0].data[...] = 3 * bottom[0].data_readonly()

    def backward_cpu(self, top, propagate_down, bottom):
        if propagate_down[0]:
            bottom[0].diff[...] = 3 * top[0].diff_readonly()


@caffe.register_layer("ConformanceTestScaleWrongBackward")
class ScaleByThreeWrongBackward(ScaleByThree):
    cases = [conformance.Case("", [(2, 3)])]

    def backward_cpu(self, top, propagate_down, bottom):
        bottom[0].diff[...] = 2 * top[0].diff_readonly()  # the bug the check must find


@caffe.register_layer("ConformanceTestNoCases")
class ScaleByThreeNoCases(ScaleByThree):
    pass  # declares no cases of its own: its parent's are not inherited


def test_check_layer_type_runs_a_plugins_cases():
    assert conformance.check_layer_type("ConformanceTestScale", gpu=False) == [
        "ConformanceTestScale[0] gradient: ok", "ConformanceTestScale[1] gradient: ok"]
    assert "ConformanceTestScale" not in builtin_layer_types()


def test_check_layer_type_finds_a_wrong_backward_and_a_type_without_cases():
    with pytest.raises(AssertionError, match=r"\(ConformanceTestScaleWrongBackward\): gradient of bottom\[0\]"):
        conformance.check_layer_type("ConformanceTestScaleWrongBackward", gpu=False)
    with pytest.raises(CaffeError, match="'ConformanceTestNoCases' declares no conformance cases"):
        conformance.check_layer_type("ConformanceTestNoCases")


def test_check_layer_type_runs_gpu_parity_where_asked(device):
    report = conformance.check_layer_type("ConformanceTestScale", gpu=True)
    assert "ConformanceTestScale[1] GPU parity: ok" in report
