"""Every built-in layer type, on the cases it declares beside its code (`cases` on its class):
the float64 gradient check, and CPU<->GPU parity on a GPU (the `gpu` cases, marked `cuda`) or,
where there is none, on the CUDA emulator (tests/cuda_emulator.py: the same kernels and Python
code, run by CPU threads). A type that declares no cases fails the first test, by name.
"""
import zlib

import pytest

from nvcaffe_py import conformance
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
