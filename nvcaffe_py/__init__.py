"""nvcaffe_py: a Caffe-compatible deep-learning trainer. `import nvcaffe_py as caffe` gives the
pycaffe API: Net, Layer, TRAIN/TEST, set_mode_cpu/gpu, the solvers, NetSpec (`caffe.layers`,
`caffe.params`), io, proto.caffe_pb2. Importing it registers every built-in layer type and
solver; it never imports PyCUDA (that waits for set_mode_gpu).

`import caffe` is this package too, where BVLC's pycaffe is not installed (see caffe.py).
"""
from . import io, proto  # noqa: F401  (pycaffe's caffe.io, caffe.proto.caffe_pb2)
from .backends import set_mode_cpu, set_mode_gpu
from .blob import Blob
from .errors import CaffeError
from .layer import Layer
from .mode import set_device
from .net import TEST, TRAIN, Net
from .net_spec import NetSpec, params, to_proto
from .proto import caffe_pb2  # noqa: F401
from .registry import layer_types, register_layer
from .rng import set_random_seed
from . import layers  # noqa: E402  (registers the built-in types; doubles as NetSpec's `L` factory)
from . import solvers  # noqa: E402  (registers the update rules)
from .solvers import *  # noqa: E402,F401,F403  (SGDSolver, ..., get_solver: pycaffe's names)

__version__ = "0.1.0"
