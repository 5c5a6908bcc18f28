"""Dropout, as Caffe's: in TRAIN keep each value with probability 1 - dropout_ratio and scale the
kept ones by 1 / (1 - dropout_ratio), so TEST is the identity with the same expected output.
"""
import numpy as np

from nvcaffe_py import rng
from nvcaffe_py.proto import caffe_pb2
from nvcaffe_py.registry import register_layer

from .neuron import NeuronLayer


@register_layer("Dropout")
class DropoutLayer(NeuronLayer):
    def setup(self, bottom, top):
        self.ratio = self.layer_param.dropout_param.dropout_ratio
        if not 0 <= self.ratio < 1:
            raise self.error(f"dropout_ratio must be in [0, 1), got {self.ratio}")
        self.scale = 1.0 / (1.0 - self.ratio)
        self.train = self.phase == caffe_pb2.TRAIN
        self._scaled_mask = None

    def activate(self, x, y):
        if self.train:
            # Draws are float32 whatever the blob dtype, so one seed gives one mask in both.
            keep = rng.generator().random(x.shape, dtype=np.float32) >= self.ratio
            # The mask with the scale folded in serves forward and backward alike.
            self._scaled_mask = np.multiply(keep, x.dtype.type(self.scale))
            np.multiply(x, self._scaled_mask, out=y)
        elif not np.may_share_memory(x, y):
            np.copyto(y, x)

    def derivative(self, x, y):
        return self._scaled_mask if self.train else x.dtype.type(1)

    def forward_gpu(self, bottom, top):
        from . import dropout_gpu

        dropout_gpu.forward(self, bottom, top)

    def backward_gpu(self, top, propagate_down, bottom):
        from . import dropout_gpu

        dropout_gpu.backward(self, top, propagate_down, bottom)
