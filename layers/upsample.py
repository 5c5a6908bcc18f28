"""SegNet's Upsample (alexgkendall/caffe-segnet): the inverse of max pooling by its mask.

Bottoms are values and the mask of the max Pooling that shrank them (its second top,
h * W + w within each plane); each value goes to the place its mask names in a plane of
upsample_h x upsample_w, or of in * scale (minus 1 where pad_out_h/pad_out_w, scale 2 only), the
rest is 0. A mask naming a place beyond the plane is an error (the pooling and the upsampling do
not match). The gradient reads back from the same places. GPU half: upsample_gpu.py.
"""
import numpy as np

from nvcaffe_py.conformance import Case, fixed
from nvcaffe_py.layer import Layer
from nvcaffe_py.registry import register_layer

from .upsample_gpu import UpsampleGPU


def _pooling_mask(shape, out_h, out_w, seed=7):
    """Masks as 2x2 max pooling with stride 2 gives them: one place in each 2x2 cell, as h * W + w."""
    rng = np.random.default_rng(seed)
    n, c, h, w = shape
    dy, dx = rng.integers(0, 2, shape), rng.integers(0, 2, shape)
    rows = np.minimum(2 * np.arange(h)[:, None] + dy, out_h - 1)
    cols = np.minimum(2 * np.arange(w)[None, :] + dx, out_w - 1)
    return fixed(rows * out_w + cols)


@register_layer("Upsample")
class UpsampleLayer(Layer):
    exact_num_bottom = 2
    exact_num_top = 1
    cases = [Case("upsample_param { scale: 2 }", [(2, 3, 3, 4), _pooling_mask((2, 3, 3, 4), 6, 8)]),
             Case("upsample_param { upsample_h: 5 upsample_w: 7 }", [(2, 2, 3, 4), _pooling_mask((2, 2, 3, 4), 5, 7)]),
             Case("upsample_param { scale_h: 2 scale_w: 2 pad_out_h: true }",
                  [(1, 2, 3, 3), _pooling_mask((1, 2, 3, 3), 5, 6)])]

    def allow_force_backward(self, bottom_index):
        return bottom_index == 0

    def setup(self, bottom, top):
        p = self.layer_param.upsample_param
        has = p.HasField
        if has("upsample_h") and has("upsample_w"):
            if p.upsample_h <= 1 or p.upsample_w <= 1:
                raise self.error("upsample_h and upsample_w must be greater than 1")
            self.size, self.scale = (p.upsample_h, p.upsample_w), None
            return
        if has("scale_h") != has("scale_w") or (has("scale_h") and has("scale")):
            raise self.error("give upsample_h and upsample_w, or scale, or scale_h and scale_w")
        self.size = None
        self.scale = (p.scale_h, p.scale_w) if has("scale_h") else (p.scale, p.scale)
        if min(self.scale) <= 1:
            raise self.error(f"the scale must be greater than 1, got {self.scale}")
        self.pad_out = (int(p.pad_out_h), int(p.pad_out_w))
        if any(pad and s != 2 for pad, s in zip(self.pad_out, self.scale)):
            raise self.error("pad_out_h / pad_out_w need a scale of 2")

    def reshape(self, bottom, top):
        if bottom[0].num_axes != 4 or bottom[1].shape != bottom[0].shape:
            raise self.error(f"values {bottom[0].shape} and mask {bottom[1].shape} must be (N, C, H, W) of one shape")
        n, c, h, w = bottom[0].shape
        size = self.size or (h * self.scale[0] - self.pad_out[0], w * self.scale[1] - self.pad_out[1])
        top[0].reshape(n, c, *size)

    def _places(self, bottom, top):
        mask = bottom[1].data_readonly().reshape(bottom[0].count(0, 2), -1).astype(np.int64)
        plane = top[0].count(2)
        if mask.size and (mask.max() >= plane or mask.min() < 0):
            raise self.error(f"the mask names place {int(mask.max())} of a {top[0].shape[2]}x{top[0].shape[3]} plane: "
                             "the pooling that made it does not match this upsampling")
        return mask + plane * np.arange(mask.shape[0])[:, None]

    def forward_cpu(self, bottom, top):
        y = top[0].data.reshape(-1)
        y[...] = 0
        y[self._places(bottom, top).reshape(-1)] = bottom[0].data_readonly().reshape(-1)

    def backward_cpu(self, top, propagate_down, bottom):
        if propagate_down[0]:
            bottom[0].diff.reshape(-1)[...] = top[0].diff_readonly().reshape(-1)[self._places(bottom, top).reshape(-1)]

    def make_gpu(self):
        return UpsampleGPU()
