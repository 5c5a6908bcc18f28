"""ONNX translations of Scale and Bias: Mul and Add, the operand (a parameter blob, or bottom[1])
shaped with trailing 1s so that ONNX's broadcasting, which aligns shapes at the last axis, lines
it up with Caffe's `axis`."""
from nvcaffe_py.onnx_translation import onnx_translation


def _operand(g, layer, value_or_array, operand_shape, what):
    """The operand as a value of shape operand_shape + (1,) * (the axes of x after it)."""
    ndim = len(g.bottom_shapes[0])
    axis = layer.operand_param().axis % ndim if operand_shape else 0  # a scalar applies everywhere
    shape = tuple(operand_shape) + (1,) * (ndim - axis - len(operand_shape))
    if isinstance(value_or_array, str):
        return value_or_array if shape == tuple(operand_shape) else g.reshape(value_or_array, shape, what)
    return g.constant(value_or_array.reshape(shape), what)


def _first_operand(g, layer):
    if len(g.bottoms) > 1:
        return _operand(g, layer, g.bottoms[1], g.bottom_shapes[1], "operand_shape")
    blob = layer.blobs[0]
    return _operand(g, layer, blob.data_readonly(), blob.shape, layer.type.lower())


@onnx_translation("Bias")
def bias(layer, g):
    return [g.op("Add", g.bottoms[0], _first_operand(g, layer))]


@onnx_translation("Scale")
def scale(layer, g):
    y = g.op("Mul", g.bottoms[0], _first_operand(g, layer))
    if layer.bias_index is not None:
        blob = layer.blobs[layer.bias_index]
        y = g.op("Add", y, _operand(g, layer, blob.data_readonly(), blob.shape, "bias"))
    return [y]
