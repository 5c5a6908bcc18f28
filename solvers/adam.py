"""Adam (Caffe's AdamSolver, Kingma & Ba 2014) with beta1 = momentum, beta2 = momentum2 and
eps = delta, bias correction folded into the rate at t = iter + 1:
    m = beta1 * m + (1 - beta1) * g;   v = beta2 * v + (1 - beta2) * g^2
    w -= lr * sqrt(1 - beta2^t) / (1 - beta1^t) * m / (sqrt(v) + eps)
History holds every m, then every v, as Caffe stores them."""
import math

import numpy as np

from . import device_update
from .moving_average import update_moving_average
from .registry import register_solver
from .solver import BELOW_ONE, POSITIVE, Solver


@register_solver("Adam")
class AdamSolver(Solver):
    history_per_param = 2
    field_domains = {"momentum": BELOW_ONE, "momentum2": BELOW_ONE, "delta": POSITIVE}

    def _corrected_rate(self, rate):
        beta1, beta2, t = self.param.momentum, self.param.momentum2, self.iter + 1
        return rate * (math.sqrt(1 - beta2 ** t) / (1 - beta1 ** t))

    def update_cpu(self, diff, histories, rate):
        m, v = histories
        update_moving_average(m, self.param.momentum, diff)
        update_moving_average(v, self.param.momentum2, np.square(diff))
        diff[...] = self._corrected_rate(rate) * (m / (np.sqrt(v) + self.param.delta))

    def update_gpu(self, diff, histories, rate):
        p = self.param
        device_update.launch("adam_update", diff, *histories, p.momentum, p.momentum2, p.delta,
                             self._corrected_rate(rate))
