"""The GPU half of the neuron layers (neuron.cu): forward `<kernel>_forward(n, x, y, scalars...)`,
backward `<kernel>_backward(n, dy, x, y, dx, scalars...)`, as NeuronLayer's CPU code; PReLU's
per-channel slopes; Threshold's forward (it has no backward). A layer whose backward needs its input
(`keeps_input`) keeps a device copy of it when it runs in place, taken before forward overwrites it.
"""
from nvcaffe_py.backends.cuda import kernels, memory
from nvcaffe_py.backends.cuda import math_functions as mf
from nvcaffe_py.backends.cuda.gpu_half import DeviceBuffer, GPUHalf

_kernels = kernels.Source(__file__, "neuron.cu")


class NeuronForwardGPU(GPUHalf):
    """y = f(x) by `<kernel>_forward`; on its own, the half of Threshold, which has no gradient."""

    def __init__(self, *, kernel, scalars=()):
        self.kernel, self.scalars = kernel, tuple(scalars)

    def forward(self, bottom, top):
        x = bottom[0].gpu_data_readonly()
        n = x.size
        _kernels.get(f"{self.kernel}_forward", x.dtype).launch(n, n, x, top[0].gpu_data, *self.scalars)


class NeuronGPU(NeuronForwardGPU):
    """Forward and backward, dx = dy * f'(.) by `<kernel>_backward`."""

    def __init__(self, *, kernel, scalars=(), keeps_input, dtype):
        super().__init__(kernel=kernel, scalars=scalars)
        self.keeps_input = keeps_input
        self.input_copy = DeviceBuffer(dtype)

    def _copies_input(self, bottom, top):
        return self.keeps_input and top[0].shares_data_with(bottom[0])

    def keep_input(self, bottom, top):
        """Before forward: copy the input where forward is about to overwrite it."""
        if self._copies_input(bottom, top):
            x = bottom[0].gpu_data_readonly()
            memory.copy(self.input_copy.get(x.size), x)

    def forward_input(self, bottom, top):
        """In backward: the input of the last forward, also when it ran in place."""
        if self._copies_input(bottom, top):
            return self.input_copy.get(bottom[0].count())
        return bottom[0].gpu_data_readonly()

    def forward(self, bottom, top):
        self.keep_input(bottom, top)
        super().forward(bottom, top)

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        x = self.forward_input(bottom, top)
        dy, y = top[0].gpu_diff_readonly(), top[0].gpu_data_readonly()
        n = x.size
        _kernels.get(f"{self.kernel}_backward", dy.dtype).launch(n, n, dy, x, y, bottom[0].gpu_diff, *self.scalars)


class PReLUGPU(NeuronGPU):
    """ReLU with the learned slopes of `layer.blobs[0]`: one per channel (axis 1), or one shared."""

    def __init__(self, *, layer, channel_shared, dtype):
        super().__init__(kernel="prelu", keeps_input=True, dtype=dtype)
        self.layer, self.channel_shared = layer, channel_shared
        self.slope_terms = DeviceBuffer(dtype)

    def _shape_args(self, bottom):
        """(channels, pixels per channel, channels per slope) for the prelu kernels."""
        channels = bottom[0].channels
        return channels, bottom[0].count(2), channels if self.channel_shared else 1

    def forward(self, bottom, top):
        self.keep_input(bottom, top)
        x, slope = bottom[0].gpu_data_readonly(), self.layer.blobs[0].gpu_data_readonly()
        channels, dim, div = self._shape_args(bottom)
        n = x.size
        _kernels.get("prelu_forward", x.dtype).launch(n, n, channels, dim, x, slope, div, top[0].gpu_data)

    def backward(self, top, propagate_down, bottom):
        x, dy = self.forward_input(bottom, top), top[0].gpu_diff_readonly()
        channels, dim, div = self._shape_args(bottom)
        n = x.size
        # The slope gradient first: an in-place bottom diff overwrites the top diff.
        if self.layer.param_gradient_wanted(0):
            terms = self.slope_terms.get(n)
            _kernels.get("prelu_slope_terms", dy.dtype).launch(n, n, dy, x, terms)
            slope_diff = self.layer.blobs[0].gpu_diff
            if self.channel_shared:
                mf.channel_reduce(terms, 1, 1, n, slope_diff, beta=1.0)
            else:
                mf.channel_reduce(terms, bottom[0].num, channels, dim, slope_diff, beta=1.0)
        if propagate_down[0]:
            slope = self.layer.blobs[0].gpu_data_readonly()
            _kernels.get("prelu_backward", dy.dtype).launch(n, n, channels, dim, dy, x, slope, div, bottom[0].gpu_diff)
