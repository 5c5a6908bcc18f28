"""Folding per-channel affine layers into the layer before them: the first pass of the deploy-time
forward (inference_plan.py).

In a TEST net, BatchNorm with stored statistics, and Scale and Bias with a parameter operand per
channel (axis 1) or one for all, compute y = a * x + c per channel. Right after a Convolution or
InnerProduct whose output only they read, they fold into its parameters: W'[o] = a[o] * W[o],
b'[o] = a[o] * b[o] + c[o]. A run of them that follows nothing foldable (a BatchNorm on the input,
after an Eltwise) becomes one Scale with a bias, as does a lone BatchNorm. The folded layer is an
ordinary layer of the folded type (named after the run's first layer), so every backend runs it.

The folded parameters are computed in float64 from the layers' current blobs and cast to the
net's type; `Fold.refresh` recomputes them when a source blob was written since (SyncedArray's
version). A fold never removes a blob the user reads: the output of a layer that the next one
takes out of place is computed no more, so the run stops before a layer whose input is `kept`.
"""
from operator import attrgetter

import numpy as np

from .blob import Blob
from .proto import caffe_pb2
from .registry import create_layer

CONVOLUTIONS = ("Convolution", "ConvolutionDepthwise", "DepthwiseConvolution")
FOLD_INTO = CONVOLUTIONS + ("InnerProduct",)
AFFINE = ("BatchNorm", "Scale", "Bias")
_data_storage, _version = attrgetter("data_storage"), attrgetter("version")


def _channels_of_target(layer, tops):
    """Output channels on axis 1 of a Convolution or InnerProduct that can take a fold, else None."""
    if len(tops) != 1:
        return None
    axis = layer.axis if layer.type == "InnerProduct" else layer.channel_axis
    return layer.num_output if axis == 1 else None


def channel_affine(layer, bottom, channels):
    """(a, c), float64 arrays of `channels`, such that `layer` computes a * x + c on each channel
    (axis 1) of `bottom`; None where it computes something else (batch statistics, an operand on
    other axes). A Scale or Bias here has one bottom (find_folds checks): blobs[0] is the operand."""
    if bottom.num_axes < 2 or bottom.shape[1] != channels:
        return None
    blobs = [np.asarray(b.data_readonly(), np.float64) for b in layer.blobs]
    if layer.type == "BatchNorm":
        if not layer.use_global_stats:
            return None
        factor = 0.0 if blobs[2][0] == 0 else 1.0 / blobs[2][0]
        a = 1.0 / np.sqrt(blobs[1] * factor + layer.eps)
        c = -blobs[0] * factor * a
        if layer.scale_bias:
            a, c = a * blobs[3], c * blobs[3] + blobs[4]
        return a, c
    operand = layer.layer_param.scale_param if layer.type == "Scale" else layer.layer_param.bias_param
    if blobs[0].size == 1 and layer.blobs[0].num_axes == 0:
        values = np.full(channels, blobs[0].item())  # a scalar applies everywhere
    elif blobs[0].shape == (channels,) and layer.canonical_axis(bottom, operand.axis) == 1:
        values = blobs[0]
    else:
        return None
    if layer.type == "Bias":
        return np.ones(channels), values
    bias = blobs[1] if operand.bias_term else np.zeros(channels)
    return values, np.broadcast_to(bias, (channels,))


