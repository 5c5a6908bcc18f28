"""AdaGrad (Caffe's AdaGradSolver): G += g^2; w -= lr * g / (sqrt(G) + delta)."""
import numpy as np

from .solver import Solver


class AdaGradSolver(Solver):
    type_name = "AdaGrad"

    def check_param(self):
        if self.param.momentum != 0:
            self._fail("momentum cannot be used with AdaGrad; remove it or set it to 0")

    def compute_update_value(self, i, param, local_rate):
        history, diff = self.history[i].data, param.blob.diff
        history += np.square(diff)
        diff[...] = local_rate * (diff / (np.sqrt(history) + self.param.delta))
