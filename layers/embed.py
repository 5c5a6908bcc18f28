"""Embed: a lookup table, as Caffe's EmbedLayer (a one-hot InnerProduct without the one-hot).

The bottom holds integer indices in [0, input_dim) (stored as floats, as Caffe's blobs are);
top = W[index] + bias, of shape bottom.shape + (num_output,), with W of shape (input_dim, num_output).
Indices have no gradient; the weight gradient adds each top row's diff into the row it read.
"""
import numpy as np

from nvcaffe_py.conformance import Case, labels
from nvcaffe_py.layer import Layer
from nvcaffe_py.registry import register_layer


@register_layer("Embed")
class EmbedLayer(Layer):
    exact_num_bottom = 1
    exact_num_top = 1
    cases = [
        Case('embed_param { num_output: 4 input_dim: 5 weight_filler { type: "gaussian" } '
             'bias_filler { type: "gaussian" } }', [labels((2, 3), 5)]),
        Case('embed_param { num_output: 3 input_dim: 7 bias_term: false weight_filler { type: "gaussian" } }',
             [labels((6,), 7)]),
    ]

    def allow_force_backward(self, bottom_index):
        return False

    def setup(self, bottom, top):
        param = self.layer_param.embed_param
        self.num_output, self.input_dim, self.bias_term = param.num_output, param.input_dim, param.bias_term
        if self.num_output <= 0:
            raise self.error("num_output must be positive")
        if self.input_dim <= 0:
            raise self.error("input_dim must be positive")
        weight_shape = (self.input_dim, self.num_output)
        specs = [("weight", weight_shape, param.weight_filler)]
        if self.bias_term:
            specs.append(("bias", (self.num_output,), param.bias_filler))
        self.init_param_blobs(specs)

    def reshape(self, bottom, top):
        top[0].reshape(bottom[0].shape + (self.num_output,))

    def _indices(self, bottom):
        values = bottom[0].data_readonly().reshape(-1)
        indices = values.astype(np.int64)
        bad = (indices != values) | (indices < 0) | (indices >= self.input_dim)
        if bad.any():
            raise self.error(f"index {values[bad.argmax()]!r} is not an integer in [0, {self.input_dim})")
        return indices

    def forward_cpu(self, bottom, top):
        out = top[0].data.reshape(-1, self.num_output)
        # Indices are checked already; "clip" spares take()'s buffered copy for out-of-range ones.
        np.take(self.blobs[0].data_readonly(), self._indices(bottom), axis=0, out=out, mode="clip")
        if self.bias_term:
            out += self.blobs[1].data_readonly()

    def backward_cpu(self, top, propagate_down, bottom):
        if propagate_down[0]:
            raise self.error("cannot backpropagate to the indices")
        dy = top[0].diff_readonly().reshape(-1, self.num_output)
        if self.param_gradient_wanted(0):
            np.add.at(self.blobs[0].diff, self._indices(bottom), dy)
        if self.bias_term and self.param_gradient_wanted(1):
            self.blobs[1].diff[...] += dy.sum(axis=0)
