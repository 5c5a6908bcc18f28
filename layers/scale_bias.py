"""Scale and Bias: multiply by, or add, an operand broadcast over bottom[0], as Caffe's layers.

The operand (a parameter blob, or bottom[1]) has the shape of bottom[0]'s axes
[axis, axis + num_axes) (num_axes -1: to the last axis) and applies to every element along
the axes before and after those; viewed so, bottom[0] is (outer, dim, inner) and the operand
(1, dim, 1). A scalar operand (no axes) applies everywhere, whatever `axis` says.
"""
import numpy as np

from nvcaffe_py.errors import CaffeError
from nvcaffe_py.layer import Layer
from nvcaffe_py.proto import caffe_pb2
from nvcaffe_py.registry import register_layer


def _canonical_axis(layer, blob, axis):
    try:
        return blob.canonical_axis_index(axis)
    except CaffeError as exc:
        raise layer.error(str(exc)) from None


def operand_shape(layer, bottom, axis, num_axes):
    """The shape of a parameter operand: bottom's axes [axis, axis + num_axes)."""
    axis = _canonical_axis(layer, bottom, axis)
    if num_axes < -1:
        raise layer.error(f"num_axes must be non-negative, or -1 to extend to the end of bottom[0]; got {num_axes}")
    if num_axes >= 0 and bottom.num_axes < axis + num_axes:
        raise layer.error(f"{num_axes} axes from axis {axis} extend past bottom[0]'s shape {bottom.shape}")
    return bottom.shape[axis:] if num_axes == -1 else bottom.shape[axis:axis + num_axes]


def broadcast_dims(layer, bottom, operand, axis):
    """(outer, dim, inner) such that bottom as (outer, dim, inner) lines up with operand as (1, dim, 1)."""
    axis = 0 if operand.num_axes == 0 else _canonical_axis(layer, bottom, axis)
    end = axis + operand.num_axes
    if bottom.shape[axis:end] != operand.shape:
        raise layer.error(f"operand of shape {operand.shape} does not match bottom[0]'s shape {bottom.shape} "
                          f"from axis {axis}")
    return bottom.count(0, axis), operand.count(), bottom.count(end)


def _param_wanted(layer, index):
    # The Net fills param_propagate_down from lr_mult; a layer used alone (tests) wants every gradient.
    wanted = layer.param_propagate_down
    return index >= len(wanted) or wanted[index]


def _store_grad(blob, grad, accumulate):
    """Parameter diffs accumulate (iter_size, sharing); bottom diffs are overwritten."""
    if accumulate:
        blob.diff[...] += grad.reshape(blob.shape)
    else:
        blob.diff[...] = grad.reshape(blob.shape)


def _as_column(blob):
    return blob.data.reshape(1, -1, 1)


@register_layer("Bias")
class BiasLayer(Layer):
    min_bottom = 1
    max_bottom = 2
    exact_num_top = 1

    def setup(self, bottom, top):
        p = self.layer_param.bias_param
        if len(bottom) == 1 and not self.blobs:
            # An absent filler is the default FillerParameter: constant 0.
            self.blobs.append(self.new_param_blob(operand_shape(self, bottom[0], p.axis, p.num_axes), p.filler))

    def _bias(self, bottom):
        return bottom[1] if len(bottom) > 1 else self.blobs[0]

    def reshape(self, bottom, top):
        self.dims = broadcast_dims(self, bottom[0], self._bias(bottom), self.layer_param.bias_param.axis)
        top[0].reshape(bottom[0].shape)

    def forward_cpu(self, bottom, top):
        np.add(bottom[0].data.reshape(self.dims), _as_column(self._bias(bottom)), out=top[0].data.reshape(self.dims))

    def backward_cpu(self, top, propagate_down, bottom):
        if propagate_down[0] and not np.may_share_memory(bottom[0].diff, top[0].diff):
            bottom[0].diff[...] = top[0].diff
        if len(bottom) > 1 and propagate_down[1] or len(bottom) == 1 and _param_wanted(self, 0):
            grad = top[0].diff.reshape(self.dims).sum(axis=(0, 2))
            _store_grad(self._bias(bottom), grad, accumulate=len(bottom) == 1)

    def forward_gpu(self, bottom, top):
        from . import scale_bias_gpu

        scale_bias_gpu.bias_forward(self, bottom, top)

    def backward_gpu(self, top, propagate_down, bottom):
        from . import scale_bias_gpu

        scale_bias_gpu.bias_backward(self, top, propagate_down, bottom)


