"""The GPU half of Scale and Bias: math_functions' per-channel broadcast (channel_affine) and
per-channel sums (channel_reduce) over bottom[0] viewed as (outer, dim, inner), as scale_bias.py."""
from nvcaffe_py.backends.cuda import memory
from nvcaffe_py.backends.cuda import math_functions as mf

from .scale_bias import _param_wanted


def _reduce_into(blob, dy, dims, accumulate, b=None):
    """blob.diff (+)= per-channel sums of dy (* b): parameter diffs accumulate, bottoms do not."""
    outer, dim, inner = dims
    mf.channel_reduce(dy, outer, dim, inner, blob.gpu_diff, b=b, beta=1.0 if accumulate else 0.0)


def bias_forward(layer, bottom, top):
    _, dim, inner = layer.dims
    mf.channel_affine(bottom[0].gpu_data_readonly(), dim, inner, bias=layer._bias(bottom).gpu_data_readonly(),
                      out=top[0].gpu_data)


def bias_backward(layer, top, propagate_down, bottom):
    dy = top[0].gpu_diff_readonly()
    if len(bottom) > 1 and propagate_down[1] or len(bottom) == 1 and _param_wanted(layer, 0):
        _reduce_into(layer._bias(bottom), dy, layer.dims, accumulate=len(bottom) == 1)
    if propagate_down[0]:
        memory.copy(bottom[0].gpu_diff, dy)


def scale_forward(layer, bottom, top):
    _, dim, inner = layer.dims
    x = bottom[0].gpu_data_readonly()
    in_place = top[0].shares_data_with(bottom[0])
    # In place, backward still needs the input that forward overwrites.
    layer._gpu_saved_input = None
    if in_place:
        layer._gpu_saved_input = memory.empty(x.size, x.dtype)
        memory.copy(layer._gpu_saved_input, x)
    y = top[0].gpu_data
    mf.channel_affine(x, dim, inner, scale=layer._scale(bottom).gpu_data_readonly(), out=y)
    if layer.bias_index is not None:
        _, bias_dim, bias_inner = layer.bias_dims
        mf.channel_affine(y, bias_dim, bias_inner, bias=layer.blobs[layer.bias_index].gpu_data_readonly())


def scale_backward(layer, top, propagate_down, bottom):
    dy = top[0].gpu_diff_readonly()
    _, dim, inner = layer.dims
    if layer.bias_index is not None and _param_wanted(layer, layer.bias_index):
        _reduce_into(layer.blobs[layer.bias_index], dy, layer.bias_dims, accumulate=True)
    scale_is_param = len(bottom) == 1
    if scale_is_param and _param_wanted(layer, 0) or not scale_is_param and propagate_down[1]:
        x = layer._gpu_saved_input if layer._gpu_saved_input is not None else bottom[0].gpu_data_readonly()
        _reduce_into(layer._scale(bottom), dy, layer.dims, accumulate=scale_is_param, b=x)
    if propagate_down[0]:
        mf.channel_affine(dy, dim, inner, scale=layer._scale(bottom).gpu_data_readonly(), out=bottom[0].gpu_diff)
