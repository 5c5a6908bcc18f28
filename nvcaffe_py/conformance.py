"""Conformance: the checks every layer type passes, on cases declared beside the layer.

    @register_layer("Pooling")
    class PoolingLayer(Layer):
        cases = [Case("pooling_param { pool: MAX kernel_size: 3 stride: 2 }", [(2, 3, 7, 9)]),
                 Case("pooling_param { pool: AVE kernel_size: 3 }", [(2, 3, 7, 9)], tops=1)]

Each case is a layer configuration (prototxt text without the type) and its inputs: a shape
gives standard normal values; `uniform`, `labels` and `fixed` give others. On each case:
  * `check_gradient`: backward_cpu against central differences, in float64 (types that have a
    backward), on every differentiable bottom and every parameter;
  * `check_gpu_parity`: forward, backward and the parameters after them agree in float32 between
    CPU mode and GPU mode (the GPU half, or the CPU code with the data moving through the device),
    where a GPU is usable; the tests run it on the CUDA emulator too.
tests/test_conformance.py runs both on every case of every built-in type and fails, naming it,
for a type that declares no cases. A plugin author runs the same on their own type with

    from nvcaffe_py.conformance import check_layer_type
    check_layer_type("MyLayer")          # its class's `cases`; GPU parity where a GPU is usable
"""
from dataclasses import dataclass, field

import numpy as np

from . import backends, mode, rng
from .blob import Blob
from .errors import CaffeError
from .gradient_check import check_layer_gradient, layer_param_from_text, make_layer
from .proto import caffe_pb2
from .registry import layer_class

# float32 GPU results must match the NumPy reference to this, relative (with a floor at this
# fraction of the array's largest magnitude, for sums that cancel to almost nothing).
PARITY_RTOL = 1e-4


# -- inputs ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Input:
    """One bottom of a case: its values, drawn from a seeded generator, and whether the checks
    give it a gradient (labels and other fixed inputs: no)."""
    shape: tuple
    kind: str = "normal"  # normal, uniform, labels or fixed
    low: float = 0.0  # normal: shift; uniform: low
    high: float = 1.0  # normal: scale; uniform: high; labels: number of classes
    values: tuple = ()  # fixed
    differentiable: bool = True

    def array(self, generator) -> np.ndarray:
        if self.kind == "normal":
            return generator.standard_normal(self.shape) * self.high + self.low
        if self.kind == "uniform":
            return generator.uniform(self.low, self.high, self.shape)
        if self.kind == "labels":
            return generator.integers(0, int(self.high), self.shape).astype(np.float64)
        return np.asarray(self.values, np.float64).reshape(self.shape)


def normal(shape, scale=1.0, shift=0.0, differentiable=True) -> Input:
    return Input(tuple(shape), "normal", shift, scale, differentiable=differentiable)


def uniform(shape, low, high, differentiable=True) -> Input:
    return Input(tuple(shape), "uniform", low, high, differentiable=differentiable)


def labels(shape, classes) -> Input:
    """Integer class labels in [0, classes), stored as floats as Caffe's are; no gradient."""
    return Input(tuple(shape), "labels", high=classes, differentiable=False)


def fixed(array, differentiable=False) -> Input:
    array = np.asarray(array, np.float64)
    return Input(array.shape, "fixed", values=tuple(array.reshape(-1)), differentiable=differentiable)


