"""ONNX translation of BatchNorm. With stored statistics (use_global_stats, the TEST phase's
default) it is ONNX's BatchNormalization, the mean and variance being Caffe's stored sums divided
by its stored scale factor (0: zeros), with unit scale and zero shift (Caffe's affine part is a
Scale layer) or NVCaffe's learned scale_bias blobs. Without, each batch is normalized by its own
mean and (biased) variance per channel, then scaled and shifted by scale_bias where the layer has
it."""
import numpy as np

from nvcaffe_py.onnx_translation import onnx_translation


def _affine(layer):
    """(scale, shift) per channel: NVCaffe's scale_bias blobs, else the identity."""
    if layer.scale_bias:
        return layer.blobs[3].data_readonly(), layer.blobs[4].data_readonly()
    return np.ones(layer.channels), np.zeros(layer.channels)


def _stored_statistics(layer, g, x):
    factor = layer.blobs[2].data_readonly()[0]
    factor = 0 if factor == 0 else 1 / factor
    mean, variance = (layer.blobs[k].data_readonly() * factor for k in (0, 1))
    scale, shift = _affine(layer)
    return g.op("BatchNormalization", x, g.constant(scale, "scale"), g.constant(shift, "shift"),
                g.constant(mean, "mean"), g.constant(variance, "variance"), epsilon=float(layer.eps))


def _batch_statistics(layer, g, x, ndim):
    axes = [0] + list(range(2, ndim))
    centred = g.op("Sub", x, g.reduce("ReduceMean", x, axes, keepdims=True))
    variance = g.reduce("ReduceMean", g.op("Mul", centred, centred), axes, keepdims=True)
    y = g.op("Div", centred, g.op("Sqrt", g.op("Add", variance, g.constant(layer.eps, "eps"))))
    if not layer.scale_bias:
        return y
    by_channel = (-1,) + (1,) * (ndim - 2)  # broadcast against (N, C, ...)
    scale, shift = (values.reshape(by_channel) for values in _affine(layer))
    return g.op("Add", g.op("Mul", y, g.constant(scale, "scale")), g.constant(shift, "shift"))


@onnx_translation("BatchNorm")
def batch_norm(layer, g):
    x, shape = g.bottoms[0], g.bottom_shapes[0]
    if len(shape) == 1:  # Caffe's one channel; ONNX's BatchNormalization wants a channel axis
        x = g.reshape(x, shape + (1,), "with_channel_axis")
    if layer.use_global_stats:
        y = _stored_statistics(layer, g, x)
    else:
        y = _batch_statistics(layer, g, x, max(len(shape), 2))
    return [y if len(shape) > 1 else g.reshape(y, shape)]
