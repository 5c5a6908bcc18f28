"""Nesterov's accelerated gradient (Caffe's NesterovSolver), in the form that steps the current
weights: v' = momentum * v + lr * g; w -= (1 + momentum) * v' - momentum * v."""
from .solver import Solver


class NesterovSolver(Solver):
    type_name = "Nesterov"

    def compute_update_value(self, i, param, local_rate):
        momentum = self.param.momentum
        history, diff = self.history[i].data, param.blob.diff
        previous = history.copy()
        history *= momentum
        history += local_rate * diff
        diff[...] = (1 + momentum) * history - momentum * previous
