"""Convolution, Deconvolution and Im2col, as Caffe's BaseConvolutionLayer and its children; the
forks' ConvolutionDepthwise / DepthwiseConvolution (a grouped Convolution).

`convolution_param` gives num_output, bias_term, group, axis, and per spatial axis (one value for
all, or one each) kernel_size, pad, stride and dilation, or their 2-D kernel_h/_w, pad_h/_w,
stride_h/_w spellings. Every axis after `axis` is spatial, so 1-D and 3-D convolutions work too.

Both layers see a "convolution view" of their blobs: an image side, which im2col turns into
columns (Convolution: the bottom; Deconvolution: the top), and an output side (the other one),
related by output = W * columns. Deconvolution's forward is then Convolution's backward-data pass
and vice versa, as in Caffe. The CPU engine is backends/cpu/convolution.py (on im2col.py there);
the GPU half, for 2-D, is conv_gpu.py with conv.cu (depthwise: depthwise_gpu.py with depthwise.cu).
"""
import numpy as np

from nvcaffe_py.backends.cpu import onednn
from nvcaffe_py.backends.cpu.convolution import ConvolutionEngine, Im2colEngine, add_bias_gradient
from nvcaffe_py.backends.cpu.im2col import output_size
from nvcaffe_py.conformance import Case
from nvcaffe_py.layer import Layer
from nvcaffe_py.registry import register_layer

from .conv_gpu import ConvolutionGPU
from .depthwise_gpu import DepthwiseConvolutionGPU
from .neuron import rectify

FILLERS = 'weight_filler { type: "gaussian" std: 0.3 } bias_filler { type: "gaussian" std: 0.3 }'


def _params(text):
    """A conformance case's convolution_param, with random weights and bias."""
    return f"convolution_param {{ {text} {FILLERS} }}"


def spatial_axis_count(layer, bottom, axis) -> int:
    """The number of spatial axes after the channel axis `axis`: at least one."""
    count = bottom.num_axes - axis - 1
    if count < 1:
        raise layer.error(f"needs spatial axes after the channel axis {axis}; the input has shape {bottom.shape}")
    return count


def spatial_params(layer, param, num_spatial):
    """(kernel, stride, pad, dilation) tuples, one entry per spatial axis, from a ConvolutionParameter."""

    def per_axis(name, default, h_name=None, w_name=None):
        values = list(getattr(param, name))
        if h_name and (param.HasField(h_name) or param.HasField(w_name)):
            if num_spatial != 2:
                raise layer.error(f"{h_name} & {w_name} can only be used for 2-D convolution "
                                  f"(this input has {num_spatial} spatial axes)")
            if values:
                raise layer.error(f"give either {name} or {h_name}/{w_name}, not both")
            return (getattr(param, h_name), getattr(param, w_name))
        allowed = {1, num_spatial} if default is None else {0, 1, num_spatial}
        if len(values) not in allowed:
            raise layer.error(f"{name} must be given once or once per spatial axis "
                              f"(given {len(values)} times; {num_spatial} spatial axes)")
        if not values:
            return (default,) * num_spatial
        return tuple(values[0 if len(values) == 1 else i] for i in range(num_spatial))

    kernel = per_axis("kernel_size", None, "kernel_h", "kernel_w")
    stride = per_axis("stride", 1, "stride_h", "stride_w")
    pad = per_axis("pad", 0, "pad_h", "pad_w")
    dilation = per_axis("dilation", 1)
    for name, values in (("kernel size", kernel), ("stride", stride), ("dilation", dilation)):
        if any(v <= 0 for v in values):
            raise layer.error(f"{name} must be positive, got {list(values)}")
    return kernel, stride, pad, dilation


def convolved_shape(layer, spatial, kernel, pad, stride, dilation):
    """Output spatial shape of a convolution; an error naming the layer when the kernel does not fit."""
    out = tuple(map(output_size, spatial, kernel, pad, stride, dilation))
    for axis, (size, o) in enumerate(zip(spatial, out)):
        if o < 1:
            extent = dilation[axis] * (kernel[axis] - 1) + 1
            raise layer.error(f"kernel extent {extent} is larger than the padded input "
                              f"{size + 2 * pad[axis]} on spatial axis {axis}")
    return out


