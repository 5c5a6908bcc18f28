"""The registry of layer types: a decorator inside the process, entry points from other packages.

    @register_layer("MyLayer")
    class MyLayer(Layer): ...

The built-in types register as `nvcaffe_py.layers` is imported (`import nvcaffe_py` does that).
Another installed package adds types through the entry point group `nvcaffe_py.layers`
(`name = "pkg.module:Class"`); they are loaded the first time a type is looked up.
"""
import difflib
from importlib.metadata import entry_points

import numpy as np

from .errors import CaffeError

ENTRY_POINT_GROUP = "nvcaffe_py.layers"
BUILTIN_PACKAGE = "nvcaffe_py.layers"

_layer_types: dict = {}
_state = {"plugins_loaded": False}
_plugin_errors: dict = {}  # type name -> why its plugin failed to load


def register_layer(type_name: str):
    def decorate(cls):
        _layer_types[type_name] = cls
        return cls

    return decorate


def _load_plugins():
    if _state["plugins_loaded"]:
        return
    _state["plugins_loaded"] = True
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            _layer_types.setdefault(ep.name, ep.load())
        except Exception as exc:  # a broken plugin must not break every net: reported when its type is used
            _plugin_errors[ep.name] = f"layer plugin '{ep.name}' ({ep.value}) failed to load: {exc}"


def layer_types() -> list:
    _load_plugins()
    return sorted(_layer_types)


def builtin_layer_types() -> list:
    """The types this project's layers/ package registers (plugins and test types left out)."""
    return sorted(t for t, cls in _layer_types.items() if cls.__module__.startswith(BUILTIN_PACKAGE + "."))


def is_builtin(layer) -> bool:
    """Is this layer object one of this project's types (not a plugin's or a pycaffe Python layer's)?"""
    return type(layer).__module__.startswith(BUILTIN_PACKAGE + ".")


def layer_class(type_name: str):
    if type_name not in _layer_types:
        _load_plugins()
    if type_name not in _layer_types:
        if type_name in _plugin_errors:
            raise CaffeError(_plugin_errors[type_name])
        close = difflib.get_close_matches(type_name, list(_layer_types), n=3, cutoff=0.5)
        if not close:
            close = [t for t in _layer_types if t.lower() == type_name.lower()]
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise CaffeError(f"unknown layer type '{type_name}'{hint}")
    return _layer_types[type_name]


def create_layer(layer_param, phase=None, dtype=None):
    cls = layer_class(layer_param.type)
    return cls(layer_param, phase, np.float32 if dtype is None else dtype)
