"""ONNX translation of SegNet's BN: INFERENCE is x * scale + shift; LEARN normalizes each channel by
the batch's mean and (biased) variance first (eps 1e-9, as the layer), and gives them as the
optional tops 1 and 2."""
from nvcaffe_py.onnx_translation import onnx_translation

from .bn import EPS


@onnx_translation("BN")
def segnet_bn(layer, g):
    x = g.bottoms[0]
    scale, shift = (g.constant(blob.data_readonly(), what) for blob, what in zip(layer.blobs, ("scale", "shift")))
    if not layer.learn:
        return [g.op("Add", g.op("Mul", x, scale), shift)]
    mean = g.reduce("ReduceMean", x, [0, 2, 3], keepdims=True)
    centred = g.op("Sub", x, mean)
    variance = g.reduce("ReduceMean", g.op("Mul", centred, centred), [0, 2, 3], keepdims=True)
    normalized = g.op("Div", centred, g.op("Sqrt", g.op("Add", variance, g.constant(EPS, "eps"))))
    return [g.op("Add", g.op("Mul", normalized, scale), shift), mean, variance][:len(g.top_shapes)]
