"""Weight fillers, as Caffe's filler.hpp: constant, uniform, gaussian (optionally sparse),
positive_unitball, xavier, msra, bilinear; `variance_norm` picks fan-in, fan-out or their average.
All draw from the process-wide stream in `nvcaffe_py.rng`.
"""
import math

import numpy as np

from . import rng
from .errors import CaffeError
from .proto import caffe_pb2


def _fans(blob):
    count = blob.count()
    fan_in = count // blob.shape[0] if blob.num_axes else count
    fan_out = count // blob.shape[1] if blob.num_axes > 1 else count
    return fan_in, fan_out


def _variance_denominator(blob, filler_param):
    fan_in, fan_out = _fans(blob)
    norm = filler_param.variance_norm
    if norm == caffe_pb2.FillerParameter.AVERAGE:
        return (fan_in + fan_out) / 2.0
    if norm == caffe_pb2.FillerParameter.FAN_OUT:
        return float(fan_out)
    return float(fan_in)


def _constant(blob, p, g):
    return np.full(blob.shape, p.value)


def _uniform(blob, p, g):
    return g.uniform(p.min, p.max, blob.shape)


def _gaussian(blob, p, g):
    values = g.normal(p.mean, p.std, blob.shape)
    if p.sparse >= 0:
        if blob.num_axes < 1:
            raise CaffeError("a sparse gaussian filler needs a blob with at least one axis")
        num_outputs = blob.shape[0]
        keep_probability = p.sparse / float(num_outputs)
        values *= g.random(blob.shape) < keep_probability
    return values


def _positive_unitball(blob, p, g):
    values = g.random(blob.shape)
    rows = values.reshape(blob.shape[0] if blob.num_axes else 1, -1)
    rows /= rows.sum(axis=1, keepdims=True)
    return values


def _xavier(blob, p, g):
    scale = math.sqrt(3.0 / _variance_denominator(blob, p))
    return g.uniform(-scale, scale, blob.shape)


def _msra(blob, p, g):
    std = math.sqrt(2.0 / _variance_denominator(blob, p))
    return g.normal(0.0, std, blob.shape)


def _bilinear(blob, p, g):
    if blob.num_axes != 4 or blob.shape[2] != blob.shape[3]:
        raise CaffeError(f"the bilinear filler needs a 4-axis blob with square kernels, got shape {blob.shape}")
    k = blob.shape[3]
    f = math.ceil(k / 2.0)
    c = (2 * f - 1 - f % 2) / (2.0 * f)
    x = np.arange(k)
    weights_1d = 1 - np.abs(x / f - c)
    return np.broadcast_to(np.outer(weights_1d, weights_1d), blob.shape)


FILLERS = {
    "constant": _constant,
    "uniform": _uniform,
    "gaussian": _gaussian,
    "positive_unitball": _positive_unitball,
    "xavier": _xavier,
    "msra": _msra,
    "bilinear": _bilinear,
}


def fill(blob, filler_param):
    """Fill `blob.data` according to a caffe_pb2.FillerParameter."""
    try:
        make = FILLERS[filler_param.type]
    except KeyError:
        raise CaffeError(f"unknown filler type '{filler_param.type}' (known: {', '.join(FILLERS)})") from None
    blob.data[...] = make(blob, filler_param, rng.generator())
