"""nvcaffe_py: a Caffe-compatible deep-learning trainer. `import nvcaffe_py as caffe` gives the
pycaffe API: Net (forward_all, ...), Layer, TRAIN/TEST, set_mode_cpu/gpu, set_device, the solvers,
NetSpec (`caffe.layers`, `caffe.params`), Classifier, Detector, Timer, init_log/log, io,
coord_map, draw, proto.caffe_pb2, layer_type_list, NCCL, has_nccl, solver_count & co. Importing
it registers every built-in layer type and solver; it never imports PyCUDA (that waits for
set_mode_gpu), mpi4py or NCCL (they wait for a data-parallel run) nor pydot (that waits for a
drawing).

`import caffe` is this package too, where BVLC's pycaffe is not installed (see caffe.py).
"""
from . import io, log, proto  # noqa: F401  (pycaffe's caffe.io, caffe.log(message), caffe.proto.caffe_pb2)
from .backends import set_mode_cpu, set_mode_gpu
from .blob import Blob
from .errors import CaffeError
from .layer import Layer
from .log import init_log
from .mode import set_device, set_multiprocess, set_solver_count, set_solver_rank, solver_count, solver_rank
from .net import TEST, TRAIN, Net
from .net_spec import NetSpec, params, to_proto
from .proto import caffe_pb2  # noqa: F401
from .registry import layer_types, register_layer
from .registry import layer_types as layer_type_list  # pycaffe's name
from .rng import set_random_seed
from .scaleout.nccl_library import available as has_nccl
from .scaleout.pycaffe_nccl import NCCL
from .timer import Timer
from . import layers  # noqa: E402  (registers the built-in types; doubles as NetSpec's `L` factory)
from . import solvers  # noqa: E402  (registers the update rules)
from .solvers import *  # noqa: E402,F401,F403  (SGDSolver, ..., get_solver: pycaffe's names)
from . import coord_map, draw  # noqa: E402,F401  (pycaffe's caffe.coord_map and caffe.draw)
from .classifier import Classifier  # noqa: E402
from .detector import Detector  # noqa: E402

__version__ = "0.1.0"
