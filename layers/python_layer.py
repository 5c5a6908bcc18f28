"""Python: pycaffe's layer type. `python_param { module: "m" layer: "C" param_str: "..." }` imports
module `m` (which may `import caffe`; that resolves to nvcaffe_py where no pycaffe is installed) and
instantiates class `C`, a subclass of `caffe.Layer` overriding setup/reshape/forward/backward."""
import importlib

from nvcaffe_py.errors import CaffeError
from nvcaffe_py.layer import Layer
from nvcaffe_py.registry import register_layer


@register_layer("Python")
def python_layer(layer_param, phase=None, dtype=None):
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
