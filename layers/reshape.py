"""Flatten and Reshape: a new shape over the same memory. The top shares the bottom's data AND
diff, so forward and backward have nothing to do, on either backend."""
import numpy as np

from nvcaffe_py.backends.cuda.gpu_half import ViewOnly
from nvcaffe_py.conformance import Case
from nvcaffe_py.layer import Layer
from nvcaffe_py.registry import register_layer


def alias(top, bottom):
    """Make `top` (already reshaped to the same count) a view of `bottom`'s data and diff.
    Done in every reshape: a bottom that grows gets new buffers, which the top must follow."""
    top.share_data(bottom)
    top.share_diff(bottom)


class _ViewLayer(Layer):
    exact_num_bottom = 1
    exact_num_top = 1

    def top_shape(self, blob) -> tuple:
        raise NotImplementedError

    def reshape(self, bottom, top):
        if top[0] is bottom[0]:
            raise self.error("does not allow in-place computation (give the top its own name)")
        shape = self.top_shape(bottom[0])
        if np.prod(shape, dtype=np.int64) != np.prod(bottom[0].shape, dtype=np.int64):
            raise self.error(f"output shape {shape} does not hold the {bottom[0].shape} input's elements")
        top[0].reshape(shape)
        alias(top[0], bottom[0])

    def forward_cpu(self, bottom, top):
        pass

    def backward_cpu(self, top, propagate_down, bottom):
        pass

    def make_gpu(self):
        return ViewOnly()  # the top aliases the bottom on the device too


@register_layer("Flatten")
class FlattenLayer(_ViewLayer):
    """Axes axis..end_axis (inclusive, negative from the end) become one."""
    cases = [Case("", [(2, 3, 4, 5)]),
             Case("flatten_param { axis: 2 }", [(2, 3, 4, 5)]),
             Case("flatten_param { axis: -3 end_axis: -2 }", [(2, 3, 4, 5)])]

    def top_shape(self, blob):
        p = self.layer_param.flatten_param
        start, end = self.canonical_axis(blob, p.axis), self.canonical_axis(blob, p.end_axis)
        if start > end:
            raise self.error(f"axis {p.axis} comes after end_axis {p.end_axis} for input shape {blob.shape}")
        shape = blob.shape
        return shape[:start] + (int(np.prod(shape[start:end + 1], dtype=np.int64)),) + shape[end + 1:]


@register_layer("Reshape")
class ReshapeLayer(_ViewLayer):
    """reshape_param.shape replaces input axes [axis, axis + num_axes) (num_axes -1: to the end);
    a 0 copies the input's dimension at that position, a single -1 is inferred from the count."""
    cases = [Case("reshape_param { shape { dim: 0 dim: -1 } }", [(2, 3, 4)]),
             Case("reshape_param { shape { dim: 6 dim: 2 dim: 2 } }", [(2, 3, 4)]),
             Case("reshape_param { shape { dim: -1 } axis: 1 num_axes: 2 }", [(2, 3, 4, 2)]),
             Case("reshape_param { shape { dim: 1 } axis: -1 num_axes: 0 }", [(2, 3)])]

    def setup(self, bottom, top):
        dims = list(self.layer_param.reshape_param.shape.dim)
        if any(d < -1 for d in dims):
            raise self.error(f"shape {dims} has a dimension below -1")
        if dims.count(-1) > 1:
            raise self.error(f"shape {dims} has more than one -1; at most one dimension can be inferred")

    def top_shape(self, blob):
        p = self.layer_param.reshape_param
        n = blob.num_axes
        start = p.axis if p.axis >= 0 else n + p.axis + 1
        if not 0 <= start <= n:
            raise self.error(f"axis {p.axis} out of range for input shape {blob.shape}")
        if p.num_axes < -1:
            raise self.error(f"num_axes must be >= 0, or -1 for all; got {p.num_axes}")
        end = n if p.num_axes == -1 else start + p.num_axes
        if end > n:
            raise self.error(f"axis {p.axis} with num_axes {p.num_axes} goes past the input's shape {blob.shape}")
        new = list(p.shape.dim)
        for i, d in enumerate(new):
            if d == 0:
                if start + i >= n:
                    raise self.error(f"shape {list(p.shape.dim)} copies (0) axis {start + i}, "
                                     f"which input shape {blob.shape} lacks")
                new[i] = blob.shape[start + i]
        shape = list(blob.shape[:start]) + new + list(blob.shape[end:])
        if -1 in new:
            known = int(np.prod([d for d in shape if d != -1], dtype=np.int64))
            total = int(np.prod(blob.shape, dtype=np.int64))
            if known == 0 or total % known:
                raise self.error(f"cannot infer the -1 in {list(p.shape.dim)}: input shape {blob.shape} "
                                 f"({total} elements) is not a multiple of {known}")
            shape[start + new.index(-1)] = total // known
        return tuple(shape)
