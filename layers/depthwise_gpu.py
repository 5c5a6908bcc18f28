"""The GPU half of a depthwise Convolution or Deconvolution (depthwise.cu): direct kernels
instead of im2col and one tiny GEMM per channel. Arrays are in the convolution view (see
conv_gpu.py): Deconvolution's forward is the view's transposed pass, its top the image side."""
from nvcaffe_py.backends.cuda import kernels
from nvcaffe_py.backends.cuda import math_functions as mf
from nvcaffe_py.backends.cuda.gpu_half import GPUHalf

_kernels = kernels.Source(__file__, "depthwise.cu")


class DepthwiseConvolutionGPU(GPUHalf):
    def __init__(self, *, layer, axis, channels, multiplier, kernel, pad, stride, dilation, bias_term, transposed):
        self.layer, self.axis = layer, axis  # the layer's blobs: weights (C * M, 1, kh, kw), bias
        self.channels, self.multiplier = channels, multiplier
        self.kernel, self.pad, self.stride, self.dilation = kernel, pad, stride, dilation
        self.bias_term, self.transposed = bias_term, transposed

    def _args(self, image_side, output_side):
        return (self.channels, self.multiplier, *image_side.shape[self.axis + 1:],
                *output_side.shape[self.axis + 1:], *self.kernel, *self.pad, *self.stride, *self.dilation)

    def _sides(self, bottom, top):
        return (top, bottom) if self.transposed else (bottom, top)

    def forward(self, bottom, top):
        w = self.layer.blobs[0].gpu_data_readonly()
        bias = self.layer.blobs[1].gpu_data_readonly() if self.bias_term else None
        for b, t in zip(bottom, top):
            images, outputs = self._sides(b, t)
            name = "depthwise_transposed" if self.transposed else "depthwise_forward"
            n = t.count()
            _kernels.get(name, w.dtype).launch(n, n, b.gpu_data_readonly(), w, bias, *self._args(images, outputs),
                                               t.gpu_data)

    def backward(self, top, propagate_down, bottom):
        blobs = self.layer.blobs
        w = blobs[0].gpu_data_readonly()
        for i, (b, t) in enumerate(zip(bottom, top)):
            images, outputs = self._sides(b, t)
            args, num = self._args(images, outputs), b.count(0, self.axis)
            dy = t.gpu_diff_readonly()
            if self.bias_term and self.layer.param_gradient_wanted(1):
                mf.channel_reduce(dy, num, t.shape[self.axis], t.count(self.axis + 1), blobs[1].gpu_diff, beta=1.0)
            if self.layer.param_gradient_wanted(0):
                # the view's images and output-side diff: Deconvolution's are its top diff and bottom data
                view_images, view_diff = (dy, b.gpu_data_readonly()) if self.transposed else (b.gpu_data_readonly(), dy)
                taps = blobs[0].count()
                blocks = min(taps, kernels.grid_blocks(taps * kernels.BLOCK))
                _kernels.get("depthwise_weight_gradient", w.dtype)((blocks, 1, 1), (kernels.BLOCK, 1, 1), num,
                                                                   view_images, view_diff, *args, blobs[0].gpu_diff)
            if propagate_down[i]:
                n = b.count()
                name = "depthwise_forward" if self.transposed else "depthwise_transposed"
                _kernels.get(name, w.dtype).launch(n, n, dy, w, None, *args, b.gpu_diff)
