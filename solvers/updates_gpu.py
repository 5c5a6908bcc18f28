"""The six update rules on the device (updates.cu), for a solver whose parameters live on the GPU.

Each rule turns the gradient `diff` (a device array, already clipped, normalised and regularised)
into the step, in place, and updates its history arrays, exactly as the matching solvers/<rule>.py
does on the host; `apply` then subtracts the step from the weights. `compute_update_value`
dispatches on the solver type as Solver.compute_update_value does.
"""
import math

from nvcaffe_py.backends.cuda import kernels
from nvcaffe_py.backends.cuda import math_functions as mf

_kernels = kernels.Source(__file__, "updates.cu")


def _run(name, diff, *args):
    n = diff.size
    _kernels.get(name, diff.dtype).launch(n, n, diff, *args)


def sgd(diff, history, momentum, rate):
    _run("sgd_update", diff, history, momentum, rate)


def nesterov(diff, history, momentum, rate):
    _run("nesterov_update", diff, history, momentum, rate)


def adagrad(diff, history, delta, rate):
    _run("adagrad_update", diff, history, delta, rate)


def rmsprop(diff, history, rms_decay, delta, rate):
    _run("rmsprop_update", diff, history, rms_decay, delta, rate)


def adadelta(diff, grad_sq, update_sq, momentum, delta, rate):
    _run("adadelta_update", diff, grad_sq, update_sq, momentum, delta, rate)


def adam(diff, m, v, beta1, beta2, eps, rate, iteration):
    """`iteration` is the solver's iter; Adam's bias correction uses t = iteration + 1."""
    t = iteration + 1
    corrected = rate * math.sqrt(1 - beta2 ** t) / (1 - beta1 ** t)
    _run("adam_update", diff, m, v, beta1, beta2, eps, corrected)


def compute_update_value(type_name, solver_param, diff, histories, rate, iteration):
    """The step for one parameter; `histories` holds its history arrays (two for AdaDelta and
    Adam, in Caffe's order)."""
    p = solver_param
    if type_name == "SGD":
        sgd(diff, histories[0], p.momentum, rate)
    elif type_name == "Nesterov":
        nesterov(diff, histories[0], p.momentum, rate)
    elif type_name == "AdaGrad":
        adagrad(diff, histories[0], p.delta, rate)
    elif type_name == "RMSProp":
        rmsprop(diff, histories[0], p.rms_decay, p.delta, rate)
    elif type_name == "AdaDelta":
        adadelta(diff, histories[0], histories[1], p.momentum, p.delta, rate)
    elif type_name == "Adam":
        adam(diff, histories[0], histories[1], p.momentum, p.momentum2, p.delta, rate, iteration)
    else:
        raise ValueError(f"no device update rule for solver type '{type_name}'")


def regularize(data, diff, decay, regularization_type="L2"):
    """diff += decay * data (L2) or decay * sign(data) (L1)."""
    if regularization_type == "L2":
        mf.axpy(decay, data, diff)
    else:
        n = diff.size
        _kernels.get("l1_regularize", diff.dtype).launch(n, n, decay, data, diff)


def apply(data, diff):
    """data -= diff"""
    mf.axpy(-1.0, diff, data)
