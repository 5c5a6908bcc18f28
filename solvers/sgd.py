"""SGD with momentum (Caffe's SGDSolver): v = momentum * v + lr * g; w -= v."""
from .solver import Solver


class SGDSolver(Solver):
    type_name = "SGD"

    def compute_update_value(self, i, param, local_rate):
        history, diff = self.history[i].data, param.blob.diff
        history *= self.param.momentum
        history += local_rate * diff
        diff[...] = history
