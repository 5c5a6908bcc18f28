"""AdaDelta (Caffe's AdaDeltaSolver, Zeiler 2012) with momentum as the decay rate:
    Eg = momentum * Eg + (1 - momentum) * g^2
    dx = g * sqrt((Edx + delta) / (Eg + delta))
    Edx = momentum * Edx + (1 - momentum) * dx^2
    w -= lr * dx
History holds every Eg, then every Edx, as Caffe stores them."""
import numpy as np

from .solver import Solver


class AdaDeltaSolver(Solver):
    type_name = "AdaDelta"
    history_per_param = 2

    def compute_update_value(self, i, param, local_rate):
        momentum, delta = self.param.momentum, self.param.delta
        grad_sq, update_sq = (h.data for h in self.param_history(i))
        diff = param.blob.diff
        grad_sq *= momentum
        grad_sq += (1 - momentum) * np.square(diff)
        diff *= np.sqrt((update_sq + delta) / (grad_sq + delta))
        update_sq *= momentum
        update_sq += (1 - momentum) * np.square(diff)
        diff *= local_rate