class Fold:
    """Layers first..last of a net computed by one layer: the first (a Convolution or
    InnerProduct, `into`) with the affine layers after it folded in, or one Scale for them all."""

    def __init__(self, net, first, last, into):
        self.net, self.first, self.last, self.into = net, first, last, into
        self.bottoms = net.bottom_vecs[first]
        self.tops = net.top_vecs[last]
        self._layers = net.layers[first:last + 1]
        self._seen = None
        self.layer = self._build()
        self.refresh()

    def _sources(self):
        """(the parameter blobs the fold reads, their buffers, the sum of the buffers' versions):
        versions only grow, so an equal sum over the same buffers means that none moved."""
        blobs = [blob for layer in self._layers for blob in layer.blobs]
        storages = list(map(_data_storage, blobs))
        return blobs, storages, sum(map(_version, storages))

    def is_current(self) -> bool:
        """Are the folded parameters those of the layers' blobs now? (Each forward asks.)"""
        blobs, storages, version = self._seen
        return ([blob for layer in self._layers for blob in layer.blobs] == blobs
                and list(map(_data_storage, blobs)) == storages and sum(map(_version, storages)) == version)

    def _build(self):
        net, first = self.net, self.net.layers[self.first]
        if self.into:
            param = caffe_pb2.LayerParameter()
            param.CopyFrom(first.layer_param)
            del param.blobs[:]
            field = param.inner_product_param if first.type == "InnerProduct" else param.convolution_param
            field.bias_term = True
            shapes = [first.blobs[0].shape, (first.num_output,)]
        else:
            param = caffe_pb2.LayerParameter(name=first.name, type="Scale", phase=caffe_pb2.TEST)
            param.scale_param.bias_term = True
            shapes = [(self.bottoms[0].shape[1],)] * 2
        param.ClearField("top")
        param.top.extend(net.top_names[net.layer_names[self.last]])
        layer = create_layer(param, caffe_pb2.TEST, net.dtype)
        layer.blobs.extend(Blob(shape, dtype=net.dtype) for shape in shapes)
        layer.set_up(self.bottoms, self.tops)
        layer.loss_weights = [0.0]
        return layer

    def refresh(self):
        """Recompute the folded parameters from the layers' blobs as they are now."""
        net = self.net
        if self.into:
            target = net.layers[self.first]
            weights = np.asarray(target.blobs[0].data_readonly(), np.float64)
            bias = (np.asarray(target.blobs[1].data_readonly(), np.float64) if len(target.blobs) > 1
                    else np.zeros(target.num_output))
            affine = range(self.first + 1, self.last + 1)
        else:
            channels = self.bottoms[0].shape[1]
            weights, bias = None, np.zeros(channels)
            scale = np.ones(channels)
            affine = range(self.first, self.last + 1)
        for index in affine:
            a, c = channel_affine(net.layers[index], net.bottom_vecs[index][0], len(bias))
            bias = bias * a + c
            if weights is None:
                scale = scale * a
            elif self.into and getattr(net.layers[self.first], "transpose", False):
                weights = weights * a[None, :]
            else:
                weights = weights * a.reshape((-1,) + (1,) * (weights.ndim - 1))
        self.layer.blobs[0].data[...] = scale if weights is None else weights
        self.layer.blobs[1].data[...] = bias
        self._seen = self._sources()


def blob_users(net):
    """{blob name: the indices of the layers that read or write it}."""
    users = {}
    for index, name in enumerate(net.layer_names):
        for blob_name in net.bottom_names[name] + net.top_names[name]:
            users.setdefault(blob_name, set()).add(index)
    return users


def find_folds(net, kept, users):
    """[(first, last, into)]: the runs of layers to fold, in order; `into` when the first is the
    Convolution or InnerProduct that takes the rest. users: blob_users(net)."""
    folds, first, count = [], 0, len(net.layers)
    while first < count:
        layer = net.layers[first]
        channels = _channels_of_target(layer, net.top_vecs[first]) if layer.type in FOLD_INTO else None
        into = channels is not None
        last = _run_end(net, first + 1 if into else first, channels, kept, users, first)
        if into and last > first:
            folds.append((first, last, True))
        elif not into and last >= first and (last > first or layer.type == "BatchNorm"):
            folds.append((first, last, False))
        else:
            first += 1
            continue
        first = last + 1
    return folds


def _run_end(net, start, channels, kept, users, run_start):
    """The index of the last affine layer of the run from `start` (start - 1 when there is none)
    whose every layer reads the previous one's output (or, at `start` without a target, any one
    bottom), and whose removed blobs no one else uses or reads."""
    end = start - 1
    value = net.top_names[net.layer_names[start - 1]][0] if start > run_start else None
    for index in range(start, len(net.layers)):
        layer, name = net.layers[index], net.layer_names[index]
        bottoms, tops = net.bottom_names[name], net.top_names[name]
        if layer.type not in AFFINE or len(bottoms) != 1 or len(tops) != 1:
            break
        if value is not None:
            if bottoms[0] != value:
                break
            if tops[0] != value and (value in kept or not users[value] <= set(range(run_start, index + 1))):
                break  # the fold would remove a blob someone reads
        bottom = net.bottom_vecs[index][0]
        width = channels if channels is not None else (bottom.shape[1] if bottom.num_axes >= 2 else 0)
        if channel_affine(layer, bottom, width) is None:
            break
        channels, value, end = width, tops[0], index
    return end
