"""Learning-rate policies: the rate at an iteration from SolverParameter, with Caffe's formulas.

    fixed      base_lr
    step       base_lr * gamma ^ floor(iter / stepsize)
    exp        base_lr * gamma ^ iter
    inv        base_lr * (1 + gamma * iter) ^ (-power)
    multistep  base_lr * gamma ^ step, where step counts the `stepvalue`s passed so far
    poly       base_lr * (1 - iter / max_iter) ^ power
    sigmoid    base_lr / (1 + exp(-gamma * (iter - stepsize)))

`current_step` is Caffe's solver field of the same name: `step` sets it and `multistep` advances it
by at most one per call (so it is saved in the solverstate and restored on resume).
"""
import math

from nvcaffe_py.errors import CaffeError


def _fixed(p, it, step):
    return p.base_lr, step


def _step(p, it, step):
    step = it // p.stepsize
    return p.base_lr * p.gamma ** step, step


def _exp(p, it, step):
    return p.base_lr * p.gamma ** it, step


def _inv(p, it, step):
    return p.base_lr * (1.0 + p.gamma * it) ** (-p.power), step


def _multistep(p, it, step):
    if step < len(p.stepvalue) and it >= p.stepvalue[step]:
        step += 1
    return p.base_lr * p.gamma ** step, step


def _poly(p, it, step):
    rate = p.base_lr * (1.0 - it / p.max_iter) ** p.power
    return (math.nan if isinstance(rate, complex) else rate), step  # past max_iter: C's pow gives NaN


def _sigmoid(p, it, step):
    try:
        decay = math.exp(-p.gamma * (it - p.stepsize))
    except OverflowError:  # far past the step: Caffe's float exp() is inf, and the rate 0
        decay = math.inf
    return p.base_lr / (1.0 + decay), step


POLICIES = {"fixed": _fixed, "step": _step, "exp": _exp, "inv": _inv, "multistep": _multistep,
            "poly": _poly, "sigmoid": _sigmoid}

# What each policy reads besides base_lr; checked once, before training starts.
_NEEDS_STEPSIZE = ("step",)
_NEEDS_GAMMA = ("step", "exp", "inv", "multistep")  # sigmoid: a negative gamma decays, as in Caffe


def validate(param, source="solver"):
    """Raise a one-line CaffeError if `param` cannot give a learning rate."""
    policy = param.lr_policy
    if policy not in POLICIES:
        known = ", ".join(POLICIES)
        what = f"unknown lr_policy '{policy}'" if policy else "no lr_policy given"
        raise CaffeError(f"{source}: {what} (known: {known})")
    if policy in _NEEDS_STEPSIZE and param.stepsize <= 0:
        raise CaffeError(f"{source}: lr_policy '{policy}' needs a positive stepsize (got {param.stepsize})")
    if policy in _NEEDS_GAMMA and param.gamma < 0:
        raise CaffeError(f"{source}: lr_policy '{policy}' needs gamma >= 0 (got {param.gamma})")
    if policy == "poly" and param.max_iter <= 0:
        raise CaffeError(f"{source}: lr_policy 'poly' needs a positive max_iter (got {param.max_iter})")
    # Every policy is monotone in the iteration, so the rates at the first and the last iteration
    # bound all the others (multistep: with the steps whose stepvalue that iteration has passed).
    last = max(param.max_iter - 1, 0)
    for iteration, steps in ((0, 0), (last, sum(value <= last for value in param.stepvalue))):
        try:
            learning_rate(param, iteration, steps)
        except CaffeError as exc:
            raise CaffeError(f"{source}: {exc} (before max_iter {param.max_iter})") from None


def learning_rate(param, iteration: int, current_step: int = 0):
    """(rate, new current_step) at `iteration` under `param.lr_policy`; a rate that is not a
    finite number is an error (pycaffe's solver.step may go past the max_iter validate saw)."""
    policy = POLICIES.get(param.lr_policy)
    if policy is None:
        validate(param)  # raises, naming the policy
    try:
        rate, step = policy(param, iteration, current_step)
    except OverflowError:  # float ** float overflowing: C's pow() gives inf
        rate, step = math.inf, current_step
    if not math.isfinite(rate):
        raise CaffeError(f"lr_policy '{param.lr_policy}' gives a learning rate of {rate} at iteration {iteration}; "
                         f"check base_lr, gamma, power and stepsize")
    return rate, step
