"""Adam (Caffe's AdamSolver, Kingma & Ba 2014) with beta1 = momentum, beta2 = momentum2 and
eps = delta, bias correction folded into the rate at t = iter + 1:
    m = beta1 * m + (1 - beta1) * g;   v = beta2 * v + (1 - beta2) * g^2
    w -= lr * sqrt(1 - beta2^t) / (1 - beta1^t) * m / (sqrt(v) + eps)
History holds every m, then every v, as Caffe stores them."""
import math

import numpy as np

from .solver import Solver


class AdamSolver(Solver):
    type_name = "Adam"
    history_per_param = 2

    def compute_update_value(self, i, param, local_rate):
        beta1, beta2 = self.param.momentum, self.param.momentum2
        t = self.iter + 1
        correction = math.sqrt(1 - beta2 ** t) / (1 - beta1 ** t)
        m, v = (h.data for h in self.param_history(i))
        diff = param.blob.diff
        m *= beta1
        m += (1 - beta1) * diff
        v *= beta2
        v += (1 - beta2) * np.square(diff)
        diff[...] = (local_rate * correction) * (m / (np.sqrt(v) + self.param.delta))
