"""RMSProp (Caffe's RMSPropSolver): E = rms_decay * E + (1 - rms_decay) * g^2;
w -= lr * g / (sqrt(E) + delta)."""
import numpy as np

from . import device_update
from .moving_average import update_moving_average
from .registry import register_solver
from .solver import POSITIVE, UNIT_INTERVAL, Solver


@register_solver("RMSProp")
class RMSPropSolver(Solver):
    field_domains = {"rms_decay": UNIT_INTERVAL, "delta": POSITIVE}

    def check_param(self):
        if self.param.momentum != 0:
            self._fail("momentum cannot be used with RMSProp; remove it or set it to 0")

    def update_cpu(self, diff, histories, rate):
        (history,) = histories
        update_moving_average(history, self.param.rms_decay, np.square(diff))
        diff[...] = rate * (diff / (np.sqrt(history) + self.param.delta))

    def update_gpu(self, diff, histories, rate):
        device_update.launch("rmsprop_update", diff, *histories, self.param.rms_decay, self.param.delta, rate)
