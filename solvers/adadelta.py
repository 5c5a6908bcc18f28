"""AdaDelta (Caffe's AdaDeltaSolver, Zeiler 2012) with momentum as the decay rate:
    Eg = momentum * Eg + (1 - momentum) * g^2
    dx = g * sqrt((Edx + delta) / (Eg + delta))
    Edx = momentum * Edx + (1 - momentum) * dx^2
    w -= lr * dx
History holds every Eg, then every Edx, as Caffe stores them."""
import numpy as np

from . import device_update
from .moving_average import update_moving_average
from .registry import register_solver
from .solver import POSITIVE, UNIT_INTERVAL, Solver


@register_solver("AdaDelta")
class AdaDeltaSolver(Solver):
    history_per_param = 2
    field_domains = {"momentum": UNIT_INTERVAL, "delta": POSITIVE}

    def update_cpu(self, diff, histories, rate):
        momentum, delta = self.param.momentum, self.param.delta
        grad_sq, update_sq = histories
        update_moving_average(grad_sq, momentum, np.square(diff))
        diff *= np.sqrt((update_sq + delta) / (grad_sq + delta))
        update_moving_average(update_sq, momentum, np.square(diff))
        diff *= rate

    def update_gpu(self, diff, histories, rate):
        device_update.launch("adadelta_update", diff, *histories, self.param.momentum, self.param.delta, rate)