# -- cases ----------------------------------------------------------------------------------------
@dataclass
class Case:
    """A layer configuration to check.

    params       the LayerParameter's prototxt text without `type` (and usually without `name`)
    inputs       one entry per bottom: a shape (standard normal values) or an Input
    tops         how many tops; in_place: top 0 is bottom 0 (parity only: finite differences
                 need the input to survive the forward)
    phase        TRAIN or TEST
    prepare      prepare(layer, bottoms), after setup and before the first forward (MemoryData's
                 arrays, say)
    no_gradient  why the gradient check does not apply to this case (None: it does, when the
                 type has a backward)
    check_params False where the parameters get no gradient by design (BatchNorm's stored
                 statistics): the gradient check then covers the bottoms only
    no_parity    why CPU and GPU cannot agree here (a device RNG, say); None: they must
    kink, kink_range, step, threshold   passed to the gradient check (ReLU's kink at 0, ...)
    rtol         the parity tolerance
    """
    params: str = ""
    inputs: list = field(default_factory=list)
    tops: int = 1
    in_place: bool = False
    phase: int = caffe_pb2.TRAIN
    prepare: object = None
    no_gradient: str = None
    check_params: bool = True
    no_parity: str = None
    kink: float = None
    kink_range: float = -1.0
    step: float = 1e-4
    threshold: float = 1e-5
    rtol: float = PARITY_RTOL

    def layer_param(self, type_name: str):
        param = layer_param_from_text(f'type: "{type_name}" {self.params}', name=type_name.lower())
        param.phase = self.phase
        return param

    def specs(self):
        return [spec if isinstance(spec, Input) else normal(spec) for spec in self.inputs]

    def arrays(self, seed=1701):
        generator = np.random.default_rng(seed)
        return [spec.array(generator) for spec in self.specs()]

    def differentiable_bottoms(self):
        return [i for i, spec in enumerate(self.specs()) if spec.differentiable]


class Exempt:
    """In place of cases, for a type the conformance checks cannot build on their own (it reads
    files, or user code): the reason names where it is tested instead."""

    def __init__(self, reason: str):
        self.reason = reason

    def __iter__(self):
        return iter(())

    def __repr__(self):
        return f"Exempt({self.reason!r})"


def declared_cases(layer_type):
    """The `cases` a layer class (or factory) declares itself, not inherited from a parent;
    None when it declares none."""
    return vars(layer_type).get("cases")


# -- the checks -----------------------------------------------------------------------------------
def check_gradient(type_name: str, case: Case, seed=1701):
    """Raise AssertionError naming the element whose analytic gradient is wrong. Returns why it
    did not apply, or None when it ran."""
    if case.no_gradient:
        return case.no_gradient
    if not layer_class(type_name).has_backward():
        return f"{type_name} has no backward"
    check_layer_gradient(case.layer_param(type_name), case.arrays(seed), num_tops=case.tops,
                         check_bottoms=case.differentiable_bottoms(), check_params=case.check_params,
                         phase=case.phase, prepare=case.prepare,
                         kink=case.kink, kink_range=case.kink_range, step=case.step, threshold=case.threshold,
                         seed=seed)
    return None


def _run_pass(type_name, case, arrays, *, gpu, layer=None, initial=None, seed=1701):
    """One forward (and backward, for a type that has one) in float32 on the CPU or in GPU mode;
    the GPU run reuses the CPU run's layer, its parameters reset to what the CPU run started with."""
    backends.set_mode_cpu()
    bottoms = [Blob(a.shape, dtype=np.float32) for a in arrays]
    for blob, array in zip(bottoms, arrays):
        blob.data[...] = array
    tops = bottoms[:1] if case.in_place else [Blob(dtype=np.float32) for _ in range(case.tops)]
    if layer is None:
        layer = make_layer(case.layer_param(type_name), case.phase, np.float32)
        layer.set_up(bottoms, tops)
        initial = [blob.data.copy() for blob in layer.blobs]
    else:
        layer.reshape(bottoms, tops)
        for blob, values in zip(layer.blobs, initial):
            blob.data[...] = values
    if case.prepare is not None:
        case.prepare(layer, bottoms)
    for blob in layer.blobs:
        blob.diff[...] = 0
    if gpu:
        backends.set_mode_gpu()
    try:
        rng.set_random_seed(seed)
        layer.reshape(bottoms, tops)
        layer.forward(bottoms, tops)
        outputs = [t.data_readonly().copy() for t in tops]
        grads = []
        if layer.has_backward():
            picker = np.random.default_rng(seed + 1)
            for t in tops:
                t.diff[...] = picker.standard_normal(t.shape)
            propagate = [i in case.differentiable_bottoms() for i in range(len(bottoms))]
            for b in bottoms:
                if not any(b is t for t in tops):
                    b.diff[...] = 0
            layer.backward(tops, propagate, bottoms)
            grads = [b.diff_readonly().copy() for b, p in zip(bottoms, propagate) if p]
            grads += [p.diff_readonly().copy() for p in layer.blobs]
        state = [p.data_readonly().copy() for p in layer.blobs]
    finally:
        backends.set_mode_cpu()
    return layer, initial, outputs, grads, state


