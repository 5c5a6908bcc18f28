"""Element-wise ("neuron") layers, as Caffe's NeuronLayer family: one bottom, one top of its shape.

ReLU, PReLU, ELU, Sigmoid, TanH, AbsVal, Power, Exp, Log, BNLL, Threshold, Clip, Swish, and the
forks' ReLU6.
Each may run in place (`top: same name as bottom`), so forward reads its input before writing,
and backward reads only what survives: the output, or a copy of the input the base class keeps.
"""
import math

import numpy as np

from nvcaffe_py.backends.cpu import threads
from nvcaffe_py.conformance import Case, normal, uniform
from nvcaffe_py.layer import Layer
from nvcaffe_py.proto import caffe_pb2
from nvcaffe_py.registry import register_layer

from .neuron_gpu import NeuronForwardGPU, NeuronGPU, PReLUGPU

# For the gradient check of a kink at 0 (ReLU's and its kin): central differences straddling it
# are wrong, so inputs closer to 0 than this are not checked.
_KINK_AT_0 = {"kink": 0.0, "kink_range": 1e-3}


class NeuronLayer(Layer):
    """One bottom, one top of the same shape, y = f(x) element by element.

    A subclass writes f(x) into `y` in `activate(x, y)` (y may be x's own memory when in place)
    and returns dy/dx (an array or scalar) from `derivative(x, y)`. In place, bottom.data holds
    the output by backward time, so `x` there is the output too, unless the subclass sets
    `backward_needs_input`: then `x` is a copy of the input taken before forward overwrote it.

    A subclass whose activate and derivative treat each item of the batch on its own, keeping
    no state between calls, sets `splits_batch`: its CPU passes are then shared among the CPU
    threads, a slice of the batch (axis 0) each.
    """
    exact_num_bottom = 1
    exact_num_top = 1
    in_place_capable = True
    backward_needs_input = False
    splits_batch = False
    _input_copy = None

    def _batch_parts(self, x):
        if not self.splits_batch or x.ndim == 0:
            return [Ellipsis]
        return threads.parts(x.shape[0], x[:1].size)

    def reshape(self, bottom, top):
        top[0].reshape_like(bottom[0])

    def _keeps_input_copy(self, bottom, top):
        return self.backward_needs_input and not self._forward_only and top[0].shares_data_with(bottom[0])

    _forward_only = False

    def forward_only(self):
        """No backward follows: an in-place forward keeps no copy of its input."""
        self._forward_only = True

    def forward_cpu(self, bottom, top):
        x = bottom[0].data_readonly()
        if self._keeps_input_copy(bottom, top):
            if self._input_copy is None or self._input_copy.shape != x.shape:
                self._input_copy = np.empty_like(x)
            np.copyto(self._input_copy, x)
        y = top[0].data
        threads.run(lambda part: self.activate(x[part], y[part]), self._batch_parts(x))

    def forward_input(self, bottom, top):
        """The input of the last forward, also when an in-place forward overwrote bottom.data."""
        return self._input_copy if self._keeps_input_copy(bottom, top) else bottom[0].data_readonly()

    def backward_cpu(self, top, propagate_down, bottom):
        if propagate_down[0]:
            x, y, dy = self.forward_input(bottom, top), top[0].data_readonly(), top[0].diff_readonly()
            dx = bottom[0].diff

            def part(index):
                # One ufunc call, so bottom.diff may alias top.diff (in place).
                np.multiply(dy[index], self.derivative(x[index], y[index]), out=dx[index])

            threads.run(part, self._batch_parts(x))

    def activate(self, x, y):
        raise NotImplementedError

    def derivative(self, x, y):
        raise NotImplementedError

    # GPU: neuron.cu's <gpu_kernel>_forward / _backward, given gpu_scalars() after the arrays. A
    # type without kernels (Swish) leaves gpu_kernel None: make_gpu gives None, its CPU code runs.
    gpu_kernel = None

    def gpu_scalars(self):
        return ()

    def make_gpu(self):
        if self.gpu_kernel is None:
            return None
        return NeuronGPU(kernel=self.gpu_kernel, scalars=self.gpu_scalars(), keeps_input=self.backward_needs_input,
                         dtype=self.dtype)


def rectify(x, negative_slope, y):
    """ReLU's forward: y = max(x, 0), plus negative_slope * min(x, 0) for a slope other than 0."""
    if negative_slope == 0:
        np.maximum(x, 0, out=y)
    else:
        leaky_rectify(x, negative_slope, y)


