"""The GPU half of Convolution and Deconvolution (2-D): conv.cu's im2col/col2im around our GEMM.

A chunk of images is turned into one column matrix (C*kh*kw rows, images*pixels columns), so each
group is a single large GEMM, and the groups are one batched launch (the group index in the
grid); swap_axes01 moves the (channels, images, pixels) result into the blob's (images, channels,
pixels) layout, adding the bias on the way. A 1x1 convolution with stride 1 and no pad needs no
columns: its forward and data gradient are one batched GEMM over the images (a launch per group,
whose weights every image shares). Deconvolution runs the same passes the other way round: its
forward is the convolution's data gradient, with its top as the image side. Arrays here are
device arrays; `Geometry` says what the convolution is.
"""
import math
from typing import NamedTuple

from nvcaffe_py.backends.cuda import kernels, memory
from nvcaffe_py.backends.cuda import math_functions as mf
from nvcaffe_py.backends.cuda.gpu_half import GPUHalf
from nvcaffe_py.backends.cuda.sgemm import gemm

_kernels = kernels.Source(__file__, "conv.cu")
# Elements in a chunk's column matrix (and in its GEMM output): 256 MB of float32.
CHUNK_ELEMENTS = 1 << 26


class Geometry(NamedTuple):
    """A 2-D convolution from (channels, height, width) images to (out_channels, out_h, out_w)."""
    channels: int
    height: int
    width: int
    out_channels: int
    out_h: int
    out_w: int
    kernel: tuple
    pad: tuple
    stride: tuple
    dilation: tuple
    group: int

    @property
    def pixels(self):
        return self.out_h * self.out_w

    @property
    def rows(self):  # column-matrix rows of one group: the GEMM's K
        return self.channels // self.group * self.kernel[0] * self.kernel[1]

    @property
    def pointwise(self):
        return self.kernel == (1, 1) and self.stride == (1, 1) and self.pad == (0, 0)

    def _args(self):
        return (*self.kernel, *self.pad, *self.stride, *self.dilation, self.out_h, self.out_w)


