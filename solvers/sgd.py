"""SGD with momentum (Caffe's SGDSolver): v = momentum * v + lr * g; w -= v."""
from . import device_update
from .registry import register_solver
from .solver import Solver


@register_solver("SGD")
class SGDSolver(Solver):
    def update_cpu(self, diff, histories, rate):
        (history,) = histories
        history *= self.param.momentum
        history += rate * diff
        diff[...] = history

    def update_gpu(self, diff, histories, rate):
        device_update.launch("sgd_update", diff, *histories, self.param.momentum, rate)