def leaky_rectify(x, negative_slope, y):
    """y = max(x, 0) + negative_slope * min(x, 0); negative_slope a scalar or broadcastable array."""
    negative_part = np.minimum(x, 0) * negative_slope
    np.maximum(x, 0, out=y)
    y += negative_part


def leaky_rectify_derivative(x, negative_slope):
    """1 where x > 0, else negative_slope; a boolean mask for slope 0 (multiplying by it is one
    branch-free pass, several times faster than np.where on mixed signs)."""
    positive = np.greater(x, 0)
    if np.ndim(negative_slope) == 0 and negative_slope == 0:
        return positive
    slope = np.multiply(~positive, negative_slope, dtype=x.dtype)
    slope += positive  # exact: 1 or the slope, never 1 - s + s
    return slope


def sigmoid(x, out=None):
    """1 / (1 + exp(-x)), through tanh as Caffe does: no overflow for large |x|. Written into
    `out` (which may be x) when given, else into a new array; returns it."""
    out = np.multiply(x, 0.5, out=out)
    np.tanh(out, out=out)
    out *= 0.5
    out += 0.5
    return out


@register_layer("ReLU")
class ReLULayer(NeuronLayer):
    splits_batch = True
    cases = [Case("", [(2, 3, 4, 5)], **_KINK_AT_0),
             Case("", [(2, 3, 4, 5)], in_place=True, **_KINK_AT_0),
             Case("relu_param { negative_slope: 0.1 }", [(2, 3, 4, 5)], **_KINK_AT_0),
             Case("relu_param { negative_slope: 0.1 }", [(2, 3, 4, 5)], in_place=True, **_KINK_AT_0),
             # A negative slope flips the output's sign: in place, backward needs a copy of x.
             Case("relu_param { negative_slope: -0.2 }", [(2, 3, 4, 5)], **_KINK_AT_0),
             Case("relu_param { negative_slope: -0.2 }", [(2, 3, 4, 5)], in_place=True, **_KINK_AT_0)]
    gpu_kernel = "relu"

    def gpu_scalars(self):
        return (self.negative_slope,)

    def setup(self, bottom, top):
        self.negative_slope = self.layer_param.relu_param.negative_slope
        # With slope >= 0 the output is positive exactly where the input is, so backward can
        # test the (possibly overwritten) bottom data; a negative slope flips that sign.
        self.backward_needs_input = self.negative_slope < 0

    def activate(self, x, y):
        rectify(x, self.negative_slope, y)

    def derivative(self, x, y):
        return leaky_rectify_derivative(x, x.dtype.type(self.negative_slope))


@register_layer("ReLU6")
class ReLU6Layer(ReLULayer):
    """The forks' (MobileNet v2's) y = min(max(x, 0), 6), plus NVCaffe's negative_slope * min(x, 0)
    from relu_param (default 0: the plain fork layer); the gradient passes where 0 < x < 6, the
    slope where x <= 0. ReLU's setup serves: with slope >= 0 the output is in (0, 6), at most 0,
    or 6 exactly where the input is, so backward may test an overwritten bottom."""
    cases = [Case("", [normal((2, 3, 4, 5), scale=5, shift=2)], **_KINK_AT_0),
             Case("", [normal((2, 3, 4, 5), scale=5, shift=2)], in_place=True, **_KINK_AT_0),
             Case("relu_param { negative_slope: 0.1 }", [normal((2, 3, 4, 5), scale=5, shift=2)], in_place=True,
                  **_KINK_AT_0),
             Case("relu_param { negative_slope: -0.2 }", [normal((2, 3, 4, 5), scale=5, shift=2)], in_place=True,
                  **_KINK_AT_0)]
    gpu_kernel = "relu6"

    def activate(self, x, y):
        negative_part = np.minimum(x, 0) * self.negative_slope
        np.clip(x, 0, 6, out=y)
        y += negative_part

    def derivative(self, x, y):
        slope = np.where(x <= 0, x.dtype.type(self.negative_slope), x.dtype.type(0))
        slope[(x > 0) & (x < 6)] = 1
        return slope


# Slopes of both signs, one per channel, for PReLU's cases (its default fills 0.25 everywhere).
_LEARNED_SLOPES = 'prelu_param { filler { type: "uniform" min: -0.5 max: 0.5 } }'


