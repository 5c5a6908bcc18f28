"""Every lr_policy against its formula, written out here; and the clear errors for bad settings."""
import math

import pytest

from nvcaffe_py.errors import CaffeError
from nvcaffe_py.proto import caffe_pb2
from nvcaffe_py.solvers.lr_policy import learning_rate, validate


def solver_param(**fields):
    param = caffe_pb2.SolverParameter(base_lr=0.01, max_iter=1000)
    for name, value in fields.items():
        if name == "stepvalue":
            param.stepvalue.extend(value)
        else:
            setattr(param, name, value)
    return param


def rates(param, iterations):
    """The rate at each iteration, called once per iteration in order as the solver does."""
    out, step = {}, 0
    for it in range(max(iterations) + 1):
        rate, step = learning_rate(param, it, step)
        if it in iterations:
            out[it] = rate
    return out


F32 = lambda x: float(caffe_pb2.SolverParameter(base_lr=x).base_lr)  # noqa: E731  (fields are float32)
ITERS = [0, 1, 99, 100, 101, 250, 999]
CASES = [
    ("fixed", {}, lambda b, it: b),
    ("step", dict(gamma=0.5, stepsize=100), lambda b, it: b * F32(0.5) ** (it // 100)),
    ("exp", dict(gamma=0.99), lambda b, it: b * F32(0.99) ** it),
    ("inv", dict(gamma=1e-4, power=0.75), lambda b, it: b * (1 + F32(1e-4) * it) ** -F32(0.75)),
    ("multistep", dict(gamma=0.1, stepvalue=[100, 250]),
     lambda b, it: b * F32(0.1) ** sum(it >= s for s in (100, 250))),
    ("poly", dict(power=2.0), lambda b, it: b * (1 - it / 1000) ** 2),
    ("sigmoid", dict(gamma=-0.05, stepsize=200), lambda b, it: b / (1 + math.exp(F32(0.05) * (it - 200)))),
]


@pytest.mark.parametrize("policy,fields,formula", CASES, ids=[c[0] for c in CASES])
def test_policy_matches_formula(policy, fields, formula):
    param = solver_param(lr_policy=policy, **fields)
    got = rates(param, ITERS)
    base = F32(0.01)
    for it in ITERS:
        assert got[it] == pytest.approx(formula(base, it), rel=1e-12), f"{policy} at iteration {it}"


def test_step_and_multistep_report_current_step():
    assert learning_rate(solver_param(lr_policy="step", gamma=0.1, stepsize=30), 95, 0)[1] == 3
    multistep = solver_param(lr_policy="multistep", gamma=0.1, stepvalue=[10, 20])
    # Resumed with current_step 1 at iteration 15: one step taken, the second not yet.
    assert learning_rate(multistep, 15, 1) == (pytest.approx(F32(0.01) * F32(0.1)), 1)
    assert learning_rate(multistep, 20, 1)[1] == 2


@pytest.mark.parametrize("fields,message", [
    (dict(lr_policy="cosine"), "unknown lr_policy 'cosine'"),
    (dict(), "no lr_policy given"),
    (dict(lr_policy="step", gamma=0.1), "lr_policy 'step' needs a positive stepsize"),
    (dict(lr_policy="exp", gamma=-1.0), "needs gamma >= 0"),
    (dict(lr_policy="poly", power=1.0, max_iter=0), "needs a positive max_iter"),
])
def test_bad_settings_are_named(fields, message):
    with pytest.raises(CaffeError, match=message) as info:
        validate(solver_param(**fields), "my_solver.prototxt")
    assert str(info.value).startswith("my_solver.prototxt: ")
    assert "\n" not in str(info.value)


def test_sigmoid_far_from_its_step_is_zero_or_base_lr_as_in_float_math():
    """exp() of a large argument overflows; Caffe's float math then gives base_lr / inf = 0."""
    falling = solver_param(lr_policy="sigmoid", gamma=-1.0, stepsize=10)
    assert learning_rate(falling, 5000) == (0.0, 0)
    assert learning_rate(falling, 0)[0] == pytest.approx(F32(0.01), rel=1e-4)
    rising = solver_param(lr_policy="sigmoid", gamma=1.0, stepsize=5000)
    assert learning_rate(rising, 0) == (0.0, 0)
    assert learning_rate(rising, 10000)[0] == F32(0.01)


def test_a_rate_that_is_not_finite_is_an_error_naming_the_policy():
    """pycaffe's solver.step may go past max_iter, where the start-up check did not look."""
    with pytest.raises(CaffeError, match=r"^lr_policy 'exp' gives a learning rate of inf at iteration 2000"):
        learning_rate(solver_param(lr_policy="exp", gamma=2.0), 2000)
    with pytest.raises(CaffeError, match=r"^lr_policy 'poly' gives a learning rate of nan at iteration 1500"):
        learning_rate(solver_param(lr_policy="poly", power=0.5), 1500)
