"""RMSProp (Caffe's RMSPropSolver): E = rms_decay * E + (1 - rms_decay) * g^2;
w -= lr * g / (sqrt(E) + delta)."""
import numpy as np

from .solver import Solver


class RMSPropSolver(Solver):
    type_name = "RMSProp"

    def check_param(self):
        if self.param.momentum != 0:
            self._fail("momentum cannot be used with RMSProp; remove it or set it to 0")
        if not 0 <= self.param.rms_decay <= 1:
            self._fail(f"rms_decay must lie in [0, 1] (got {self.param.rms_decay})")

    def compute_update_value(self, i, param, local_rate):
        decay = self.param.rms_decay
        history, diff = self.history[i].data, param.blob.diff
        history *= decay
        history += (1 - decay) * np.square(diff)
        diff[...] = local_rate * (diff / (np.sqrt(history) + self.param.delta))
