"""The gradient checker itself: it must catch wrong gradients wherever they are (each bottom, each
parameter, each top's contribution), skip kinks only when asked, and work in float64."""
import numpy as np
import pytest

from nvcaffe_py import rng
from nvcaffe_py.errors import CaffeError
from nvcaffe_py.gradient_check import check_layer_gradient, setup_layer
from nvcaffe_py.layer import Layer
from nvcaffe_py.proto import caffe_pb2
from nvcaffe_py.registry import register_layer

RNG = np.random.default_rng(3)
X = RNG.standard_normal((2, 3, 4))
Y = RNG.standard_normal((2, 3, 4))


@register_layer("GradCheckTestProduct")
class ProductLayer(Layer):
    """top = bottom[0] * bottom[1]; `wrong_bottom` plants a bug in one bottom's gradient."""
    exact_num_bottom = 2
    exact_num_top = 1
    wrong_bottom = None

    def reshape(self, bottom, top):
        top[0].reshape_like(bottom[0])

    def forward_cpu(self, bottom, top):
        np.multiply(bottom[0].data, bottom[1].data, out=top[0].data)

    def backward_cpu(self, top, propagate_down, bottom):
        for i in range(2):
            if propagate_down[i]:
                np.multiply(top[0].diff, bottom[1 - i].data, out=bottom[i].diff)
        if self.wrong_bottom is not None and propagate_down[self.wrong_bottom]:
            bottom[self.wrong_bottom].diff.flat[5] += 1e-3


@register_layer("GradCheckTestProductWrongBottom1")
class ProductWrongBottom1Layer(ProductLayer):
    wrong_bottom = 1


@register_layer("GradCheckTestChannelScale")
class ChannelScaleLayer(Layer):
    """top = bottom * w[c] + b[c] over axis 1, with learned w and b (filled at setup)."""
    exact_num_bottom = 1
    exact_num_top = 1
    wrong_param = None

    def setup(self, bottom, top):
        gaussian = caffe_pb2.FillerParameter(type="gaussian", std=1)
        channels = bottom[0].shape[1]
        self.blobs.append(self.new_param_blob((channels,), gaussian))
        self.blobs.append(self.new_param_blob((channels,), gaussian))

    def reshape(self, bottom, top):
        top[0].reshape_like(bottom[0])

    def forward_cpu(self, bottom, top):
        w, b = (p.data[:, None] for p in self.blobs)
        np.add(bottom[0].data * w, b, out=top[0].data)

    def backward_cpu(self, top, propagate_down, bottom):
        dy = top[0].diff
        self.blobs[0].diff[...] += (dy * bottom[0].data).sum(axis=(0, 2))
        self.blobs[1].diff[...] += dy.sum(axis=(0, 2))
        if self.wrong_param is not None:
            self.blobs[self.wrong_param].diff[1] *= 1.001
        if propagate_down[0]:
            np.multiply(dy, self.blobs[0].data[:, None], out=bottom[0].diff)


@register_layer("GradCheckTestChannelScaleWrongBias")
class ChannelScaleWrongBiasLayer(ChannelScaleLayer):
    wrong_param = 1


@register_layer("GradCheckTestRectifier")
class RectifierLayer(Layer):
    """max(x, 0) with slope 1 taken at x == 0: right everywhere except at the kink."""
    exact_num_bottom = 1
    exact_num_top = 1

    def reshape(self, bottom, top):
        top[0].reshape_like(bottom[0])

    def forward_cpu(self, bottom, top):
        np.maximum(bottom[0].data, 0, out=top[0].data)

    def backward_cpu(self, top, propagate_down, bottom):
        np.multiply(top[0].diff, bottom[0].data >= 0, out=bottom[0].diff)


