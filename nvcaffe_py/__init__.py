"""nvcaffe_py: a Caffe-compatible deep-learning trainer. `import nvcaffe_py as caffe` gives the
pycaffe API: Net, Layer, TRAIN/TEST, set_mode_cpu/gpu, solvers, NetSpec, io, proto.caffe_pb2.
"""
import importlib.abc
import importlib.util
import os
import sys

from .proto import caffe_pb2  # noqa: F401  (also reachable as nvcaffe_py.proto.caffe_pb2)
from . import proto  # noqa: F401
from .blob import Blob
from .errors import CaffeError
from .layer import Layer
from .mode import set_device, set_mode_cpu, set_mode_gpu
from .net import TEST, TRAIN, Net
from .registry import layer_types, register_layer
from .rng import set_random_seed

__version__ = "0.1.0"

_LAZY = {
    # pycaffe names provided by modules that load on first use.
    "NetSpec": ("net_spec", "NetSpec"),
    "layers": ("layers", None),  # the layer package doubles as NetSpec's `L` factory
    "params": ("net_spec", "params"),
    "to_proto": ("net_spec", "to_proto"),
    "io": ("io", None),
    "SGDSolver": ("solvers", "SGDSolver"),
    "NesterovSolver": ("solvers", "NesterovSolver"),
    "AdaGradSolver": ("solvers", "AdaGradSolver"),
    "RMSPropSolver": ("solvers", "RMSPropSolver"),
    "AdaDeltaSolver": ("solvers", "AdaDeltaSolver"),
    "AdamSolver": ("solvers", "AdamSolver"),
    "get_solver": ("solvers", "get_solver"),
}


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module 'nvcaffe_py' has no attribute '{name}'")
    module_name, attr = _LAZY[name]
    module = importlib.import_module(f"{__name__}.{module_name}")
    value = module if attr is None else getattr(module, attr)
    globals()[name] = value
    return value


class _CaffeAlias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Resolves `import caffe` / `caffe.X` to nvcaffe_py / nvcaffe_py.X when no real pycaffe is
    installed, so Python layer modules and scripts written for pycaffe run unchanged."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname == "caffe" or fullname.startswith("caffe."):
            return importlib.util.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec):
        target = "nvcaffe_py" + spec.name[len("caffe"):]
        return importlib.import_module(target)

    def exec_module(self, module):
        pass


def install_caffe_alias():
    """Alias `caffe` to this package when nothing named caffe can be found at all (run from a
    checkout without installing; an install brings the caffe.py shim, which aliases on import)."""
    if "caffe" in sys.modules or any(isinstance(f, _CaffeAlias) for f in sys.meta_path):
        return
    if importlib.util.find_spec("caffe") is None:
        # First in line, so that `caffe.proto.caffe_pb2` is never loaded a second time from disk.
        sys.meta_path.insert(0, _CaffeAlias())


install_caffe_alias()


def become_caffe():
    """Make `caffe` and every `caffe.X` this package and its `X` (the top-level caffe.py shim
    calls this while Python imports `caffe`; the import then returns this package)."""
    if not any(isinstance(f, _CaffeAlias) for f in sys.meta_path):
        sys.meta_path.insert(0, _CaffeAlias())
    sys.modules["caffe"] = sys.modules[__name__]


class _SourceCheckoutSubpackages(importlib.abc.MetaPathFinder):
    """Run from a source checkout without installing (PYTHONPATH=checkout, as on the lent GPU
    machine): `layers/` and `solvers/` sit beside this package, and an install maps them to
    nvcaffe_py.layers / nvcaffe_py.solvers; this finder does the same mapping."""

    ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    NAMES = {f"{__name__}.layers": "layers", f"{__name__}.solvers": "solvers"}

    def find_spec(self, fullname, path=None, target=None):
        folder = self.NAMES.get(fullname)
        if folder is None:
            return None
        location = os.path.join(self.ROOT, folder)
        if not os.path.isfile(os.path.join(location, "__init__.py")):
            return None
        return importlib.util.spec_from_file_location(
            fullname, os.path.join(location, "__init__.py"), submodule_search_locations=[location])


# Last in line: an installed mapping (regular or editable install) always wins.
sys.meta_path.append(_SourceCheckoutSubpackages())
