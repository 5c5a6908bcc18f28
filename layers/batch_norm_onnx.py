"""ONNX translation of BatchNorm. With stored statistics (use_global_stats, the TEST phase's
default) it is ONNX's BatchNormalization with unit scale and zero shift (Caffe's affine part is a
Scale layer), the mean and variance being Caffe's stored sums divided by its stored scale factor
(0: zeros). Without, each batch is normalized by its own mean and (biased) variance per channel."""
import numpy as np

from nvcaffe_py.onnx_translation import onnx_translation


def _stored_statistics(layer, g, x):
    factor = layer.blobs[2].data_readonly()[0]
    factor = 0 if factor == 0 else 1 / factor
    mean, variance = (layer.blobs[k].data_readonly() * factor for k in (0, 1))
    channels = layer.channels
    return g.op("BatchNormalization", x, g.constant(np.ones(channels), "scale"), g.constant(np.zeros(channels), "shift"),
                g.constant(mean, "mean"), g.constant(variance, "variance"), epsilon=float(layer.eps))


def _batch_statistics(layer, g, x, ndim):
    axes = [0] + list(range(2, ndim))
    centred = g.op("Sub", x, g.reduce("ReduceMean", x, axes, keepdims=True))
    variance = g.reduce("ReduceMean", g.op("Mul", centred, centred), axes, keepdims=True)
    return g.op("Div", centred, g.op("Sqrt", g.op("Add", variance, g.constant(layer.eps, "eps"))))


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