@register_layer("PReLU")
class PReLULayer(NeuronLayer):
    """ReLU with a learned negative slope per channel (axis 1), or one for all channels."""
    splits_batch = True
    backward_needs_input = True  # the slope gradient needs x
    cases = [Case("", [(2, 3, 4, 5)], **_KINK_AT_0),
             Case(_LEARNED_SLOPES, [(2, 3, 4, 5)], **_KINK_AT_0),
             Case(_LEARNED_SLOPES, [(2, 3, 4, 5)], in_place=True, **_KINK_AT_0),
             Case(_LEARNED_SLOPES, [(6, 4)], **_KINK_AT_0),
             Case("prelu_param { channel_shared: true }", [(2, 3, 4, 5)], **_KINK_AT_0),
             Case("prelu_param { channel_shared: true }", [(2, 3, 4, 5)], in_place=True, **_KINK_AT_0)]

    def setup(self, bottom, top):
        param = self.layer_param.prelu_param
        self.channel_shared = param.channel_shared
        if bottom[0].num_axes < 2:
            raise self.error(f"bottom must have at least 2 axes, got shape {bottom[0].shape}")
        channels = bottom[0].channels
        if not self.blobs:
            filler = param.filler
            if not param.HasField("filler"):
                filler = caffe_pb2.FillerParameter(type="constant", value=0.25)
            self.blobs.append(self.new_param_blob(() if self.channel_shared else (channels,), filler))
        expected = 1 if self.channel_shared else channels
        if self.blobs[0].count() != expected:
            raise self.error(f"negative slope blob has {self.blobs[0].count()} values; "
                             f"channel_shared={self.channel_shared} with {channels} channels needs {expected}")
        self.param_propagate_down = [True]

    def reshape(self, bottom, top):
        if bottom[0].num_axes < 2:
            raise self.error(f"bottom must have at least 2 axes, got shape {bottom[0].shape}")
        if not self.channel_shared and bottom[0].channels != self.blobs[0].count():
            raise self.error(f"bottom has {bottom[0].channels} channels but the layer has "
                             f"{self.blobs[0].count()} slopes")
        super().reshape(bottom, top)

    def _slope(self, ndim):
        """The slopes shaped to broadcast against the bottom (channel axis 1)."""
        slope = self.blobs[0].data_readonly()
        return slope if self.channel_shared else slope.reshape((1, -1) + (1,) * (ndim - 2))

    def activate(self, x, y):
        leaky_rectify(x, self._slope(x.ndim), y)

    def derivative(self, x, y):
        return leaky_rectify_derivative(x, self._slope(x.ndim))

    def backward_cpu(self, top, propagate_down, bottom):
        # The slope gradient first: an in-place bottom diff would overwrite top diff.
        if self.param_gradient_wanted(0):
            x = self.forward_input(bottom, top)
            axes = None if self.channel_shared else (0,) + tuple(range(2, x.ndim))
            self.blobs[0].diff[...] += np.sum(top[0].diff_readonly() * np.minimum(x, 0), axis=axes)
        super().backward_cpu(top, propagate_down, bottom)

    def make_gpu(self):
        return PReLUGPU(layer=self, channel_shared=self.channel_shared, dtype=self.dtype)


@register_layer("ELU")
class ELULayer(NeuronLayer):
    splits_batch = True
    cases = [Case("", [(2, 3, 4, 5)], **_KINK_AT_0),
             Case("elu_param { alpha: 0.5 }", [(2, 3, 4, 5)], **_KINK_AT_0),
             Case("elu_param { alpha: 0.5 }", [(2, 3, 4, 5)], in_place=True, **_KINK_AT_0),
             # A negative alpha: the output no longer tells the sign of x; in place keeps a copy.
             Case("elu_param { alpha: -0.3 }", [(2, 3, 4, 5)], **_KINK_AT_0),
             Case("elu_param { alpha: -0.3 }", [(2, 3, 4, 5)], in_place=True, **_KINK_AT_0)]
    gpu_kernel = "elu"

    def gpu_scalars(self):
        return (self.alpha,)

    def setup(self, bottom, top):
        self.alpha = self.layer_param.elu_param.alpha
        # y + alpha = alpha * exp(x) for x <= 0, and y > 0 exactly where x > 0 unless alpha < 0.
        self.backward_needs_input = self.alpha < 0

    def activate(self, x, y):
        negative_part = np.minimum(x, 0)
        np.expm1(negative_part, out=negative_part)
        negative_part *= self.alpha
        np.maximum(x, 0, out=y)
        y += negative_part

    def derivative(self, x, y):
        return np.where(x > 0, x.dtype.type(1), y + self.alpha)


@register_layer("Sigmoid")
class SigmoidLayer(NeuronLayer):
    splits_batch = True
    cases = [Case("", [normal((2, 3, 4, 5), scale=3)]),
             Case("", [normal((2, 3, 4, 5), scale=3)], in_place=True)]
    gpu_kernel = "sigmoid"

    def activate(self, x, y):
        sigmoid(x, out=y)

    def derivative(self, x, y):
        return y * (1 - y)


