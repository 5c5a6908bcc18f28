"""The GPU half of the neuron layers (neuron.cu): forward `<name>_forward(n, x, y, scalars...)`,
backward `<name>_backward(n, dy, x, y, dx, scalars...)`, as NeuronLayer's CPU code: an in-place
layer whose backward needs its input keeps a device copy of it, taken before forward overwrites it.
"""
from nvcaffe_py.backends.cuda import kernels, memory
from nvcaffe_py.backends.cuda import math_functions as mf

_kernels = kernels.Source(__file__, "neuron.cu")


def kernel(name, dtype):
    return _kernels.get(name, dtype)


def forward_input(layer, bottom, top):
    """The device input of the last forward (the copy when an in-place forward overwrote it)."""
    if layer._keeps_input_copy(bottom, top):
        return layer._gpu_input_copy
    return bottom[0].gpu_data_readonly()


def keep_input_copy(layer, bottom, top):
    if layer._keeps_input_copy(bottom, top):
        x = bottom[0].gpu_data_readonly()
        copy = getattr(layer, "_gpu_input_copy", None)
        if copy is None or copy.size != x.size:
            copy = layer._gpu_input_copy = memory.empty(x.size, x.dtype)
        memory.copy(copy, x)


def forward(layer, bottom, top, name, *scalars):
    keep_input_copy(layer, bottom, top)
    x = bottom[0].gpu_data_readonly()
    n = bottom[0].count()
    kernel(f"{name}_forward", x.dtype).launch(n, n, x, top[0].gpu_data, *scalars)


def backward(layer, top, propagate_down, bottom, name, *scalars):
    if not propagate_down[0]:
        return
    n = bottom[0].count()
    dy, y = top[0].gpu_diff_readonly(), top[0].gpu_data_readonly()
    x = forward_input(layer, bottom, top)
    kernel(f"{name}_backward", dy.dtype).launch(n, n, dy, x, y, bottom[0].gpu_diff, *scalars)


def prelu_forward(layer, bottom, top):
    keep_input_copy(layer, bottom, top)
    x = bottom[0].gpu_data_readonly()
    n, channels, dim = bottom[0].count(), bottom[0].channels, bottom[0].count(2)
    div = channels if layer.channel_shared else 1
    kernel("prelu_forward", x.dtype).launch(n, n, channels, dim, x, layer.blobs[0].gpu_data_readonly(), div,
                                             top[0].gpu_data)


def prelu_backward(layer, top, propagate_down, bottom):
    n, channels, dim = bottom[0].count(), bottom[0].channels, bottom[0].count(2)
    x, dy = forward_input(layer, bottom, top), top[0].gpu_diff_readonly()
    # The slope gradient first: an in-place bottom diff overwrites the top diff.
    if layer.param_propagate_down[0]:
        terms = memory.empty(n, dy.dtype)
        kernel("prelu_slope_terms", dy.dtype).launch(n, n, dy, x, terms)
        if layer.channel_shared:
            mf.channel_reduce(terms, 1, 1, n, layer.blobs[0].gpu_diff, beta=1.0)
        else:
            mf.channel_reduce(terms, bottom[0].num, channels, dim, layer.blobs[0].gpu_diff, beta=1.0)
    if propagate_down[0]:
        div = channels if layer.channel_shared else 1
        kernel("prelu_backward", dy.dtype).launch(n, n, channels, dim, dy, x, layer.blobs[0].gpu_data_readonly(),
                                                   div, bottom[0].gpu_diff)