def assert_close(got, want, what, rtol=PARITY_RTOL):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape, f"{what}: shape {got.shape}, expected {want.shape}"
    floor = rtol * max(float(np.abs(want).max(initial=0.0)), 1e-6)
    bad = ~(np.abs(got - want) <= rtol * np.abs(want) + floor)  # NaN counts as bad
    if bad.any():
        at = tuple(int(i) for i in np.unravel_index(np.argmax(bad), bad.shape))
        raise AssertionError(f"{what}: {int(bad.sum())} of {bad.size} elements differ, e.g. at {at}: "
                             f"GPU {got[at]:.8g}, CPU {want[at]:.8g}")


def check_gpu_parity(type_name: str, case: Case, seed=1701):
    """Raise AssertionError where GPU mode disagrees with the CPU. Needs a usable GPU (or the
    tests' emulator). Returns why it did not apply, or None when it ran."""
    if case.no_parity:
        return case.no_parity
    arrays = case.arrays(seed)
    layer, initial, cpu_out, cpu_grad, cpu_state = _run_pass(type_name, case, arrays, gpu=False, seed=seed)
    _, _, gpu_out, gpu_grad, gpu_state = _run_pass(type_name, case, arrays, gpu=True, layer=layer, initial=initial,
                                                   seed=seed)
    where = f"{type_name} ({'GPU half' if layer.gpu is not None else 'CPU code in GPU mode'})"
    for k, (g, c) in enumerate(zip(gpu_out, cpu_out)):
        assert_close(g, c, f"{where} top[{k}]", case.rtol)
    for k, (g, c) in enumerate(zip(gpu_grad, cpu_grad)):
        assert_close(g, c, f"{where} gradient {k}", case.rtol)
    for k, (g, c) in enumerate(zip(gpu_state, cpu_state)):
        assert_close(g, c, f"{where} param {k} after the pass", case.rtol)
    return None


def check_layer_type(type_name: str, gpu=None):
    """Run every declared case of a layer type: the gradient check, and GPU parity where a GPU is
    usable (gpu=None), always (True: an error where none is) or never (False). Returns one line
    per case and check saying what ran or why it did not."""
    cases = declared_cases(layer_class(type_name))
    if cases is None:
        raise CaffeError(f"layer type '{type_name}' declares no conformance cases (a `cases` list on its class)")
    if isinstance(cases, Exempt):
        return [f"{type_name}: exempt: {cases.reason}"]
    reason = backends.cuda_unavailable_reason()
    if gpu and reason is not None:
        raise CaffeError(f"GPU parity asked for, but no GPU is usable: {reason}")
    run_gpu = reason is None if gpu is None else gpu
    previous = mode.mode()
    report = []
    try:
        for k, case in enumerate(cases):
            skipped = check_gradient(type_name, case)
            report.append(f"{type_name}[{k}] gradient: {'skipped: ' + skipped if skipped else 'ok'}")
            if run_gpu:
                skipped = check_gpu_parity(type_name, case)
                report.append(f"{type_name}[{k}] GPU parity: {'skipped: ' + skipped if skipped else 'ok'}")
    finally:
        mode.set_mode(previous)
    return report