@register_layer("TanH")
class TanHLayer(NeuronLayer):
    splits_batch = True
    cases = [Case("", [(2, 3, 4, 5)]),
             Case("", [(2, 3, 4, 5)], in_place=True)]
    gpu_kernel = "tanh"

    def activate(self, x, y):
        np.tanh(x, out=y)

    def derivative(self, x, y):
        return 1 - y * y


@register_layer("AbsVal")
class AbsValLayer(NeuronLayer):
    splits_batch = True
    backward_needs_input = True  # |x| has lost the sign
    gpu_kernel = "absval"
    cases = [Case("", [(2, 3, 4, 5)], **_KINK_AT_0),
             Case("", [(2, 3, 4, 5)], in_place=True, **_KINK_AT_0)]

    def activate(self, x, y):
        np.abs(x, out=y)

    def derivative(self, x, y):
        return np.sign(x)


@register_layer("Power")
class PowerLayer(NeuronLayer):
    """y = (shift + scale * x) ^ power."""
    splits_batch = True
    cases = [Case("power_param { power: 2 scale: 0.5 shift: 3 }", [(2, 3, 4, 5)]),
             Case("power_param { power: 2 scale: 0.5 shift: 3 }", [(2, 3, 4, 5)], in_place=True),
             Case("power_param { power: 0.5 scale: 2 shift: 1 }", [uniform((2, 3, 4), 0.1, 2)]),
             # A constant derivative (power 1, or power * scale 0): backward reads no input.
             Case("power_param { power: 1 scale: -2 shift: 0.5 }", [(2, 3, 4, 5)]),
             Case("power_param { power: 1 scale: -2 shift: 0.5 }", [(2, 3, 4, 5)], in_place=True),
             Case("power_param { power: 3 scale: 0 shift: 1.5 }", [(2, 3, 4)], in_place=True)]
    gpu_kernel = "power"

    def gpu_scalars(self):
        return (self.power, self.scale, self.shift)

    def setup(self, bottom, top):
        p = self.layer_param.power_param
        self.power, self.scale, self.shift = p.power, p.scale, p.shift
        # power 1 or scale*power 0: a constant derivative, no input needed.
        self.constant_derivative = self.power == 1 or self.power * self.scale == 0
        self.backward_needs_input = not self.constant_derivative

    def activate(self, x, y):
        np.multiply(x, self.scale, out=y)
        y += self.shift
        if self.power != 1:
            np.power(y, self.power, out=y)

    def derivative(self, x, y):
        if self.constant_derivative:
            return x.dtype.type(self.power * self.scale)
        base = x * self.scale + self.shift
        return np.power(base, self.power - 1, out=base) * (self.power * self.scale)


def _log_of_base(layer, base):
    """ln(base) for the base fields of Exp and Log, where -1 means e."""
    if base == -1:
        return 1.0
    if base <= 0:
        raise layer.error(f"base must be strictly positive (or -1 for e), got {base}")
    return math.log(base)


@register_layer("Exp")
class ExpLayer(NeuronLayer):
    """y = base ^ (shift + scale * x), computed as outer * exp(inner * x)."""
    splits_batch = True
    cases = [Case("", [(2, 3, 4, 5)]),
             Case("exp_param { base: 2 scale: 0.5 }", [(2, 3, 4, 5)]),
             Case("exp_param { base: 2 scale: 0.5 shift: 1 }", [(2, 3, 4, 5)]),
             Case("exp_param { base: 2 scale: 0.5 shift: 1 }", [(2, 3, 4, 5)], in_place=True)]
    gpu_kernel = "exp"

    def gpu_scalars(self):
        return (self.inner_scale, self.outer_scale)

    def setup(self, bottom, top):
        p = self.layer_param.exp_param
        log_base = _log_of_base(self, p.base)
        self.inner_scale = log_base * p.scale
        self.outer_scale = math.exp(log_base * p.shift)

    def activate(self, x, y):
        np.multiply(x, self.inner_scale, out=y)
        np.exp(y, out=y)
        if self.outer_scale != 1:
            y *= self.outer_scale

    def derivative(self, x, y):
        return y * self.inner_scale


