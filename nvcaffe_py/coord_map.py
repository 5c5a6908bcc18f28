"""pycaffe's caffe.coord_map: how coordinates in one NetSpec top relate to those in another, through
the spatial layers between them, and `crop(a, b)`, the Crop layer that aligns `a` with `b`.

A map is (axis, scale a, shift b): output coordinate i*a + b comes from input coordinate i, per
spatial axis from `axis` on (None: any axis, as for a pointwise layer). Maps compose along a path
and invert for the way back; `coord_map_from_to(a, b)` walks both tops back to a common ancestor.

    n.score = crop(n.upscore, n.data)   # an FCN's crop of the upsampled scores to the input
"""
import numpy as np

from . import layers as L

# Layers that keep every coordinate where it is.
PASS_THROUGH_LAYERS = ("AbsVal", "BatchNorm", "Bias", "BNLL", "Dropout", "Eltwise", "ELU", "Log", "LRN", "Exp",
                       "MVN", "Power", "ReLU", "PReLU", "Scale", "Sigmoid", "Split", "TanH", "Threshold")
IDENTITY = (None, 1, 0)


class UndefinedMapException(Exception):
    """The layer has no coordinate map (an InnerProduct, say): the walk stops there."""


class AxisMismatchException(Exception):
    """Two maps along a path work on different axes."""


def _array(value):
    return np.array(value, ndmin=1)


def conv_params(fn):
    """(axis, stride, effective kernel extent, pad) of a Convolution, Deconvolution, Im2col or
    Pooling function, from its parameter message or its keyword arguments."""
    params = fn.params.get("convolution_param", fn.params)
    legacy = {"pad_h", "pad_w", "kernel_h", "kernel_w", "stride_h", "stride_w"} & set(fn.params)
    assert not legacy, "cropping does not support legacy _h/_w params"
    kernel = _array(params["kernel_size"])
    dilation = _array(params.get("dilation", 1))
    return (params.get("axis", 1), _array(params.get("stride", 1)), (kernel - 1) * dilation + 1,
            _array(params.get("pad", 0)))


def crop_params(fn):
    """(axis, offset) of a Crop function, with Crop's defaults (axis 2: the spatial axes of NCHW)."""
    params = fn.params.get("crop_param", fn.params)
    return params.get("axis", 2), _array(params.get("offset", 0))


def coord_map(fn):
    """The map from the bottom coordinates of layer function `fn` to its top coordinates."""
    if fn.type_name in ("Convolution", "Pooling", "Im2col"):
        axis, stride, extent, pad = conv_params(fn)
        return axis, 1 / stride, (pad - (extent - 1) / 2) / stride
    if fn.type_name == "Deconvolution":
        axis, stride, extent, pad = conv_params(fn)
        return axis, stride, (extent - 1) / 2 - pad
    if fn.type_name in PASS_THROUGH_LAYERS:
        return IDENTITY
    if fn.type_name == "Crop":
        axis, offset = crop_params(fn)
        return axis - 1, 1, -offset  # the map's axis is the last one before the coordinates
    raise UndefinedMapException(fn.type_name)


def compose(base_map, next_map):
    """`next_map` applied after `base_map`: the scales multiply, the later shift is scaled by the
    earlier scale."""
    axis1, a1, b1 = base_map
    axis2, a2, b2 = next_map
    if axis1 is None:
        axis = axis2
    elif axis2 is None or axis1 == axis2:
        axis = axis1
    else:
        raise AxisMismatchException(f"axis {axis1} and axis {axis2}")
    return axis, a1 * a2, a1 * b2 + b1


def inverse(coord_map):
    axis, a, b = coord_map
    return axis, 1 / a, -b / a


def _mapped_bottoms(top):
    """The bottoms a walk continues through: all of a layer's, but only the first of a Crop (its
    second bottom gives the size, not the coordinates)."""
    bottoms = top.fn.inputs
    return bottoms[:1] if top.fn.type_name == "Crop" else bottoms


def _maps_back(start):
    """{top: its map to `start`} for `start` and every top behind it through mappable layers, in
    the order the walk meets them."""
    maps = {start: IDENTITY}
    frontier = [start]
    while frontier:
        top = frontier.pop()
        try:
            step = coord_map(top.fn)
        except UndefinedMapException:
            continue
        for bottom in _mapped_bottoms(top):
            if bottom not in maps:
                maps[bottom] = compose(maps[top], step)
                frontier.append(bottom)
    return maps


def coord_map_from_to(top_from, top_to):
    """(axis, a, b) such that coordinate i of `top_to` corresponds to coordinate i*a + b of
    `top_from`; RuntimeError when no chain of spatial layers joins them."""
    from_maps = _maps_back(top_from)
    for top, to_map in _maps_back(top_to).items():
        if top in from_maps:
            return compose(to_map, inverse(from_maps[top]))
    raise RuntimeError("Could not compute map between tops; are they connected by spatial layers?")


def crop(top_from, top_to):
    """A Crop layer function that crops `top_from` to the coordinates of `top_to`; asserts that the
    scales agree and the offsets are whole and not negative."""
    axis, a, b = coord_map_from_to(top_from, top_to)
    assert (a == 1).all(), f"scale mismatch on crop (a = {a})"
    assert (b <= 0).all(), f"cannot crop negative offset (b = {b})"
    assert (np.round(b) == b).all(), f"cannot crop noninteger offset (b = {b})"
    return L.Crop(top_from, top_to, crop_param=dict(axis=axis + 1, offset=[int(v) for v in -np.round(b)]))
