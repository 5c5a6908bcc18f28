"""ONNX translations of Convolution and the forks' depthwise types (Conv; group = channels is ONNX's
group too), Deconvolution (ConvTranspose) and Im2col (a Conv with one-hot filters, which copies each
kernel offset of each channel into an output channel of its own)."""
import numpy as np

from nvcaffe_py.onnx_translation import onnx_translation


def _geometry(layer):
    return dict(kernel_shape=list(layer.kernel), strides=list(layer.stride), pads=list(layer.pad) * 2,
                dilations=list(layer.dilation))


def _batched(g, x, shape, top_shape, channel_axis, convolve):
    """convolve(x) on x seen as (N, C, spatial...): Caffe's axes before the channel axis are all
    batch axes, ONNX's convolutions have one."""
    if channel_axis == 1:
        return convolve(x)
    batch = int(np.prod(shape[:channel_axis]))
    return g.reshape(convolve(g.reshape(x, (batch,) + shape[channel_axis:], "batch_view")), top_shape)


@onnx_translation("Convolution", "Deconvolution", "ConvolutionDepthwise", "DepthwiseConvolution")
def convolution(layer, g):
    op_type = "ConvTranspose" if layer.reverse_dimensions else "Conv"
    # Caffe's weights are laid out as ONNX's: Conv (M, C/group, k...), ConvTranspose (C, M/group, k...).
    params = [g.constant(layer.blobs[0].data_readonly(), "weight")]
    if layer.bias_term:
        params.append(g.constant(layer.blobs[1].data_readonly(), "bias"))

    def convolve(x):
        return g.op(op_type, x, *params, group=layer.group, **_geometry(layer))

    return [_batched(g, x, shape, top_shape, layer.channel_axis, convolve)
            for x, shape, top_shape in zip(g.bottoms, g.bottom_shapes, g.top_shapes)]


@onnx_translation("Im2col")
def im2col(layer, g):
    shape = g.bottom_shapes[0]
    channels, offsets = shape[layer.channel_axis], int(np.prod(layer.kernel))
    # Group c's output channel c * offsets + k picks kernel offset k of channel c: Caffe's row order.
    one_hot = np.eye(offsets).reshape((offsets, 1) + tuple(layer.kernel))
    weight = g.constant(np.concatenate([one_hot] * channels), "one_hot")

    def columns(x):
        return g.op("Conv", x, weight, group=channels, **_geometry(layer))

    return [_batched(g, g.bottoms[0], shape, g.top_shapes[0], layer.channel_axis, columns)]