@register_layer("Scale")
class ScaleLayer(Layer):
    """top = bottom[0] * scale (+ bias, a parameter, with bias_term)."""
    min_bottom = 1
    max_bottom = 2
    exact_num_top = 1

    def setup(self, bottom, top):
        p = self.layer_param.scale_param
        if len(bottom) == 1 and not self.blobs:
            # Without a filler the scale starts at 1: the identity.
            filler = p.filler if p.HasField("filler") else caffe_pb2.FillerParameter(type="constant", value=1)
            self.blobs.append(self.new_param_blob(operand_shape(self, bottom[0], p.axis, p.num_axes), filler))
        self.bias_index = None
        if p.bias_term:
            # Weights from a caffemodel may already hold the bias (scale param + bias, or bias alone).
            if len(self.blobs) + len(bottom) < 3:
                num_axes = bottom[1].num_axes if len(bottom) > 1 else p.num_axes
                shape = operand_shape(self, bottom[0], p.axis, num_axes)
                self.blobs.append(self.new_param_blob(shape, p.bias_filler))
            self.bias_index = len(self.blobs) - 1

    def _scale(self, bottom):
        return bottom[1] if len(bottom) > 1 else self.blobs[0]

    def reshape(self, bottom, top):
        axis = self.layer_param.scale_param.axis
        self.dims = broadcast_dims(self, bottom[0], self._scale(bottom), axis)
        if self.bias_index is not None:
            self.bias_dims = broadcast_dims(self, bottom[0], self.blobs[self.bias_index], axis)
        top[0].reshape(bottom[0].shape)

    def forward_cpu(self, bottom, top):
        x = bottom[0].data.reshape(self.dims)
        # In place, backward still needs the input that forward overwrites.
        self.saved_input = x.copy() if np.may_share_memory(bottom[0].data, top[0].data) else None
        np.multiply(x, _as_column(self._scale(bottom)), out=top[0].data.reshape(self.dims))
        if self.bias_index is not None:
            y = top[0].data.reshape(self.bias_dims)
            y += _as_column(self.blobs[self.bias_index])

    def backward_cpu(self, top, propagate_down, bottom):
        dy = top[0].diff.reshape(self.dims)
        if self.bias_index is not None and _param_wanted(self, self.bias_index):
            grad = top[0].diff.reshape(self.bias_dims).sum(axis=(0, 2))
            _store_grad(self.blobs[self.bias_index], grad, accumulate=True)
        scale_is_param = len(bottom) == 1
        if scale_is_param and _param_wanted(self, 0) or not scale_is_param and propagate_down[1]:
            x = bottom[0].data.reshape(self.dims) if self.saved_input is None else self.saved_input
            _store_grad(self._scale(bottom), np.einsum("ijk,ijk->j", dy, x), accumulate=scale_is_param)
        if propagate_down[0]:
            # After the scale gradient: in place, bottom's diff is top's.
            np.multiply(dy, _as_column(self._scale(bottom)), out=bottom[0].diff.reshape(self.dims))

    def forward_gpu(self, bottom, top):
        from . import scale_bias_gpu

        scale_bias_gpu.scale_forward(self, bottom, top)

    def backward_gpu(self, top, propagate_down, bottom):
        from . import scale_bias_gpu

        scale_bias_gpu.scale_backward(self, top, propagate_down, bottom)