@register_layer("Log")
class LogLayer(NeuronLayer):
    """y = log_base(shift + scale * x)."""
    splits_batch = True
    backward_needs_input = True
    cases = [Case("", [uniform((2, 3, 4, 5), 0.2, 3)]),
             Case("log_param { scale: 0.5 shift: 5 }", [(2, 3, 4, 5)]),
             Case("log_param { base: 2 scale: 0.5 shift: 5 }", [(2, 3, 4, 5)]),
             Case("log_param { base: 2 scale: 0.5 shift: 5 }", [(2, 3, 4, 5)], in_place=True)]
    gpu_kernel = "log"

    def gpu_scalars(self):
        return (self.base_scale, self.scale, self.shift)

    def setup(self, bottom, top):
        p = self.layer_param.log_param
        log_base = _log_of_base(self, p.base)
        if log_base == 0:
            raise self.error("base 1 has no logarithm")
        self.base_scale = 1.0 / log_base
        self.scale, self.shift = p.scale, p.shift

    def activate(self, x, y):
        np.multiply(x, self.scale, out=y)
        y += self.shift
        np.log(y, out=y)
        if self.base_scale != 1:
            y *= self.base_scale

    def derivative(self, x, y):
        base = x * self.scale + self.shift
        return np.divide(self.scale * self.base_scale, base, out=base)


@register_layer("BNLL")
class BNLLLayer(NeuronLayer):
    """Binomial normal log likelihood: y = log(1 + exp(x))."""
    splits_batch = True
    cases = [Case("", [normal((2, 3, 4, 5), scale=4)]),
             Case("", [normal((2, 3, 4, 5), scale=4)], in_place=True)]
    gpu_kernel = "bnll"

    def activate(self, x, y):
        np.logaddexp(x.dtype.type(0), x, out=y)

    def derivative(self, x, y):
        # dy/dx = sigmoid(x) = 1 - exp(-y): the output suffices, so in place needs no copy.
        return -np.expm1(-y)


@register_layer("Threshold")
class ThresholdLayer(NeuronLayer):
    """y = 1 where x > threshold, else 0; it has no gradient (as in Caffe)."""
    splits_batch = True
    cases = [Case("", [(2, 3, 4, 5)]),
             Case("threshold_param { threshold: 0.2 }", [(3, 4, 5)]),
             Case("threshold_param { threshold: 0.2 }", [(3, 4, 5)], in_place=True)]

    def activate(self, x, y):
        np.greater(x, self.layer_param.threshold_param.threshold, out=y)

    backward_cpu = Layer.backward_cpu

    def make_gpu(self):
        return NeuronForwardGPU(kernel="threshold", scalars=(self.layer_param.threshold_param.threshold,))


@register_layer("Clip")
class ClipLayer(NeuronLayer):
    """y = max(min, min(x, max)); the gradient passes where min <= x <= max."""
    splits_batch = True
    backward_needs_input = True  # a clipped output cannot tell x == bound from x beyond it
    gpu_kernel = "clip"
    cases = [Case("clip_param { min: -0.5 max: 0.7 }", [(2, 3, 4, 5)]),
             Case("clip_param { min: -0.5 max: 0.7 }", [(2, 3, 4, 5)], in_place=True)]

    def setup(self, bottom, top):
        p = self.layer_param.clip_param
        if not (p.HasField("min") and p.HasField("max")):
            raise self.error("clip_param needs both min and max")
        self.min, self.max = p.min, p.max

    def gpu_scalars(self):
        return (self.min, self.max)

    def activate(self, x, y):
        np.minimum(x, self.max, out=y)
        np.maximum(y, self.min, out=y)

    def derivative(self, x, y):
        return (x >= self.min) & (x <= self.max)


@register_layer("Swish")
class SwishLayer(NeuronLayer):
    """y = x * sigmoid(beta * x); keeps the sigmoid for backward, so in place needs no copy. It has
    no kernel: its CPU code runs in GPU mode too."""
    cases = [Case("", [(2, 3, 4, 5)]),
             Case("swish_param { beta: 1.5 }", [(2, 3, 4, 5)]),
             Case("swish_param { beta: 1.5 }", [(2, 3, 4, 5)], in_place=True)]

    def setup(self, bottom, top):
        self.beta = self.layer_param.swish_param.beta
        self._sigmoid = None

    def activate(self, x, y):
        if self._sigmoid is None or self._sigmoid.shape != x.shape:
            self._sigmoid = np.empty_like(x)
        np.multiply(x, self.beta, out=self._sigmoid)
        sigmoid(self._sigmoid, out=self._sigmoid)
        np.multiply(x, self._sigmoid, out=y)

    def derivative(self, x, y):
        # d/dx x*s(bx) = s + b*y*(1 - s)
        beta_y = y * self.beta
        return beta_y + self._sigmoid * (1 - beta_y)
