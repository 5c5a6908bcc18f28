"""Scale and Bias: multiply by, or add, an operand broadcast over bottom[0], as Caffe's layers.

The operand (a parameter blob, or bottom[1]) has the shape of bottom[0]'s axes
[axis, axis + num_axes) (num_axes -1: to the last axis) and applies to every element along
the axes before and after those; viewed so, bottom[0] is (outer, dim, inner) and the operand
(1, dim, 1). A scalar operand (no axes) applies everywhere, whatever `axis` says. Scale's
optional bias (bias_term) is a parameter broadcast the same way. The GPU halves are in
scale_bias_gpu.py.
"""
import numpy as np

from nvcaffe_py.conformance import Case
from nvcaffe_py.layer import Layer
from nvcaffe_py.proto import caffe_pb2
from nvcaffe_py.registry import register_layer

from .scale_bias_gpu import BiasGPU, ScaleGPU


def _as_column(blob):
    return blob.data_readonly().reshape(1, -1, 1)


def _reduce_into(blob, dy, dims, accumulate, x=None):
    """blob.diff (+)= the sums of dy (times x) over bottom[0]'s (outer, dim, inner) view for each
    operand element: parameter diffs accumulate (iter_size, sharing), bottoms' are overwritten."""
    dy = dy.reshape(dims)
    grad = (dy.sum(axis=(0, 2)) if x is None else np.einsum("ijk,ijk->j", dy, x)).reshape(blob.shape)
    if accumulate:
        blob.diff[...] += grad
    else:
        blob.diff[...] = grad


class BroadcastOperandLayer(Layer):
    """What Bias and Scale share: the operand (bottom[1], or a parameter blob that starts at the
    operation's identity), its broadcasting, and which of its gradients backward computes."""
    min_bottom = 1
    max_bottom = 2
    exact_num_top = 1
    in_place_capable = True
    identity = None  # the operand value that leaves bottom[0] unchanged

    def operand_param(self):
        """The layer's bias_param or scale_param: axis, num_axes, filler."""
        raise NotImplementedError

    def setup(self, bottom, top):
        p = self.operand_param()
        if len(bottom) == 1 and not self.blobs:
            filler = p.filler if p.HasField("filler") else caffe_pb2.FillerParameter(type="constant",
                                                                                      value=self.identity)
            self.blobs.append(self.new_param_blob(self.operand_shape(bottom[0], p.num_axes), filler))

    def operand_shape(self, bottom, num_axes):
        """The shape of a parameter operand: bottom's axes [axis, axis + num_axes)."""
        axis = self.canonical_axis(bottom, self.operand_param().axis)
        if num_axes < -1:
            raise self.error(f"num_axes must be non-negative, or -1 to extend to the end of bottom[0]; got {num_axes}")
        if num_axes >= 0 and bottom.num_axes < axis + num_axes:
            raise self.error(f"{num_axes} axes from axis {axis} extend past bottom[0]'s shape {bottom.shape}")
        return bottom.shape[axis:] if num_axes == -1 else bottom.shape[axis:axis + num_axes]

    def broadcast_dims(self, bottom, operand):
        """(outer, dim, inner) such that bottom as (outer, dim, inner) lines up with operand as (1, dim, 1)."""
        axis = 0 if operand.num_axes == 0 else self.canonical_axis(bottom, self.operand_param().axis)
        end = axis + operand.num_axes
        if bottom.shape[axis:end] != operand.shape:
            raise self.error(f"operand of shape {operand.shape} does not match bottom[0]'s shape {bottom.shape} "
                             f"from axis {axis}")
        return bottom.count(0, axis), operand.count(), bottom.count(end)

    def reshape(self, bottom, top):
        self.dims = self.broadcast_dims(bottom[0], self.operand(bottom))
        top[0].reshape(bottom[0].shape)

    # -- what both halves decide alike ---------------------------------------------------------
    def operand(self, bottom):
        return bottom[1] if len(bottom) > 1 else self.blobs[0]

    def operand_is_param(self, bottom) -> bool:
        """A parameter operand's diff accumulates; bottom[1]'s is overwritten."""
        return len(bottom) == 1

    def operand_gradient_wanted(self, bottom, propagate_down) -> bool:
        return self.param_gradient_wanted(0) if self.operand_is_param(bottom) else propagate_down[1]

    def in_place(self, bottom, top) -> bool:
        """Does top[0] share bottom[0]'s memory (in place)? Then forward overwrites the input, and
        top's diff is bottom's."""
        return top[0].shares_data_with(bottom[0])


