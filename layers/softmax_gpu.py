"""The GPU half of Softmax and SoftmaxWithLoss (softmax.cu). The loss is summed on the device and
read back as one number; the probabilities stay on the device for backward."""
from nvcaffe_py.backends.cuda import kernels, memory
from nvcaffe_py.backends.cuda import math_functions as mf

_kernels = kernels.Source(__file__, "softmax.cu")
WARP = 32


def _k(name, dtype):
    return _kernels.get(name, dtype)


def softmax(x, y, outer, channels, inner):
    positions = outer * inner
    _k("softmax_forward", y.dtype).launch(positions * WARP, positions, channels, inner, x, y)


def softmax_forward(layer, bottom, top):
    b = bottom[0]
    softmax(b.gpu_data_readonly(), top[0].gpu_data, b.count(0, layer.axis), b.shape[layer.axis],
            b.count(layer.axis + 1))


def softmax_backward(layer, top, propagate_down, bottom):
    if not propagate_down[0]:
        return
    b = bottom[0]
    positions = b.count(0, layer.axis) * b.count(layer.axis + 1)
    _k("softmax_backward", b.dtype).launch(positions * WARP, positions, b.shape[layer.axis], b.count(layer.axis + 1),
                                           top[0].gpu_diff_readonly(), top[0].gpu_data_readonly(), b.gpu_diff)


def _ignore_args(layer):
    return (0, 0) if layer.ignore is None else (1, layer.ignore)


def loss_forward(layer, bottom, top):
    outer, classes, inner = layer.outer_num, layer.num_classes, layer.inner_num
    positions = outer * inner
    x, labels = bottom[0].gpu_data_readonly(), bottom[1].gpu_data_readonly()
    prob = getattr(layer, "_gpu_prob", None)
    if prob is None or prob.size != x.size:
        prob = layer._gpu_prob = memory.empty(x.size, x.dtype)
    softmax(x, prob, outer, classes, inner)
    losses = memory.empty(positions, x.dtype)
    valid = memory.empty(positions, x.dtype)
    _k("softmax_loss_forward", x.dtype).launch(positions * WARP, positions, classes, inner, x, labels,
                                               *_ignore_args(layer), losses, valid)
    valid_count = int(round(mf.total(valid)))
    layer._gpu_scale = 1.0 / layer.normalizer(layer.normalization, outer, inner, valid_count)
    top[0].data[...] = mf.total(losses) * layer._gpu_scale
    if len(top) > 1:
        memory.copy(top[1].gpu_data, prob)


def loss_backward(layer, top, propagate_down, bottom):
    layer.refuse_label_gradient(propagate_down)
    if not propagate_down[0]:
        return
    positions = layer.outer_num * layer.inner_num
    dx = bottom[0].gpu_diff
    memory.copy(dx, layer._gpu_prob)
    _k("softmax_loss_backward", dx.dtype).launch(positions, positions, layer.num_classes, layer.inner_num,
                                                 bottom[1].gpu_data_readonly(), *_ignore_args(layer), dx)
    mf.scale(float(top[0].diff.flat[0]) * layer._gpu_scale, dx)