class BaseConvolution(Layer):
    min_bottom = 1
    min_top = 1
    # Deconvolution: the top is the image side, and the weights are (channels, num_output/group, k...).
    reverse_dimensions = False
    # oneDNN's primitives by geometry, once the deploy-time forward allowed them (forward_only).
    _onednn = None

    def setup(self, bottom, top):
        if len(top) != len(bottom):
            raise self.error(f"needs one top per bottom, got {len(bottom)} bottoms and {len(top)} tops")
        param = self.layer_param.convolution_param
        self.channel_axis = self.canonical_axis(bottom[0], param.axis)
        self.num_spatial = spatial_axis_count(self, bottom[0], self.channel_axis)
        self.kernel, self.stride, self.pad, self.dilation = spatial_params(self, param, self.num_spatial)
        self.channels = bottom[0].shape[self.channel_axis]
        if self.channels == 0:
            raise self.error(f"the input has 0 channels (shape {bottom[0].shape})")
        self.num_output = param.num_output
        self.group = param.group
        if self.num_output <= 0:
            raise self.error("num_output must be positive")
        if self.group <= 0:
            raise self.error("group must be positive")
        if self.channels % self.group:
            raise self.error(f"{self.channels} input channels are not divisible by group {self.group}")
        if self.num_output % self.group:
            raise self.error(f"num_output {self.num_output} is not divisible by group {self.group}")
        if self.reverse_dimensions:
            self.conv_in_channels, self.conv_out_channels = self.num_output, self.channels
        else:
            self.conv_in_channels, self.conv_out_channels = self.channels, self.num_output
        weight_shape = (self.conv_out_channels, self.conv_in_channels // self.group) + self.kernel
        self.bias_term = param.bias_term
        specs = [("weight", weight_shape, param.weight_filler)]
        if self.bias_term:
            specs.append(("bias", (self.num_output,), param.bias_filler))
        self.init_param_blobs(specs)

    def compute_output_shape(self, spatial):
        raise NotImplementedError

    def reshape(self, bottom, top):
        first = bottom[0]
        if first.num_axes != self.channel_axis + 1 + self.num_spatial:
            raise self.error(f"bottom has {first.num_axes} axes; the layer was set up for "
                             f"{self.channel_axis + 1 + self.num_spatial} (num_axes may not change)")
        if first.shape[self.channel_axis] != self.channels:
            raise self.error(f"bottom has {first.shape[self.channel_axis]} channels; "
                             f"the layer was set up for {self.channels}")
        for i, blob in enumerate(bottom[1:], start=1):
            if blob.shape != first.shape:
                raise self.error(f"bottom[{i}] has shape {blob.shape} but bottom[0] has {first.shape}; "
                                 "all bottoms must have the same shape")
        self.num = first.count(0, self.channel_axis)
        spatial = first.shape[self.channel_axis + 1:]
        out_spatial = self.compute_output_shape(spatial)
        for blob in top:
            blob.reshape(first.shape[:self.channel_axis] + (self.num_output,) + out_spatial)
        image_spatial = out_spatial if self.reverse_dimensions else spatial
        self.engine = ConvolutionEngine(self.num, self.conv_in_channels, self.conv_out_channels, self.group,
                                        image_spatial, self.kernel, self.pad, self.stride, self.dilation, self.dtype)
        self._spatial = (tuple(spatial), out_spatial)

    def onednn_convolution(self, negative_slope=None, source=None, residual_scale=None, dst=None):
        """The oneDNN primitive for the current shapes (onednn.Convolution: with a ReLU of this
        slope fused; reading the blocked layout `source`; adding `residual_scale` times the residual
        its output holds, of layout `dst`), or None where the layer runs on the NumPy engine (no
        oneDNN, or only its slow reference kernel for this)."""
        if self._onednn is None:
            return None
        layout = onednn.library().layout
        key = (self.num,) + self._spatial + (negative_slope, residual_scale) + tuple(
            None if md is None else layout(md) for md in (source, dst))
        return onednn.cached(self._onednn, key, onednn.Convolution, self.num, self.channels, *self._spatial,
                             self.num_output, self.group, self.kernel, self.pad, self.stride, self.dilation,
                             negative_slope, source, residual_scale, dst)

    def uses_onednn(self) -> bool:
        return self._onednn is not None

    def onednn_parameters(self):
        return onednn.layer_parameters(self)

    def forward_only(self):
        """A Convolution runs its forward on oneDNN where it is installed, unless an engine says
        CAFFE (onednn.chosen_for)."""
        if (self._onednn is None and not self.reverse_dimensions and self.num_spatial == 2 and self.channel_axis == 1
                and onednn.chosen_for(self, self.layer_param.convolution_param.engine)):
            self._onednn = {}

    @property
    def depthwise(self):
        """One group per image-side channel, in 2-D: on the GPU, direct kernels instead of a GEMM a
        channel. (On the CPU, im2col's shifted-row columns stay: direct NumPy passes per kernel tap
        measured 1.1-2.3x slower on MobileNet's depthwise shapes, batch 1 and 16.)"""
        return self.num_spatial == 2 and self.group == self.conv_in_channels and self.group > 1

    def _bias(self):
        return self.blobs[1].data_readonly() if self.bias_term else None

    def _sides(self, bottom_array, top_array):
        """(image side, output side) of a bottom array and a top array."""
        return (top_array, bottom_array) if self.reverse_dimensions else (bottom_array, top_array)

    def forward_cpu(self, bottom, top):
        self.forward_rectified(bottom, top, None)

    def forward_rectified(self, bottom, top, negative_slope):
        """The CPU forward, then (unless `negative_slope` is None) a ReLU over the tops: how the
        deploy-time plan runs a convolution and the in-place ReLU after it, on oneDNN as one
        primitive."""
        fast = self.onednn_convolution(negative_slope)
        if fast is not None:
            for b, t in zip(bottom, top):
                fast.convolve(self.onednn_parameters(), b.data_readonly(), t.data)
            return
        self._forward_numpy(bottom, top, self.blobs[0].data_readonly(), self._bias())
        if negative_slope is not None:
            for t in top:
                rectify(t.data, negative_slope, t.data)

    def _forward_numpy(self, bottom, top, weights, bias):
        for b, t in zip(bottom, top):
            if self.reverse_dimensions:
                self.engine.convolve_transposed(weights, b.data_readonly(), t.data, bias)
            else:
                self.engine.convolve(weights, b.data_readonly(), t.data, bias)

    def backward_cpu(self, top, propagate_down, bottom):
        weights = self.blobs[0].data_readonly()
        for i, (b, t) in enumerate(zip(bottom, top)):
            top_diff = t.diff_readonly()
            if self.bias_term and self.param_gradient_wanted(1):
                add_bias_gradient(self.blobs[1].diff,
                                  top_diff.reshape(self.num, self.num_output, t.count(self.channel_axis + 1)))
            if self.param_gradient_wanted(0):
                self.engine.add_weight_gradient(self.blobs[0].diff, *self._sides(b.data_readonly(), top_diff))
            if propagate_down[i]:
                if self.reverse_dimensions:
                    self.engine.convolve(weights, top_diff, b.diff)
                else:
                    self.engine.convolve_transposed(weights, top_diff, b.diff)

    def multiply_adds(self, bottom, top):
        # Each element of the output side (Convolution: the top; Deconvolution: the bottom) meets
        # channels / group x kernel weights.
        per_element = self.conv_in_channels // self.group * int(np.prod(self.kernel))
        return sum(blob.count() for blob in (bottom if self.reverse_dimensions else top)) * per_element

    def make_gpu(self):
        if self.num_spatial != 2:
            return None  # the kernels are 2-D: N-d convolution runs the CPU code
        if self.depthwise:
            return DepthwiseConvolutionGPU(layer=self, axis=self.channel_axis, channels=self.conv_in_channels,
                                           multiplier=self.conv_out_channels // self.group, kernel=self.kernel,
                                           pad=self.pad, stride=self.stride, dilation=self.dilation,
                                           bias_term=self.bias_term, transposed=self.reverse_dimensions)
        return ConvolutionGPU(layer=self, axis=self.channel_axis, channels=self.channels, num_output=self.num_output,
                              kernel=self.kernel, pad=self.pad, stride=self.stride, dilation=self.dilation,
                              group=self.group, bias_term=self.bias_term, transposed=self.reverse_dimensions)


@register_layer("Convolution")
class ConvolutionLayer(BaseConvolution):
    cases = [
        # On the CPU: shifted-row columns, and the data gradient by the flipped kernel.
        Case(_params("num_output: 4 kernel_size: 3"), [(2, 3, 7, 6)]),
        Case(_params("num_output: 6 kernel_size: 3 pad: 1 stride: 2 group: 2"), [(2, 4, 9, 8)]),
        Case(_params("num_output: 5 kernel_h: 3 kernel_w: 2 pad_h: 2 pad_w: 0 stride_h: 1 stride_w: 3 dilation: 2"),
             [(1, 3, 11, 10)]),
        Case(_params("num_output: 6 group: 3 kernel_size: 2 kernel_size: 3 pad: 1 pad: 2 stride: 1 stride: 2 "
                     "dilation: 2 dilation: 1"), [(2, 6, 6, 7)]),
        # 1x1 with stride 1 and no pad: a batched GEMM on the GPU, no columns on the CPU.
        Case(_params("num_output: 4 kernel_size: 1 group: 2"), [(3, 6, 5, 5)]),
        Case(_params("num_output: 3 kernel_size: 1"), [(2, 4, 3, 3)]),
        Case(_params("num_output: 3 kernel_size: 1 stride: 2 bias_term: false"), [(2, 5, 6, 7)]),
        Case(_params("num_output: 3 kernel_size: 3 pad: 1 bias_term: false"), [(2, 2, 5, 4)]),
        Case(_params("num_output: 3 kernel_size: 3 pad: 1 stride: 2"), [(2, 2, 5, 5), (2, 2, 5, 5)], tops=2),
        Case(_params("num_output: 3 kernel_size: 2 axis: 2"), [(2, 3, 2, 5, 4)]),  # leading axes are the batch
        # On the CPU: image-major columns (rows of 24 or more), and then a GEMM per image (512 outputs or more).
        Case(_params("num_output: 3 kernel_size: 3 pad: 1"), [(2, 2, 4, 28)]),
        Case(_params("num_output: 3 kernel_size: 3 pad: 1"), [(2, 1, 20, 26)]),
        # Depthwise (group = channels): the direct kernels on the GPU, one or two outputs per channel.
        Case(_params("num_output: 4 group: 4 kernel_size: 3 pad: 1 stride: 2"), [(2, 4, 7, 6)]),
        Case(_params("num_output: 6 group: 3 kernel_h: 3 kernel_w: 2 pad: 1 dilation: 2 bias_term: false"),
             [(2, 3, 7, 8)]),
        # N-d: the CPU code in GPU mode too
        Case(_params("num_output: 3 kernel_size: 2 kernel_size: 3 kernel_size: 2 pad: 1 stride: 2"),
             [(2, 2, 4, 5, 6)]),
        Case(_params("num_output: 2 kernel_size: 3 dilation: 2"), [(3, 2, 9)]),
    ]

    def compute_output_shape(self, spatial):
        return convolved_shape(self, spatial, self.kernel, self.pad, self.stride, self.dilation)


@register_layer("ConvolutionDepthwise")  # farmingyard/caffe-mobilenet and others
@register_layer("DepthwiseConvolution")  # yonghenglh6/DepthwiseConvolution
class DepthwiseConvolutionLayer(ConvolutionLayer):
    """The forks' names for a Convolution whose prototxt gives group = channels (their layers are
    BVLC's grouped convolution with a faster kernel; so is this one: direct kernels on the GPU)."""
    cases = [
        Case(_params("num_output: 3 group: 3 kernel_size: 3 pad: 1"), [(2, 3, 6, 5)]),
        Case(_params("num_output: 4 group: 2 kernel_size: 3 stride: 2 bias_term: false"), [(2, 2, 7, 7)]),
    ]


@register_layer("Deconvolution")
class DeconvolutionLayer(BaseConvolution):
    reverse_dimensions = True
    cases = [
        Case(_params("num_output: 4 kernel_size: 3"), [(2, 3, 7, 6)]),
        Case(_params("num_output: 6 kernel_size: 3 pad: 1 stride: 2 group: 2"), [(2, 4, 9, 8)]),
        Case(_params("num_output: 5 kernel_h: 3 kernel_w: 2 pad_h: 2 pad_w: 0 stride_h: 1 stride_w: 3 dilation: 2"),
             [(1, 3, 11, 10)]),
        Case(_params("num_output: 4 group: 2 kernel_size: 3 pad: 1"), [(3, 4, 5, 6)]),  # flipped kernel on the CPU
        Case(_params("num_output: 2 kernel_size: 1"), [(2, 3, 2, 3)]),  # pointwise
        Case(_params("num_output: 4 group: 2 kernel_size: 3 stride: 2 pad: 1 bias_term: false"), [(2, 2, 3, 3)]),
        Case(_params("num_output: 3 kernel_size: 4 stride: 2"), [(2, 2, 3, 3), (2, 2, 3, 3)], tops=2),
        Case(_params("num_output: 2 kernel_size: 3 pad: 1"), [(2, 3, 2, 26)]),  # image-major columns on the CPU
        Case(_params("num_output: 2 kernel_size: 2 stride: 2"), [(2, 3, 3, 2, 3)]),  # N-d
        # Depthwise: the direct kernels the other way round.
        Case(_params("num_output: 3 group: 3 kernel_size: 4 stride: 2 pad: 1"), [(2, 3, 4, 5)]),
        Case(_params("num_output: 2 group: 2 kernel_size: 3 stride: 2 bias_term: false"), [(2, 4, 3, 4)]),
    ]

    def compute_output_shape(self, spatial):
        out = tuple(s * (size - 1) + d * (k - 1) + 1 - 2 * p
                    for size, k, p, s, d in zip(spatial, self.kernel, self.pad, self.stride, self.dilation))
        for axis, o in enumerate(out):
            if o < 1:
                raise self.error(f"pad {self.pad[axis]} leaves no output on spatial axis {axis}")
        return out


@register_layer("Im2col")
class Im2colLayer(Layer):
    """The column matrix itself as a blob: (..., C * prod(kernel), *output spatial), as Caffe's."""
    exact_num_bottom = 1
    exact_num_top = 1
    cases = [
        Case("convolution_param { kernel_h: 3 kernel_w: 2 pad: 1 stride: 2 }", [(2, 3, 6, 5)]),
        Case("convolution_param { kernel_size: 3 pad: 1 stride: 2 dilation: 2 }", [(2, 2, 7, 6)]),
        Case("convolution_param { kernel_size: 3 pad: 1 }", [(2, 2, 3, 26)]),  # image-major columns
        Case("convolution_param { kernel_size: 1 }", [(2, 3, 4, 5)]),
        Case("convolution_param { kernel_size: 2 axis: 2 }", [(2, 2, 3, 4, 3)]),  # leading axes are the batch
        Case("convolution_param { kernel_size: 2 stride: 1 pad: 1 }", [(2, 2, 3, 4, 3)]),  # 3-D
    ]

    def setup(self, bottom, top):
        param = self.layer_param.convolution_param
        self.channel_axis = self.canonical_axis(bottom[0], param.axis)
        self.num_spatial = spatial_axis_count(self, bottom[0], self.channel_axis)
        self.kernel, self.stride, self.pad, self.dilation = spatial_params(self, param, self.num_spatial)

    def reshape(self, bottom, top):
        shape, axis = bottom[0].shape, self.channel_axis
        if len(shape) != axis + 1 + self.num_spatial:
            raise self.error(f"bottom has {len(shape)} axes; the layer was set up for {axis + 1 + self.num_spatial}")
        out_spatial = convolved_shape(self, shape[axis + 1:], self.kernel, self.pad, self.stride, self.dilation)
        self.engine = Im2colEngine(bottom[0].count(0, axis), shape[axis], shape[axis + 1:], self.kernel, self.pad,
                                   self.stride, self.dilation, self.dtype)
        top[0].reshape(shape[:axis] + (self.engine.im2col.rows,) + out_spatial)

    def forward_cpu(self, bottom, top):
        self.engine.columns(bottom[0].data_readonly(), top[0].data)

    def backward_cpu(self, top, propagate_down, bottom):
        if propagate_down[0]:
            self.engine.images(top[0].diff_readonly(), bottom[0].diff)
