"""Finite-difference gradient checks for layers, in float64 (Caffe's GradientChecker).

Public helper for plugin authors:

    from nvcaffe_py.gradient_check import check_layer_gradient
    check_layer_gradient('type: "MyLayer" my_param { ... }', [np.random.randn(2, 3, 4, 5)])

The objective is sum_t <top_t, R_t> for fixed random R_t (set as the top diffs), so every output
element is tested; the analytic gradient from `backward` must match central differences.
"""
import numpy as np

from . import rng
from .blob import Blob
from .errors import CaffeError
from .formats import parse_text
from .proto import caffe_pb2
from .registry import create_layer


def layer_param_from_text(text: str, name="layer") -> "caffe_pb2.LayerParameter":
    param = parse_text(text, caffe_pb2.LayerParameter(), "<layer>")
    if not param.name:
        param.name = name
    return param


def make_layer(layer, phase=caffe_pb2.TRAIN, dtype=np.float64):
    """A Layer from prototxt text, a LayerParameter or an existing Layer."""
    if isinstance(layer, str):
        layer = layer_param_from_text(layer)
    if isinstance(layer, caffe_pb2.LayerParameter):
        if not layer.HasField("phase"):
            layer.phase = phase
        return create_layer(layer, phase, dtype)
    return layer


def blobs_from_arrays(arrays, dtype=np.float64):
    blobs = []
    for a in arrays:
        a = np.asarray(a, dtype=dtype)
        b = Blob(a.shape, dtype=dtype)
        b.data[...] = a
        blobs.append(b)
    return blobs


def setup_layer(layer, bottom_arrays, num_tops=1, phase=caffe_pb2.TRAIN, dtype=np.float64):
    """Build and set up a layer on the given inputs; returns (layer, bottom blobs, top blobs)."""
    layer = make_layer(layer, phase, dtype)
    bottoms = blobs_from_arrays(bottom_arrays, dtype)
    tops = [Blob(dtype=dtype) for _ in range(num_tops)]
    layer.set_up(bottoms, tops)
    return layer, bottoms, tops


def check_layer_gradient(layer, bottom_arrays, *, num_tops=1, check_bottoms=None, check_params=True,
                         step=1e-4, threshold=1e-5, seed=1701, max_checks_per_blob=300,
                         phase=caffe_pb2.TRAIN, kink=None, kink_range=-1.0, prepare=None):
    """Raise AssertionError naming the first blob/element whose analytic gradient is wrong.

    check_bottoms: indices of bottoms to check (default: all); labels must be left out.
    kink/kink_range: skip elements whose input lies within kink_range of a kink (e.g. ReLU at 0).
    prepare: prepare(layer, bottoms) after setup (feeding a MemoryData layer, say).
    Stochastic layers see the same random stream in every forward (the stream is reseeded).
    """
    rng.set_random_seed(seed)
    layer, bottoms, tops = setup_layer(layer, bottom_arrays, num_tops, phase)
    if prepare is not None:
        prepare(layer, bottoms)
    check_bottoms = list(range(len(bottoms))) if check_bottoms is None else list(check_bottoms)
    picker = np.random.default_rng(seed)

    def forward():
        rng.set_random_seed(seed + 1)
        layer.reshape(bottoms, tops)
        layer.forward_cpu(bottoms, tops)

    forward()
    weights = [picker.standard_normal(t.shape) for t in tops]

    def objective():
        forward()
        return sum(float(np.sum(t.data * w)) for t, w in zip(tops, weights))

    # Analytic gradients.
    for b in bottoms:
        b.diff[...] = 0
    for p in layer.blobs:
        p.diff[...] = 0
    for t, w in zip(tops, weights):
        t.diff[...] = w
    propagate = [i in check_bottoms for i in range(len(bottoms))]
    layer.backward_cpu(tops, propagate, bottoms)
    targets = [(f"bottom[{i}]", bottoms[i]) for i in check_bottoms]
    if check_params:
        targets += [(f"param[{k}]", p) for k, p in enumerate(layer.blobs)]
    analytic = [b.diff.copy() for _, b in targets]

    for (label, blob), grad in zip(targets, analytic):
        flat = blob.data.reshape(-1)
        indices = np.arange(flat.size)
        if flat.size > max_checks_per_blob:
            indices = picker.choice(flat.size, max_checks_per_blob, replace=False)
        for idx in indices:
            original = flat[idx]
            if kink is not None and abs(original - kink) <= kink_range:
                continue
            flat[idx] = original + step
            plus = objective()
            flat[idx] = original - step
            minus = objective()
            flat[idx] = original
            numeric = (plus - minus) / (2 * step)
            computed = grad.reshape(-1)[idx]
            scale = max(abs(numeric), abs(computed), 1.0)
            if abs(numeric - computed) > threshold * scale:
                where = tuple(int(i) for i in np.unravel_index(idx, blob.shape))  # NumPy 2 reprs np.int64(..)
                raise AssertionError(
                    f"layer '{layer.name}' ({layer.type}): gradient of {label} element {where} "
                    f"is {computed:.8g} by backward but {numeric:.8g} by finite differences")
    forward()
    return layer


__all__ = ["check_layer_gradient", "setup_layer", "make_layer", "layer_param_from_text", "CaffeError"]
