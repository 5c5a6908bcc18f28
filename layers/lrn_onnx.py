"""ONNX translation of LRN. Across channels it is ONNX's LRN, whose alpha / size convention and
centred window are Caffe's; within a channel it is Caffe's own construction: x * (1 + alpha *
AVE-pool(x^2))^-beta, the pooling's divisor always size^2 (every window lies in the padded image)."""
from nvcaffe_py.onnx_translation import onnx_translation


@onnx_translation("LRN")
def lrn(layer, g):
    x = g.bottoms[0]
    if layer.across:
        return [g.op("LRN", x, size=layer.size, alpha=float(layer.alpha), beta=float(layer.beta), bias=float(layer.k))]
    mean = g.op("AveragePool", g.op("Mul", x, x), kernel_shape=[layer.size] * 2, pads=[layer.pre_pad] * 4,
                count_include_pad=1)
    scale = g.op("Add", g.op("Mul", mean, g.constant(layer.alpha, "alpha")), g.constant(1, "one"))
    return [g.op("Mul", x, g.op("Pow", scale, g.constant(-layer.beta, "minus_beta")))]
