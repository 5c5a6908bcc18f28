"""Axis permutations: SSD's Permute and ShuffleNet's ShuffleChannel.

Permute (weiliu89/caffe, ssd) reorders a blob's axes: `permute_param { order: 0 order: 2 ... }`
names the new order, axes not named follow in their own order, a repeated or out-of-range axis is
an error; SSD uses it to put the channel axis last before flattening its box predictions.
ShuffleChannel (farmingyard/ShuffleNet) splits the channels into `group` rows and reads them by
column: output channel j * group + i is input channel i * (C / group) + j, a permutation of a
(N, group, C / group, H * W) view. Both are gathers; the GPU half is permute_gpu.py.
"""
import numpy as np

from nvcaffe_py.conformance import Case
from nvcaffe_py.layer import Layer
from nvcaffe_py.registry import register_layer

from .permute_gpu import MAX_AXES, PermuteGPU


class AxisPermutation(Layer):
    """top = bottom seen as `view(shape)` with its axes in `order`; a subclass sets both in setup."""
    exact_num_bottom = 1
    exact_num_top = 1
    order = ()

    def view(self, shape):
        return shape

    def forward_cpu(self, bottom, top):
        x = bottom[0].data_readonly().reshape(self.view(bottom[0].shape))
        top[0].data.reshape(x.transpose(self.order).shape)[...] = x.transpose(self.order)

    def backward_cpu(self, top, propagate_down, bottom):
        if propagate_down[0]:
            shape = self.view(bottom[0].shape)
            dy = top[0].diff_readonly().reshape(tuple(shape[k] for k in self.order))
            bottom[0].diff.reshape(shape)[...] = dy.transpose(np.argsort(self.order))

    def make_gpu(self):
        if len(self.order) > MAX_AXES:
            return None  # the kernel takes up to 6 axes
        return PermuteGPU(view=self.view, order=self.order)


@register_layer("Permute")
class PermuteLayer(AxisPermutation):
    cases = [Case("permute_param { order: 0 order: 2 order: 3 order: 1 }", [(2, 3, 4, 5)]),
             Case("permute_param { order: 1 order: 0 }", [(2, 3, 4, 5)]),  # the rest keep their order
             Case("permute_param { order: 3 order: 1 order: 4 order: 0 order: 2 }", [(2, 3, 1, 4, 2)]),
             Case("", [(3, 4)])]  # no order: a copy

    def setup(self, bottom, top):
        axes = bottom[0].num_axes
        order = list(self.layer_param.permute_param.order)
        for axis in order:
            if axis >= axes:
                raise self.error(f"order names axis {axis}, but the input has {axes} axes")
        if len(set(order)) != len(order):
            raise self.error(f"order {order} names an axis twice")
        self.order = tuple(order + [a for a in range(axes) if a not in order])

    def reshape(self, bottom, top):
        if bottom[0].num_axes != len(self.order):
            raise self.error(f"input has {bottom[0].num_axes} axes; the layer was set up for {len(self.order)}")
        top[0].reshape(tuple(bottom[0].shape[k] for k in self.order))


@register_layer("ShuffleChannel")
class ShuffleChannelLayer(AxisPermutation):
    cases = [Case("shuffle_channel_param { group: 3 }", [(2, 6, 3, 2)]),
             Case("shuffle_channel_param { group: 2 }", [(2, 8, 5)]),
             Case("", [(2, 3, 2, 2)])]  # group 1: a copy
    order = (0, 2, 1, 3)

    def setup(self, bottom, top):
        self.group = self.layer_param.shuffle_channel_param.group
        if self.group <= 0:
            raise self.error("group must be positive")

    def view(self, shape):
        return (shape[0], self.group, shape[1] // self.group, int(np.prod(shape[2:], dtype=np.int64)))

    def reshape(self, bottom, top):
        if bottom[0].num_axes < 2 or bottom[0].shape[1] % self.group:
            raise self.error(f"{bottom[0].shape[1] if bottom[0].num_axes > 1 else 'no'} channels cannot be "
                             f"split into {self.group} groups")
        top[0].reshape_like(bottom[0])
