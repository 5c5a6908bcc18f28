"""ONNX translation of Fast R-CNN's ROIPooling: MaxRoiPool, whose definition is the fork's (region
corners rounded after spatial_scale, at least one pixel, bins floor/ceil, empty bins 0); the
regions as (R, 5) rows (batch index, x1, y1, x2, y2). PSROIPooling has no ONNX counterpart and is
refused as a type without a translation."""
from nvcaffe_py.onnx_translation import onnx_translation


@onnx_translation("ROIPooling")
def roi_pooling(layer, g):
    rois = g.bottoms[1]
    if g.bottom_shapes[1] != (g.bottom_shapes[1][0], 5):
        rois = g.reshape(rois, (g.bottom_shapes[1][0], 5), "rois")
    return [g.op("MaxRoiPool", g.bottoms[0], rois, pooled_shape=list(layer.pooled),
                 spatial_scale=float(layer.scale))]
