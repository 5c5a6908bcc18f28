"""Slice: cuts its input along one axis (`axis`, or the legacy `slice_dim`) at `slice_point`s,
or into equal parts, one per top. A single top shares the input. The GPU half is concat_gpu.py."""
import numpy as np

from nvcaffe_py.backends.cuda.gpu_half import ViewOnly
from nvcaffe_py.conformance import Case
from nvcaffe_py.layer import Layer
from nvcaffe_py.registry import register_layer

from .concat import boundaries, join_axis
from .concat_gpu import SliceGPU
from .reshape import alias


@register_layer("Slice")
class SliceLayer(Layer):
    exact_num_bottom = 1
    min_top = 1
    cases = [
        Case("slice_param { axis: 0 slice_point: 2 slice_point: 5 }", [(9, 5, 6)], tops=3),
        Case("slice_param { axis: 1 slice_point: 2 slice_point: 5 }", [(4, 9, 6)], tops=3),
        Case("slice_param { axis: 2 slice_point: 2 slice_point: 5 }", [(4, 5, 9)], tops=3),
        Case("slice_param { axis: -1 }", [(2, 3, 6)], tops=2),
        Case("", [(2, 6, 3)], tops=3),  # equal parts along axis 1
        Case("slice_param { slice_dim: 0 slice_point: 1 }", [(3, 2, 2)], tops=2),
        Case("", [(2, 3)]),  # a single top shares the input
    ]

    def setup(self, bottom, top):
        self.shares_its_input = len(top) == 1

    def reshape(self, bottom, top):
        self.axis = axis = join_axis(self, bottom[0], self.layer_param.slice_param, "slice_dim")
        length = bottom[0].shape[axis]
        points = list(self.layer_param.slice_param.slice_point)
        if points:
            if len(points) != len(top) - 1:
                raise self.error(f"{len(points)} slice_point(s) for {len(top)} tops; give one fewer than the tops")
            sizes = np.diff([0] + points + [length])
            if (sizes <= 0).any():
                raise self.error(f"slice_point {points} must increase strictly inside (0, {length}) "
                                 f"for axis {axis} of input shape {bottom[0].shape}")
        else:
            if length % len(top):
                raise self.error(f"{len(top)} tops do not evenly divide axis {axis} of input shape {bottom[0].shape}")
            sizes = [length // len(top)] * len(top)
        shape = list(bottom[0].shape)
        for t, size in zip(top, sizes):
            shape[axis] = int(size)
            t.reshape(shape)
        self.points = boundaries(sizes)
        if self.shares_its_input:
            alias(top[0], bottom[0])

    def forward_cpu(self, bottom, top):
        if not self.shares_its_input:
            for t, part in zip(top, np.split(bottom[0].data_readonly(), self.points, axis=self.axis)):
                t.data[...] = part

    def backward_cpu(self, top, propagate_down, bottom):
        if propagate_down[0] and not self.shares_its_input:
            np.concatenate([t.diff_readonly() for t in top], axis=self.axis, out=bottom[0].diff)

    def make_gpu(self):
        return ViewOnly() if self.shares_its_input else SliceGPU(layer=self)
