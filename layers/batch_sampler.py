"""SSD's batch_sampler (weiliu89/caffe, src/caffe/util/sampler.cpp): random crop windows that
satisfy constraints against an image's object boxes, for AnnotatedData's data augmentation.

Each BatchSampler draws max_trials windows and keeps the first max_sample that qualify: a scale s in
[min_scale, max_scale] and an aspect ratio a in [min_aspect_ratio, max_aspect_ratio] (clamped to
[s^2, 1/s^2] so the window fits) give a window s*sqrt(a) wide and s/sqrt(a) high at a uniform
position inside the unit square. A window is kept when no constraint is given, or when at least
one object box satisfies every bound the sample_constraint gives: Jaccard overlap with it, the
share of the window it covers (sample coverage), the share of it the window covers (object
coverage). Boxes are rows (xmin, ymin, xmax, ymax) in normalized coordinates.
"""
import numpy as np

from nvcaffe_py.errors import CaffeError

from .bbox import coverages, pairwise_overlaps

_BOUNDS = (("min_jaccard_overlap", "max_jaccard_overlap"), ("min_sample_coverage", "max_sample_coverage"),
           ("min_object_coverage", "max_object_coverage"))


def check(batch_sampler, where):
    """Raise CaffeError for a sampler whose ranges the fork's CHECKs refuse."""
    s = batch_sampler.sampler
    if not 0 < s.min_scale <= s.max_scale <= 1:
        raise CaffeError(f"{where}: the sampler needs 0 < min_scale <= max_scale <= 1 "
                         f"(got {s.min_scale:g}, {s.max_scale:g})")
    if not 0 < s.min_aspect_ratio <= s.max_aspect_ratio:
        raise CaffeError(f"{where}: the sampler needs 0 < min_aspect_ratio <= max_aspect_ratio "
                         f"(got {s.min_aspect_ratio:g}, {s.max_aspect_ratio:g})")


def sample_windows(sampler, count, random):
    """SampleBBox `count` times: windows (count, 4) in the unit square."""
    scale = random.uniform(sampler.min_scale, sampler.max_scale, count)
    ratio = random.uniform(sampler.min_aspect_ratio, sampler.max_aspect_ratio, count)
    ratio = np.minimum(np.maximum(ratio, scale ** 2), 1 / scale ** 2)
    width, height = scale * np.sqrt(ratio), scale / np.sqrt(ratio)
    x = random.uniform(0, np.maximum(0.0, 1 - width))  # ratio clamped: width <= 1 up to rounding
    y = random.uniform(0, np.maximum(0.0, 1 - height))
    return np.stack([x, y, x + width, y + height], axis=1)


def satisfies(windows, objects, constraint):
    """Per window of `windows` (W, 4): whether it meets `constraint` against at least one of
    `objects` (K, 4)."""
    given = [(low, high) for low, high in _BOUNDS if constraint.HasField(low) or constraint.HasField(high)]
    if not given:
        return np.ones(len(windows), bool)
    if len(objects) == 0:
        return np.zeros(len(windows), bool)
    measure = {"min_jaccard_overlap": lambda: pairwise_overlaps(windows, objects),
               "min_sample_coverage": lambda: coverages(windows, objects),
               "min_object_coverage": lambda: coverages(objects, windows).T}
    ok = np.ones((len(windows), len(objects)), bool)
    for low, high in given:
        value = measure[low]()
        if constraint.HasField(low):
            ok &= value >= getattr(constraint, low)
        if constraint.HasField(high):
            ok &= value <= getattr(constraint, high)
    return ok.any(axis=1)


def generate_samples(batch_samplers, objects, random):
    """GenerateBatchSamples: the windows found by the samplers that use the original image, each
    sampler's in trial order, at most max_sample of them. (All max_trials windows are drawn at
    once; the fork stops drawing at max_sample.)"""
    windows = []
    for batch_sampler in batch_samplers:
        if not batch_sampler.use_original_image or batch_sampler.max_trials == 0:
            continue
        drawn = sample_windows(batch_sampler.sampler, batch_sampler.max_trials, random)
        found = drawn[satisfies(drawn, objects, batch_sampler.sample_constraint)]
        if batch_sampler.HasField("max_sample"):
            found = found[:batch_sampler.max_sample]
        windows.extend(found)
    return windows
