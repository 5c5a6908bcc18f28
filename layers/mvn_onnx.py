"""ONNX translation of MVN: the mean (and the standard deviation, plus eps after the root, as
Caffe) over each (n, c) plane, or over each n across channels."""
from nvcaffe_py.onnx_translation import onnx_translation


@onnx_translation("MVN")
def mvn(layer, g):
    x = g.bottoms[0]
    axes = list(range(1 if layer.across_channels else 2, len(g.bottom_shapes[0])))
    centred = g.op("Sub", x, g.reduce("ReduceMean", x, axes, keepdims=True))
    if not layer.normalize_variance:
        return [centred]
    variance = g.reduce("ReduceMean", g.op("Mul", centred, centred), axes, keepdims=True)
    std = g.op("Add", g.op("Sqrt", variance), g.constant(layer.eps, "eps"))
    return [g.op("Div", centred, std)]
