"""ONNX translation of Tile: ONNX's Tile repeats the whole block of axes from `axis` on, as Caffe's."""
from nvcaffe_py.onnx_translation import onnx_translation


@onnx_translation("Tile")
def tile(layer, g):
    repeats = [top // bottom for top, bottom in zip(g.top_shapes[0], g.bottom_shapes[0])]
    return [g.op("Tile", g.bottoms[0], g.ints(repeats, "repeats"))]
