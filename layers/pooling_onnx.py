"""ONNX translation of Pooling (and of SPP's levels), reproducing Caffe's window rules exactly.

Caffe's output length (rounded up, less a last window that would start in the padding) is not
what ONNX's ceil_mode gives in every runtime, so the translation pads explicitly: Caffe's pad
in front, and behind whatever the last window needs, then pools with floor rounding. MAX ignores
the padding (ONNX's MaxPool pads with -inf); AVE pools a zero-padded copy, which divides every
window by the full kernel, and a constant per output position corrects that to Caffe's divisor,
the window clipped to the padded image. STOCHASTIC at test time is sum(x^2) / sum(x) per window.
"""
import numpy as np

from nvcaffe_py.backends.cpu.pooling import AVE, MAX, STOCHASTIC
from nvcaffe_py.onnx_translation import onnx_translation


def _end_pads(pool):
    """Padding behind each spatial axis so that floor rounding yields Caffe's output length."""
    return [max(0, (out - 1) * s + k - size - p)
            for out, s, k, size, p in zip(pool.pooled, pool.stride, pool.kernel, (pool.height, pool.width), pool.pad)]


def _zero_padded(g, x, begin, end):
    if not any(begin) and not any(end):
        return x
    return g.op("Pad", x, g.ints([0, 0, *begin, 0, 0, *end], "pads"))


def pool_2d(g, x, pool, with_mask=False):
    """Pool x, an (N, C, H, W) value, as the CPU engine's Pool2D `pool` does; with_mask also
    gives Caffe's MAX mask (each maximum's index h * W + w in its plane, as floats)."""
    if pool.method == STOCHASTIC and pool.train:
        raise g.refuse("STOCHASTIC pooling samples at random in the TRAIN phase; export the TEST phase")
    window = dict(kernel_shape=list(pool.kernel), strides=list(pool.stride))
    end = _end_pads(pool)
    if pool.kernel == (pool.height, pool.width) and not any(pool.pad) and pool.method != STOCHASTIC and not with_mask:
        return g.op("GlobalMaxPool" if pool.method == MAX else "GlobalAveragePool", x)
    if pool.method == MAX:
        if any(e >= k for e, k in zip(end, pool.kernel)):
            raise g.refuse(f"a window lies wholly outside the {pool.height}x{pool.width} input "
                           f"(stride {pool.stride} larger than the kernel {pool.kernel})")
        pads = list(pool.pad) + end
        if not with_mask:
            return g.op("MaxPool", x, pads=pads, **window)
        pooled, index = g.op("MaxPool", x, outputs=2, pads=pads, **window)
        return pooled, g.cast_float(g.op("Mod", index, g.ints([pool.height * pool.width], "plane")))
    padded = _zero_padded(g, x, pool.pad, [p + e for p, e in zip(pool.pad, end)])
    mean = g.op("AveragePool", padded, **window)
    if pool.method == AVE:
        correction = pool.kernel[0] * pool.kernel[1] / pool.divisor
        return mean if np.all(correction == 1) else g.op("Mul", mean, g.constant(correction, "divisor"))
    # STOCHASTIC, TEST phase: the activations weighted by themselves, 0 where their sum is not positive.
    mean_of_squares = g.op("AveragePool", g.op("Mul", padded, padded), **window)
    zero = g.constant(0, "zero")
    return g.op("Where", g.op("Greater", mean, zero), g.op("Div", mean_of_squares, mean), zero)


@onnx_translation("Pooling")
def pooling(layer, g):
    result = pool_2d(g, g.bottoms[0], layer.pool, with_mask=len(g.top_shapes) > 1)
    return list(result) if isinstance(result, tuple) else [result]