@register_layer("GradCheckTestTwoTops")
class TwoTopsLayer(Layer):
    """top[0] = 2x, top[1] = x**2; `forgets_top1` drops the second top's contribution."""
    exact_num_bottom = 1
    exact_num_top = 2
    forgets_top1 = False

    def reshape(self, bottom, top):
        for t in top:
            t.reshape_like(bottom[0])

    def forward_cpu(self, bottom, top):
        np.multiply(bottom[0].data, 2, out=top[0].data)
        np.square(bottom[0].data, out=top[1].data)

    def backward_cpu(self, top, propagate_down, bottom):
        grad = 2 * top[0].diff
        if not self.forgets_top1:
            grad += 2 * bottom[0].data * top[1].diff
        bottom[0].diff[...] = grad


@register_layer("GradCheckTestTwoTopsForgetsTop1")
class TwoTopsForgetsTop1Layer(TwoTopsLayer):
    forgets_top1 = True


@register_layer("GradCheckTestRandomMask")
class RandomMaskLayer(Layer):
    """x times a fresh random 0/2 mask each forward, as Dropout: checkable only if every
    forward of the check sees the same random stream."""
    exact_num_bottom = 1
    exact_num_top = 1

    def reshape(self, bottom, top):
        top[0].reshape_like(bottom[0])

    def forward_cpu(self, bottom, top):
        self.mask = 2.0 * (rng.generator().random(bottom[0].shape) < 0.5)
        np.multiply(bottom[0].data, self.mask, out=top[0].data)

    def backward_cpu(self, top, propagate_down, bottom):
        np.multiply(top[0].diff, self.mask, out=bottom[0].diff)


def test_correct_gradients_pass():
    check_layer_gradient('type: "GradCheckTestProduct"', [X, Y])
    check_layer_gradient('type: "GradCheckTestChannelScale"', [X])
    check_layer_gradient('type: "GradCheckTestTwoTops"', [X], num_tops=2)


def test_wrong_gradient_in_a_bottom_is_caught_and_located():
    with pytest.raises(AssertionError, match=r"\(GradCheckTestProductWrongBottom1\): gradient of bottom\[1\] element \(0, 1, 1\)"):
        check_layer_gradient('type: "GradCheckTestProductWrongBottom1"', [X, Y])
    # Bottoms left out of the check (labels, say) are not examined.
    check_layer_gradient('type: "GradCheckTestProductWrongBottom1"', [X, Y], check_bottoms=[0])


def test_wrong_gradient_in_a_param_blob_is_caught():
    # A 0.1% error in one element: below float32's finite-difference noise, caught in float64.
    with pytest.raises(AssertionError, match=r"gradient of param\[1\] element \(1,\)"):
        check_layer_gradient('type: "GradCheckTestChannelScaleWrongBias"', [X])
    check_layer_gradient('type: "GradCheckTestChannelScaleWrongBias"', [X], check_params=False)


def test_every_top_contributes_to_the_objective():
    with pytest.raises(AssertionError, match=r"gradient of bottom\[0\]"):
        check_layer_gradient('type: "GradCheckTestTwoTopsForgetsTop1"', [X], num_tops=2)


def test_kink_is_checked_unless_skipped():
    x = X.copy()
    x.flat[3] = 0.0  # exactly on the kink: finite differences give slope 1/2
    with pytest.raises(AssertionError, match=r"element \(0, 0, 3\)"):
        check_layer_gradient('type: "GradCheckTestRectifier"', [x])
    check_layer_gradient('type: "GradCheckTestRectifier"', [x], kink=0.0, kink_range=1e-3)


def test_stochastic_layer_sees_the_same_stream_in_every_forward():
    check_layer_gradient('type: "GradCheckTestRandomMask"', [X])


def test_runs_in_float64():
    layer = check_layer_gradient('type: "GradCheckTestChannelScale"', [X.astype(np.float32)])
    assert layer.dtype == np.float64 and all(p.dtype == np.float64 for p in layer.blobs)


def test_setup_layer_builds_shapes_and_checks_blob_counts():
    layer, bottoms, tops = setup_layer('type: "GradCheckTestProduct"', [X, Y])
    assert tops[0].shape == X.shape and bottoms[1].dtype == np.float64
    with pytest.raises(CaffeError, match="exactly 2 bottom"):
        setup_layer('name: "p" type: "GradCheckTestProduct"', [X])
