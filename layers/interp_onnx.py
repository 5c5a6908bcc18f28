"""ONNX translation of DeepLab's Interp: a Slice where pad_beg / pad_end crop, then a linear Resize
to the layer's output size with coordinate_transformation_mode align_corners (output pixel k reads
input position k * (in - 1) / (out - 1), as the fork's caffe_cpu_interp2; an output of one pixel
reads position 0, which onnxruntime's align_corners also does)."""
from nvcaffe_py.onnx_translation import onnx_translation


@onnx_translation("Interp")
def interp(layer, g):
    x, shape = g.bottoms[0], g.bottom_shapes[0]
    if layer.pad_beg or layer.pad_end:
        starts, ends = [-layer.pad_beg] * 2, [shape[2] + layer.pad_end, shape[3] + layer.pad_end]
        x = g.op("Slice", x, g.ints(starts, "starts"), g.ints(ends, "ends"), g.ints([2, 3], "axes"))
    return [g.op("Resize", x, "", "", g.ints(g.top_shapes[0], "sizes"), mode="linear",
                 coordinate_transformation_mode="align_corners")]