def _chunks(num, g):
    """(start, count) chunks of the batch whose column matrix fits CHUNK_ELEMENTS, as even as
    can be, each count a multiple of what keeps count * pixels (the GEMMs' column count and row
    stride) a multiple of 4, so that the GEMMs load 4-wide vectors."""
    per_image = max(g.rows * g.group, g.out_channels) * g.pixels
    fit = max(1, min(num, CHUNK_ELEMENTS // max(per_image, 1)))
    multiple = 4 // math.gcd(g.pixels, 4)
    if fit >= multiple:
        fit -= fit % multiple
    even = -(-num // -(-num // fit))  # the same number of chunks, balanced
    step = min(fit, -(-even // multiple) * multiple)
    for start in range(0, num, step):
        yield start, min(step, num - start)


def _im2col(x, start, count, g, col):
    n = g.channels * count * g.pixels
    image = g.channels * g.height * g.width
    _kernels.get("im2col", col.dtype).launch(
        n, n, memory.pointer(x, start * image), count, g.channels, g.height, g.width, *g._args(), col)


def _col2im(col, start, count, g, dx):
    image = g.channels * g.height * g.width
    n = count * image
    _kernels.get("col2im", col.dtype).launch(
        n, n, col, count, g.channels, g.height, g.width, *g._args(), memory.pointer(dx, start * image))


def _convolve(x, w, bias, y, num, g):
    """y = conv(x, w) (+ bias per output channel) for `num` images."""
    M, K, S = g.out_channels // g.group, g.rows, g.pixels
    if g.pointwise:
        for grp in range(g.group):
            gemm(False, False, M, S, K, 1.0, w, x, 0.0, y, offset_a=grp * M * K, offset_b=grp * K * S,
                 offset_c=grp * M * S, ldb=S, ldc=S, batch=num, stride_b=g.channels * S,
                 stride_c=g.out_channels * S)
        if bias is not None:
            mf.channel_affine(y, g.out_channels, S, bias=bias)
        return
    for start, count in _chunks(num, g):
        N = count * S
        col = memory.empty(g.rows * g.group * N, y.dtype)
        out = memory.empty(g.out_channels * N, y.dtype)
        _im2col(x, start, count, g, col)
        gemm(False, False, M, N, K, 1.0, w, col, 0.0, out, batch=g.group, stride_a=M * K, stride_b=K * N,
             stride_c=M * N)
        mf.swap_axes01(out, g.out_channels, count, S, memory.region(y, start * g.out_channels * S, g.out_channels * N),
                       bias)


def _convolve_gradients(dy, x, w, dw, dx, num, g):
    """dw += dconv/dw (when dw is given) and dx = dconv/dx (when dx is given) for `num` images."""
    M, K, S = g.out_channels // g.group, g.rows, g.pixels
    if dw is None and dx is None:
        return
    if dw is None and g.pointwise:
        for grp in range(g.group):
            gemm(True, False, K, S, M, 1.0, w, dy, 0.0, dx, offset_a=grp * M * K, offset_b=grp * M * S,
                 offset_c=grp * K * S, ldb=S, ldc=S, batch=num, stride_b=g.out_channels * S,
                 stride_c=g.channels * S)
        return
    for start, count in _chunks(num, g):
        N = count * S
        dyt = memory.empty(g.out_channels * N, dy.dtype)
        mf.swap_axes01(memory.region(dy, start * g.out_channels * S, g.out_channels * N), count,
                       g.out_channels, S, dyt)
        col = memory.empty(g.rows * g.group * N, dy.dtype)
        if dw is not None:
            _im2col(x, start, count, g, col)
            gemm(False, True, M, K, N, 1.0, dyt, col, 1.0, dw, batch=g.group, stride_a=M * N, stride_b=K * N,
                 stride_c=M * K)
        if dx is not None:
            gemm(True, False, K, N, M, 1.0, w, dyt, 0.0, col, batch=g.group, stride_a=M * K, stride_b=M * N,
                 stride_c=K * N)
            _col2im(col, start, count, g, dx)


class ConvolutionGPU(GPUHalf):
    """Convolution (bottom: image side, top: output side) or, `transposed`, Deconvolution (the
    other way round) of 2-D images on the channel axis `axis`; the weights and bias are the
    layer's parameter blobs. The batch and image sizes are read from the blobs of each call."""

    def __init__(self, *, layer, axis, channels, num_output, kernel, pad, stride, dilation, group, bias_term,
                 transposed):
        self.layer, self.axis = layer, axis
        self.image_channels, self.output_channels = (num_output, channels) if transposed else (channels, num_output)
        self.kernel, self.pad, self.stride, self.dilation = kernel, pad, stride, dilation
        self.group, self.bias_term, self.transposed = group, bias_term, transposed

    def _geometry(self, bottom, top):
        """(Geometry, number of images) of these blobs."""
        image_side, output_side = (top[0], bottom[0]) if self.transposed else (bottom[0], top[0])
        g = Geometry(self.image_channels, *image_side.shape[self.axis + 1:], self.output_channels,
                     *output_side.shape[self.axis + 1:], self.kernel, self.pad, self.stride, self.dilation, self.group)
        return g, bottom[0].count(0, self.axis)

    def forward(self, bottom, top):
        g, num = self._geometry(bottom, top)
        params = self.layer.blobs
        w = params[0].gpu_data_readonly()
        bias = params[1].gpu_data_readonly() if self.bias_term else None
        for b, t in zip(bottom, top):
            x, y = b.gpu_data_readonly(), t.gpu_data
            if self.transposed:  # the convolution's data gradient, the bottom as the output side
                _convolve_gradients(x, None, w, None, y, num, g)
                if bias is not None:
                    mf.channel_affine(y, self.image_channels, g.height * g.width, bias=bias)
            else:
                _convolve(x, w, bias, y, num, g)

    def backward(self, top, propagate_down, bottom):
        g, num = self._geometry(bottom, top)
        params = self.layer.blobs
        need_weight = self.layer.param_gradient_wanted(0)
        need_bias = self.bias_term and self.layer.param_gradient_wanted(1)
        w = params[0].gpu_data_readonly()
        dw = params[0].gpu_diff if need_weight else None
        for i, (b, t) in enumerate(zip(bottom, top)):
            dy = t.gpu_diff_readonly()
            if need_bias:  # db[c] += sum over images and pixels of dy
                mf.channel_reduce(dy, num, t.shape[self.axis], t.count(self.axis + 1), params[1].gpu_diff, beta=1.0)
            x = b.gpu_data_readonly() if need_weight else None
            dx = b.gpu_diff if propagate_down[i] else None
            if self.transposed:  # the top is the image side
                if need_weight:
                    _convolve_gradients(x, dy, w, dw, None, num, g)
                if dx is not None:
                    _convolve(dy, w, None, dx, num, g)
            else:
                _convolve_gradients(dy, x, w, dw, dx, num, g)
