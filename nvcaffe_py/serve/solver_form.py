"""A SolverParameter from the new-job form's options, as DIGITS offers them: solver type, base
learning rate, lr policy and its parameters, epochs or iterations, snapshot and test intervals,
momentum and weight decay (the rule's usual value by default)."""
import math

from ..errors import CaffeError
from ..proto import caffe_pb2
from ..solvers import lr_policy
from . import fields as f

SOLVER_TYPES = ("SGD", "Nesterov", "AdaGrad", "RMSProp", "AdaDelta", "Adam")
LR_POLICIES = tuple(lr_policy.POLICIES)
DEFAULT_MOMENTUM = {"SGD": 0.9, "Nesterov": 0.9, "AdaGrad": 0.0, "RMSProp": 0.0, "AdaDelta": 0.95, "Adam": 0.9}
POINTS_ON_A_CURVE = 100  # `display` is set to log about this many training points


def solver_param(fields, train_images, batch_size) -> "caffe_pb2.SolverParameter":
    """The solver without its paths (net, snapshot_prefix) and test_iter, which the job adds."""
    p = caffe_pb2.SolverParameter()
    p.type = f.choice(fields, "solver_type", SOLVER_TYPES, "SGD")
    p.base_lr = f.number(fields, "base_lr", 0.01, low=0)
    p.momentum = f.number(fields, "momentum", DEFAULT_MOMENTUM[p.type], 0, 1)
    if p.type in ("AdaGrad", "RMSProp") and p.momentum:
        raise CaffeError(f"momentum cannot be used with {p.type}; set it to 0")
    p.weight_decay = f.number(fields, "weight_decay", 0.0005, low=0)
    p.lr_policy = f.choice(fields, "lr_policy", LR_POLICIES, "fixed")
    if p.lr_policy in ("step", "multistep", "exp", "inv", "sigmoid"):
        p.gamma = f.number(fields, "gamma", 0.1)
    if p.lr_policy in ("step", "sigmoid"):
        p.stepsize = f.integer(fields, "stepsize", low=1)
    if p.lr_policy == "multistep":
        p.stepvalue.extend(f.integers(fields, "stepvalue"))
        if not p.stepvalue:
            raise CaffeError("lr_policy multistep needs stepvalue: the iterations where the rate drops")
    if p.lr_policy in ("inv", "poly"):
        p.power = f.number(fields, "power", 0.75 if p.lr_policy == "inv" else 1.0)
    epoch = max(1, math.ceil(train_images / batch_size))
    if f.text(fields, "iterations") and f.text(fields, "epochs"):
        raise CaffeError("give epochs or iterations, not both")
    if f.text(fields, "iterations"):
        p.max_iter = f.integer(fields, "iterations", low=1)
    else:
        p.max_iter = max(1, round(f.number(fields, "epochs", 30, low=0) * epoch))
    p.snapshot = f.integer(fields, "snapshot_interval", 0, low=0)
    p.test_interval = f.integer(fields, "test_interval", min(epoch, p.max_iter), low=1)
    p.display = max(1, p.max_iter // POINTS_ON_A_CURVE)
    if f.text(fields, "random_seed"):
        p.random_seed = f.integer(fields, "random_seed", low=0)
    lr_policy.validate(p, "the solver options")
    return p
