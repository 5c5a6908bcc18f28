"""AdaGrad (Caffe's AdaGradSolver): G += g^2; w -= lr * g / (sqrt(G) + delta)."""
import numpy as np

from . import device_update
from .registry import register_solver
from .solver import POSITIVE, Solver


@register_solver("AdaGrad")
class AdaGradSolver(Solver):
    field_domains = {"delta": POSITIVE}

    def check_param(self):
        if self.param.momentum != 0:
            self._fail("momentum cannot be used with AdaGrad; remove it or set it to 0")

    def update_cpu(self, diff, histories, rate):
        (history,) = histories
        history += np.square(diff)
        diff[...] = rate * (diff / (np.sqrt(history) + self.param.delta))

    def update_gpu(self, diff, histories, rate):
        device_update.launch("adagrad_update", diff, *histories, self.param.delta, rate)
