"""Parameter: its top is a learnable blob of parameter_param.shape (zeros until trained or loaded),
e.g. a learned input for other layers."""
import numpy as np

from nvcaffe_py.conformance import Case
from nvcaffe_py.layer import Layer
from nvcaffe_py.registry import register_layer


def _learned_values(layer, bottoms):
    """Values other than the zeros it starts with, as after training."""
    layer.blobs[0].data[...] = np.linspace(-1.0, 2.0, layer.blobs[0].count()).reshape(layer.blobs[0].shape)


@register_layer("Parameter")
class ParameterLayer(Layer):
    exact_num_bottom = 0
    exact_num_top = 1
    cases = [Case("parameter_param { shape { dim: 2 dim: 3 } }", [], prepare=_learned_values),
             Case("parameter_param { shape { dim: 4 } }", [])]

    def setup(self, bottom, top):
        if not self.blobs:  # weights given with the layer are kept
            self.blobs.append(self.new_param_blob(tuple(self.layer_param.parameter_param.shape.dim)))
        self.param_propagate_down = [True]  # the Net replaces this from lr_mult

    def reshape(self, bottom, top):
        # Shared in every reshape: a test net swaps in the train net's blob after set-up.
        top[0].reshape(self.blobs[0].shape)
        top[0].share_data(self.blobs[0])

    def forward_cpu(self, bottom, top):
        pass

    def backward_cpu(self, top, propagate_down, bottom):
        if self.param_gradient_wanted(0):
            diff = self.blobs[0].diff
            diff += top[0].diff_readonly()
