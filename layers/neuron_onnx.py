"""ONNX translations of the element-wise layers of neuron.py."""

from nvcaffe_py.onnx_translation import onnx_translation


def scaled(g, x, factor):
    """x * factor, with no node for a factor of 1."""
    return x if factor == 1 else g.op("Mul", x, g.constant(factor, "scale"))


def shifted(g, x, shift):
    return x if shift == 0 else g.op("Add", x, g.constant(shift, "shift"))


@onnx_translation("ReLU")
def relu(layer, g):
    if layer.negative_slope == 0:
        return [g.op("Relu", g.bottoms[0])]
    return [g.op("LeakyRelu", g.bottoms[0], alpha=float(layer.negative_slope))]


@onnx_translation("PReLU")
def prelu(layer, g):
    slope = layer.blobs[0].data_readonly()
    if not layer.channel_shared:  # one slope per channel (axis 1), broadcast over the axes after it
        slope = slope.reshape((-1,) + (1,) * (len(g.bottom_shapes[0]) - 2))
    return [g.op("PRelu", g.bottoms[0], g.constant(slope.reshape(slope.shape or (1,)), "slope"))]


@onnx_translation("ELU")
def elu(layer, g):
    return [g.op("Elu", g.bottoms[0], alpha=float(layer.alpha))]


@onnx_translation("Sigmoid", "TanH", "AbsVal", "BNLL")
def elementwise(layer, g):
    op_type = {"Sigmoid": "Sigmoid", "TanH": "Tanh", "AbsVal": "Abs", "BNLL": "Softplus"}[layer.type]
    return [g.op(op_type, g.bottoms[0])]


@onnx_translation("Power")
def power(layer, g):
    """(shift + scale * x) ^ power."""
    base = shifted(g, scaled(g, g.bottoms[0], layer.scale), layer.shift)
    if layer.power == 1:
        return [base]
    return [g.op("Pow", base, g.constant(layer.power, "power"))]


@onnx_translation("Exp")
def exp(layer, g):
    """base ^ (shift + scale * x) = outer * exp(inner * x)."""
    return [scaled(g, g.op("Exp", scaled(g, g.bottoms[0], layer.inner_scale)), layer.outer_scale)]


@onnx_translation("Log")
def log(layer, g):
    """log_base(shift + scale * x) = ln(shift + scale * x) / ln(base)."""
    inner = shifted(g, scaled(g, g.bottoms[0], layer.scale), layer.shift)
    return [scaled(g, g.op("Log", inner), layer.base_scale)]


@onnx_translation("Threshold")
def threshold(layer, g):
    above = g.op("Greater", g.bottoms[0], g.constant(layer.layer_param.threshold_param.threshold, "threshold"))
    return [g.cast_float(above)]


@onnx_translation("Clip")
def clip(layer, g):
    return [g.op("Clip", g.bottoms[0], g.constant(layer.min, "min"), g.constant(layer.max, "max"))]


@onnx_translation("Swish")
def swish(layer, g):
    x = g.bottoms[0]
    return [g.op("Mul", x, g.op("Sigmoid", scaled(g, x, layer.beta)))]


@onnx_translation("ReLU6")
def relu6(layer, g):
    """Clip to [0, 6], plus NVCaffe's negative_slope * min(x, 0) where the slope is not 0."""
    x = g.bottoms[0]
    y = g.op("Clip", x, g.constant(0, "zero"), g.constant(6, "six"))
    if layer.negative_slope == 0:
        return [y]
    negative = g.op("Min", x, g.constant(0, "zero"))
    return [g.op("Add", y, scaled(g, negative, layer.negative_slope))]
