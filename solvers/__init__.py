"""Solvers: the training loop and update pipeline (solver.py), one module per update rule, each
registered under its Caffe type name (registry.py), and the lr policies.

`get_solver(path_or_param)` builds the solver that the parameter's `type` names (the legacy
`solver_type` enum is upgraded to it on load); `SGDSolver(path)` & co. build one rule directly, as
pycaffe's classes do. Importing this package imports every module in it, which registers the rules;
their classes are then exported under their own names.
"""
import importlib
import pkgutil

from .registry import get_solver, register_solver, solver_class, solver_types
from .solver import NONE, SNAPSHOT, STOP, NonFiniteError, Solver, load_solver_param

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

_rule_classes = {cls.__name__: cls for cls in map(solver_class, solver_types())}
globals().update(_rule_classes)
__all__ = ["Solver", "NONE", "SNAPSHOT", "STOP", "NonFiniteError", "get_solver", "load_solver_param",
           "register_solver", "solver_class", "solver_types", *_rule_classes]
