"""ONNX translation of Crop: a Slice of the window the layer worked out (bottom[1] gives only its
shape, which the static shapes already hold)."""
from nvcaffe_py.onnx_translation import onnx_translation


@onnx_translation("Crop")
def crop(layer, g):
    cut = [(axis, part.start, part.stop) for axis, part in enumerate(layer.window) if part != slice(None)]
    if not cut:
        return [g.bottoms[0]]
    axes, starts, ends = zip(*cut)
    return [g.op("Slice", g.bottoms[0], g.ints(starts, "starts"), g.ints(ends, "ends"), g.ints(axes, "axes"))]
