"""SPP: spatial pyramid pooling, as Caffe's SPPLayer.

Level l pools the image into about 2^l x 2^l bins (kernel = stride = ceil(size / 2^l), padded
so the bins cover the image); the levels are flattened and concatenated along axis 1. With a
single level the output keeps Caffe's (N, C, 1, 1) pooling shape.
"""
import math

import numpy as np

from nvcaffe_py.backends.cpu.pooling import STOCHASTIC, Pool2D
from nvcaffe_py.conformance import Case, uniform
from nvcaffe_py.layer import Layer
from nvcaffe_py.proto import caffe_pb2
from nvcaffe_py.registry import register_layer


def level_geometry(level, size):
    """(kernel, pad) of pyramid level `level` along an axis of `size`, as Caffe's GetPoolingParam."""
    bins = 2 ** level
    kernel = math.ceil(size / bins)
    pad = (kernel * bins - size + 1) // 2
    return kernel, pad


@register_layer("SPP")
class SPPLayer(Layer):
    exact_num_bottom = 1
    exact_num_top = 1
    cases = [
        Case("spp_param { pyramid_height: 1 pool: MAX }", [(2, 3, 5, 4)]),
        Case("spp_param { pyramid_height: 2 pool: MAX }", [(2, 3, 6, 7)]),
        Case("spp_param { pyramid_height: 3 pool: MAX }", [(2, 2, 6, 7)]),
        Case("spp_param { pyramid_height: 3 pool: AVE }", [(2, 2, 6, 7)]),
        Case("spp_param { pyramid_height: 2 pool: STOCHASTIC }", [uniform((2, 2, 8, 8), 0.1, 1.0)]),
        Case("spp_param { pyramid_height: 2 pool: STOCHASTIC }", [uniform((2, 2, 8, 8), 0.1, 1.0)],
             phase=caffe_pb2.TEST),
    ]

    def setup(self, bottom, top):
        p = self.layer_param.spp_param
        self.pyramid_height = p.pyramid_height
        if self.pyramid_height < 1:
            raise self.error("spp_param.pyramid_height must be at least 1")
        # SPPParameter's PoolMethod numbers are PoolingParameter's.
        self.method = p.pool
        self.levels = []
        self.input_hw = None

    def reshape(self, bottom, top):
        if bottom[0].num_axes != 4:
            raise self.error(f"input must have 4 axes (num, channels, height, width), got shape {bottom[0].shape}")
        num, channels, height, width = bottom[0].shape
        self._bottom_nc = (num, channels)
        if height <= 0 or width <= 0:
            raise self.error(f"input height and width must be positive, got {height}x{width}")
        if self.input_hw != (height, width):
            self.input_hw = (height, width)
            self.levels = [self._level(l, height, width) for l in range(self.pyramid_height)]
        if self.pyramid_height == 1:
            top[0].reshape(num, channels, *self.levels[0].pooled)
        else:
            top[0].reshape(num, sum(channels * lv.pooled[0] * lv.pooled[1] for lv in self.levels))

    def _level(self, level, height, width):
        (kh, ph), (kw, pw) = level_geometry(level, height), level_geometry(level, width)
        if ph >= kh or pw >= kw:
            raise self.error(f"pyramid level {level} is too fine for a {height}x{width} input (pad {ph}x{pw}, "
                             f"kernel {kh}x{kw}); use a smaller pyramid_height")
        if (ph or pw) and self.method == STOCHASTIC:
            raise self.error(f"pyramid level {level} needs padding, which STOCHASTIC pooling does not support")
        return Pool2D(height, width, (kh, kw), (kh, kw), (ph, pw), self.method,
                      train=self.phase == caffe_pb2.TRAIN)

    def _level_outputs(self, array):
        """Each level's (N, C, PH, PW) view into the concatenated top data or diff."""
        flat = array.reshape(array.shape[0], -1)
        num, channels = self._bottom_nc
        start = 0
        for lv in self.levels:
            size = channels * lv.pooled[0] * lv.pooled[1]
            yield lv, flat[:, start:start + size].reshape(num, channels, *lv.pooled)
            start += size

    def forward_cpu(self, bottom, top):
        x = bottom[0].data_readonly()
        for lv, out in self._level_outputs(top[0].data):
            # A column slice of the concatenation is not contiguous; pool into a scratch array.
            pooled = np.empty(out.shape, x.dtype)
            lv.forward(x, pooled)
            out[...] = pooled

    def backward_cpu(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        x, dx = bottom[0].data_readonly(), bottom[0].diff
        dx[...] = 0
        for lv, grad in self._level_outputs(top[0].diff_readonly()):
            lv.backward(x, np.ascontiguousarray(grad), dx)
