# Python layers that raise, at the stage their param_str names, an exception of their own type.
import caffe


class LayerFailure(Exception):
    """Not a Caffe exception type: it must reach the caller as itself."""


class RaisingLayer(caffe.Layer):
    def setup(self, bottom, top):
        self.check("setup")

    def reshape(self, bottom, top):
        self.check("reshape")
        top[0].reshape(*bottom[0].data.shape)

    def forward(self, bottom, top):
        self.check("forward")
        top[0].data[...] = bottom[0].data

    def backward(self, top, propagate_down, bottom):
        self.check("backward")
        bottom[0].diff[...] = top[0].diff

    def check(self, stage):
        if self.param_str == stage:
            raise LayerFailure(f"failed in {stage}")