@register_layer("Bias")
class BiasLayer(BroadcastOperandLayer):
    """top = bottom[0] + bias."""
    identity = 0.0
    cases = [
        Case('bias_param { filler { type: "gaussian" } }', [(2, 3, 4, 5)]),
        Case('bias_param { axis: 0 num_axes: 2 filler { type: "gaussian" } }', [(2, 3, 4)]),
        Case('bias_param { axis: -2 num_axes: -1 filler { type: "gaussian" } }', [(2, 3, 4, 5)]),
        Case('bias_param { num_axes: 0 filler { type: "gaussian" } }', [(2, 3, 4)]),
        Case("", [(2, 3, 4, 5), (3, 4)]),
        Case("bias_param { axis: -1 }", [(2, 3, 4), (4,)]),
        Case('bias_param { filler { type: "gaussian" } }', [(2, 3, 4)], in_place=True),
        Case("bias_param { axis: 0 }", [(2, 3, 4), (2, 3)], in_place=True),
    ]

    def operand_param(self):
        return self.layer_param.bias_param

    def forward_cpu(self, bottom, top):
        np.add(bottom[0].data_readonly().reshape(self.dims), _as_column(self.operand(bottom)),
               out=top[0].data.reshape(self.dims))

    def backward_cpu(self, top, propagate_down, bottom):
        dy = top[0].diff_readonly()
        if self.operand_gradient_wanted(bottom, propagate_down):
            _reduce_into(self.operand(bottom), dy, self.dims, accumulate=self.operand_is_param(bottom))
        if propagate_down[0] and not self.in_place(bottom, top):
            bottom[0].diff[...] = dy

    def make_gpu(self):
        return BiasGPU(layer=self)


@register_layer("Scale")
class ScaleLayer(BroadcastOperandLayer):
    """top = bottom[0] * scale (+ bias, a parameter, with bias_term)."""
    identity = 1.0
    cases = [
        Case('scale_param { filler { type: "gaussian" } }', [(2, 3, 4, 5)]),
        Case('scale_param { bias_term: true filler { type: "gaussian" } bias_filler { type: "gaussian" } }',
             [(2, 3, 4, 5)]),
        Case('scale_param { axis: 1 num_axes: 2 bias_term: true filler { type: "uniform" } '
             'bias_filler { type: "gaussian" } }', [(2, 3, 4, 5)]),
        Case('scale_param { axis: 0 num_axes: -1 filler { type: "gaussian" } }', [(2, 3, 4)]),
        Case('scale_param { num_axes: 0 filler { type: "gaussian" } }', [(2, 3, 4)]),
        Case("scale_param { axis: 0 }", [(2, 3, 4), (2, 3)]),
        Case('scale_param { axis: -1 bias_term: true bias_filler { type: "gaussian" } }', [(2, 3, 4), (4,)]),
        Case("scale_param { axis: 2 }", [(2, 3, 4, 5), ()]),
        Case('scale_param { filler { type: "gaussian" } }', [(2, 3, 4)], in_place=True),
        Case('scale_param { bias_term: true bias_filler { type: "gaussian" } }', [(2, 3, 4), (3,)], in_place=True),
    ]

    def operand_param(self):
        return self.layer_param.scale_param

    def setup(self, bottom, top):
        super().setup(bottom, top)
        p = self.layer_param.scale_param
        self.bias_index = None
        if p.bias_term:
            # Weights from a caffemodel may already hold the bias (scale param + bias, or bias alone).
            if len(self.blobs) + len(bottom) < 3:
                num_axes = bottom[1].num_axes if len(bottom) > 1 else p.num_axes
                self.blobs.append(self.new_param_blob(self.operand_shape(bottom[0], num_axes), p.bias_filler))
            self.bias_index = len(self.blobs) - 1

    def reshape(self, bottom, top):
        super().reshape(bottom, top)
        if self.bias_index is not None:
            self.bias_dims = self.broadcast_dims(bottom[0], self.blobs[self.bias_index])

    def bias_gradient_wanted(self) -> bool:
        return self.bias_index is not None and self.param_gradient_wanted(self.bias_index)

    def forward_cpu(self, bottom, top):
        x = bottom[0].data_readonly().reshape(self.dims)
        # In place, backward still needs the input that forward overwrites.
        self.saved_input = x.copy() if self.in_place(bottom, top) else None
        np.multiply(x, _as_column(self.operand(bottom)), out=top[0].data.reshape(self.dims))
        if self.bias_index is not None:
            y = top[0].data.reshape(self.bias_dims)
            y += _as_column(self.blobs[self.bias_index])

    def backward_cpu(self, top, propagate_down, bottom):
        dy = top[0].diff_readonly()
        if self.bias_gradient_wanted():
            _reduce_into(self.blobs[self.bias_index], dy, self.bias_dims, accumulate=True)
        if self.operand_gradient_wanted(bottom, propagate_down):
            x = self.saved_input if self.in_place(bottom, top) else bottom[0].data_readonly().reshape(self.dims)
            _reduce_into(self.operand(bottom), dy, self.dims, accumulate=self.operand_is_param(bottom), x=x)
        if propagate_down[0]:
            # After the scale gradient: in place, bottom's diff is top's.
            np.multiply(dy.reshape(self.dims), _as_column(self.operand(bottom)), out=bottom[0].diff.reshape(self.dims))

    def make_gpu(self):
        return ScaleGPU(layer=self)
