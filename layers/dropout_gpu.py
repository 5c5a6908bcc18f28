"""The GPU half of Dropout (dropout.cu): in TRAIN each value is kept when its Philox draw exceeds
ratio * 2^32 (so with probability 1 - ratio) and scaled by 1 / (1 - ratio); the draws stay on the
device as the mask for backward. TEST is the identity."""
import numpy as np

from nvcaffe_py.backends.cuda import kernels, memory, rng

_kernels = kernels.Source(__file__, "dropout.cu")


def _threshold(layer):
    return min(int(layer.ratio * 2.0 ** 32), 2 ** 32 - 1)


def forward(layer, bottom, top):
    x, y = bottom[0].gpu_data_readonly(), top[0].gpu_data
    n = bottom[0].count()
    if not layer.train:
        memory.copy(y, x, n)
        return
    if getattr(layer, "_gpu_mask", None) is None or layer._gpu_mask.size != n:
        layer._gpu_mask = memory.empty(n, np.uint32)
    seed, stream = rng.next_stream()
    _kernels.get("dropout_forward", x.dtype).launch((n + 3) // 4, n, x, seed, stream, _threshold(layer),
                                                    layer.scale, layer._gpu_mask, y)


def backward(layer, top, propagate_down, bottom):
    if not propagate_down[0]:
        return
    dy, dx = top[0].gpu_diff_readonly(), bottom[0].gpu_diff
    n = bottom[0].count()
    if not layer.train:
        memory.copy(dx, dy, n)
        return
    _kernels.get("dropout_backward", dx.dtype).launch(n, n, dy, layer._gpu_mask, _threshold(layer), layer.scale,
                                                      dx)
