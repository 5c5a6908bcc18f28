"""Nesterov's accelerated gradient (Caffe's NesterovSolver), in the form that steps the current
weights: v' = momentum * v + lr * g; w -= (1 + momentum) * v' - momentum * v."""
from . import device_update
from .registry import register_solver
from .solver import Solver


@register_solver("Nesterov")
class NesterovSolver(Solver):
    def update_cpu(self, diff, histories, rate):
        momentum = self.param.momentum
        (history,) = histories
        previous = history.copy()
        history *= momentum
        history += rate * diff
        diff[...] = (1 + momentum) * history - momentum * previous

    def update_gpu(self, diff, histories, rate):
        device_update.launch("nesterov_update", diff, *histories, self.param.momentum, rate)
