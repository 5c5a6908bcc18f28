"""Python: pycaffe's layer type. `python_param { module: "m" layer: "C" param_str: "..." }` imports
module `m` and instantiates class `C`, a subclass of `caffe.Layer` overriding
setup/reshape/forward/backward. The module may `import caffe`: that is this package wherever BVLC's
pycaffe is not installed (the top-level caffe.py, installed beside nvcaffe_py, makes it so)."""
import importlib

import numpy as np

from nvcaffe_py.conformance import Exempt
from nvcaffe_py.errors import CaffeError
from nvcaffe_py.layer import Layer
from nvcaffe_py.registry import register_layer


@register_layer("Python")
def python_layer(layer_param, phase=None, dtype=np.float32):
    p = layer_param.python_param
    if not p.module or not p.layer:
        raise CaffeError(f"layer '{layer_param.name}' (Python): python_param needs both 'module' and 'layer'")
    try:
        module = importlib.import_module(p.module)
    except ImportError as exc:
        raise CaffeError(f"layer '{layer_param.name}' (Python): cannot import module '{p.module}': {exc} "
                         f"(is its folder on PYTHONPATH?)") from exc
    cls = getattr(module, p.layer, None)
    if cls is None:
        raise CaffeError(f"layer '{layer_param.name}' (Python): module '{p.module}' has no class '{p.layer}'")
    if not (isinstance(cls, type) and issubclass(cls, Layer)):
        raise CaffeError(f"layer '{layer_param.name}' (Python): '{p.module}.{p.layer}' must subclass caffe.Layer")
    return cls(layer_param, phase, dtype)


python_layer.cases = Exempt("runs the user's module: tests/test_net.py (a pycaffe loss layer, "
                            "tests/pycaffe_modules/pyloss.py, that does `import caffe`)")
