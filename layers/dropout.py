"""Dropout, as Caffe's: in TRAIN keep each value with probability 1 - dropout_ratio and scale the
kept ones by 1 / (1 - dropout_ratio), so TEST is the identity with the same expected output.
"""
import numpy as np

from nvcaffe_py import rng
from nvcaffe_py.conformance import Case
from nvcaffe_py.proto import caffe_pb2
from nvcaffe_py.registry import register_layer

from .dropout_gpu import DropoutGPU
from .neuron import NeuronLayer

_DEVICE_MASK = ("the device draws its mask from Philox, NumPy from its own generator "
                "(tests/test_dropout.py checks the device mask)")


@register_layer("Dropout")
class DropoutLayer(NeuronLayer):
    cases = [Case("", [(2, 3, 4, 5)], no_parity=_DEVICE_MASK),
             Case("dropout_param { dropout_ratio: 0.3 }", [(2, 3, 4, 5)], in_place=True, no_parity=_DEVICE_MASK),
             Case("", [(2, 3, 4, 5)], phase=caffe_pb2.TEST),
             Case("dropout_param { dropout_ratio: 0.3 }", [(2, 3, 4, 5)], in_place=True, phase=caffe_pb2.TEST)]

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

    def make_gpu(self):
        return DropoutGPU(ratio=self.ratio, scale=self.scale, train=self.train)
