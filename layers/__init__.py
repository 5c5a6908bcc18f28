"""Built-in layer types, one module per family; importing this package registers them all."""
import importlib
import pkgutil

from nvcaffe_py.net_spec import layers as _layer_factory

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")


def __getattr__(name):
    # pycaffe's `caffe.layers` is NetSpec's layer factory (`L.Convolution(...)`); this package is
    # also `nvcaffe_py.layers`, so unknown attribute names are handed to that factory.
    if name.startswith("__"):
        raise AttributeError(name)
    return getattr(_layer_factory, name)
