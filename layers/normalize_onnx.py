"""ONNX translation of SSD's Normalize: x / sqrt(sum of x^2 + eps) * scale, the sum over each
image's channels and pixels (across_spatial) or each pixel's channels: ReduceSumSquare, Add, Sqrt
(ReduceL2 would leave eps out of the root), Div, Mul."""
from nvcaffe_py.onnx_translation import onnx_translation


@onnx_translation("Normalize")
def normalize(layer, g):
    x, shape = g.bottoms[0], g.bottom_shapes[0]
    axes = list(range(1, len(shape))) if layer.across_spatial else [1]
    squares = g.reduce("ReduceSumSquare", x, axes, keepdims=True)
    norm = g.op("Sqrt", g.op("Add", squares, g.constant(layer.eps, "eps")))
    scale = layer.blobs[0].data_readonly()
    if not layer.channel_shared:  # one per channel, broadcast over the axes after it
        scale = scale.reshape((-1,) + (1,) * (len(shape) - 2))
    return [g.op("Mul", g.op("Div", x, norm), g.constant(scale, "scale"))]
