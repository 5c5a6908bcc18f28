"""Slice: cuts its input along one axis (`axis`, or the legacy `slice_dim`) at `slice_point`s,
or into equal parts, one per top."""
import numpy as np

from nvcaffe_py.layer import Layer
from nvcaffe_py.registry import register_layer

from .concat import boundaries, join_axis
from .reshape import alias


@register_layer("Slice")
class SliceLayer(Layer):
    exact_num_bottom = 1
    min_top = 1

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
        if len(top) == 1:
            alias(top[0], bottom[0])

    def forward_cpu(self, bottom, top):
        if len(top) > 1:
            for t, part in zip(top, np.split(bottom[0].data, self.points, axis=self.axis)):
                t.data[...] = part

    def backward_cpu(self, top, propagate_down, bottom):
        if propagate_down[0] and len(top) > 1:
            np.concatenate([t.diff for t in top], axis=self.axis, out=bottom[0].diff)

    def forward_gpu(self, bottom, top):
        from . import concat_gpu

        concat_gpu.slice_forward(self, bottom, top)

    def backward_gpu(self, top, propagate_down, bottom):
        from . import concat_gpu

        concat_gpu.slice_backward(self, top, propagate_down, bottom)
