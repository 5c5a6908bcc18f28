"""Solvers: the training loop (solver.py), one module per update rule, and the lr policies.

`get_solver(path_or_param)` builds the solver that the parameter's `type` names (the legacy
`solver_type` enum is upgraded to it on load); `SGDSolver(path)` & co. build one rule directly, as
pycaffe's classes do.
"""
import difflib

import numpy as np

from nvcaffe_py.errors import CaffeError

from .adadelta import AdaDeltaSolver
from .adagrad import AdaGradSolver
from .adam import AdamSolver
from .nesterov import NesterovSolver
from .rmsprop import RMSPropSolver
from .sgd import SGDSolver
from .solver import NONE, SNAPSHOT, STOP, NonFiniteError, Solver, load_solver_param

SOLVER_TYPES = {cls.type_name: cls for cls in (SGDSolver, NesterovSolver, AdaGradSolver, RMSPropSolver,
                                               AdaDeltaSolver, AdamSolver)}

__all__ = ["Solver", "NONE", "SNAPSHOT", "STOP", "NonFiniteError", "SOLVER_TYPES", "get_solver",
           "load_solver_param", *(cls.__name__ for cls in SOLVER_TYPES.values())]


def get_solver(solver, dtype=np.float32, source=None):
    """The solver of the type named in `solver` (a prototxt path or a SolverParameter)."""
    param, default_source = load_solver_param(solver)
    source = source or default_source
    cls = SOLVER_TYPES.get(param.type)
    if cls is None:
        close = difflib.get_close_matches(param.type, SOLVER_TYPES, n=1) or \
            [t for t in SOLVER_TYPES if t.lower() == param.type.lower()]
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise CaffeError(f"{source}: unknown solver type '{param.type}' (known: {', '.join(SOLVER_TYPES)}){hint}")
    return cls(param, dtype=dtype, source=source)
