"""The registry of update rules, as layers have theirs: each rule's Solver subclass registers
under the name a SolverParameter's `type` gives it.

    @register_solver("SGD")
    class SGDSolver(Solver): ...

`get_solver(path_or_param)` builds the solver its parameter names.
"""
import difflib

import numpy as np

from nvcaffe_py.errors import CaffeError

from .solver import load_solver_param

_solver_classes: dict = {}


def register_solver(type_name: str):
    """Register the decorated Solver subclass under `type_name`, which becomes its `type_name`."""
    def decorate(cls):
        cls.type_name = type_name
        _solver_classes[type_name] = cls
        return cls

    return decorate


def solver_types() -> list:
    return sorted(_solver_classes)


def solver_class(type_name: str, source: str = "<solver>"):
    """The class registered as `type_name`; a one-line CaffeError naming the known ones otherwise."""
    cls = _solver_classes.get(type_name)
    if cls is None:
        known = solver_types()
        close = difflib.get_close_matches(type_name, known, n=1) or [t for t in known if t.lower() == type_name.lower()]
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise CaffeError(f"{source}: unknown solver type '{type_name}' (known: {', '.join(known)}){hint}")
    return cls


def get_solver(solver, dtype=np.float32, source=None):
    """The solver of the type named in `solver` (a prototxt path or a SolverParameter)."""
    param, default_source = load_solver_param(solver)
    source = source or default_source
    return solver_class(param.type, source)(param, dtype=dtype, source=source)
