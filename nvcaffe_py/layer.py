"""Layer: the base class of every layer type, as Caffe's Layer and pycaffe's `caffe.Layer`.

A layer type overrides:
  setup(bottom, top)                       one-time checks and parameter creation (Caffe's LayerSetUp)
  reshape(bottom, top)                     output shapes from input shapes; called before each forward
  forward_cpu(bottom, top)                 NumPy reference
  backward_cpu(top, propagate_down, bottom)
  forward_gpu / backward_gpu               optional CUDA versions; without them the CPU code runs
                                           and the SyncedArrays move the data.

Conventions every implementation keeps (the Net and the solvers rely on them):
  * results are written into the existing arrays (`top[0].data[...] = x`, `out=`), never by
    rebinding, because in-place layers and shared buffers alias them;
  * backward *overwrites* bottom diffs but *accumulates* into parameter diffs (`+=`), so that
    `iter_size` and shared parameters sum their gradients; the solver clears them each step;
  * a loss layer scales its gradient by `top[0].diff.flat[0]`, which the Net fills with the
    layer's loss weight (Caffe's convention), and sets `default_loss_weights = (1.0,)`.

pycaffe Python layers subclass this same class and override `setup/reshape/forward/backward`
directly; that is why `forward`/`backward` are plain methods that pick the backend.
"""
import numpy as np

from . import mode
from .blob import Blob
from .errors import CaffeError


class BlobVec(list):
    """A layer's parameter blobs; pycaffe's `self.blobs.add_blob(*shape)` works on it."""

    def __init__(self, items=(), dtype=np.float32):
        super().__init__(items)
        self.dtype = dtype

    def add_blob(self, *shape):
        self.append(Blob(*shape, dtype=self.dtype))


class Layer:
    # Blob-count rules checked before setup (None: no rule), as Caffe's ExactNumBottomBlobs & co.
    exact_num_bottom = None
    min_bottom = None
    max_bottom = None
    exact_num_top = None
    min_top = None
    max_top = None
    # Create anonymous tops when fewer than the minimum are named (Caffe's AutoTopBlobs).
    auto_top_blobs = False
    # Loss weight of each top when the prototxt gives none (loss layers: (1.0,)).
    default_loss_weights = ()
    # May `force_backward` make this bottom need a gradient? (labels: no)
    def allow_force_backward(self, bottom_index: int) -> bool:
        return True

    def __init__(self, layer_param, phase=None, dtype=np.float32):
        from .proto import caffe_pb2

        self.layer_param = layer_param
        self.dtype = np.dtype(dtype)
        self.phase = layer_param.phase if phase is None else phase
        self.blobs = BlobVec(dtype=self.dtype)
        # Weights carried inside the LayerParameter (e.g. from a caffemodel) are used as given.
        for proto in layer_param.blobs:
            from .formats import blob_from_proto

            self.blobs.append(blob_from_proto(proto, dtype=self.dtype))
        self.param_propagate_down = []
        self.param_str = layer_param.python_param.param_str
        self.loss_weights = []
        self._caffe_pb2 = caffe_pb2

    @property
    def name(self) -> str:
        return self.layer_param.name

    @property
    def type(self) -> str:
        return self.layer_param.type

    # -- the overridable interface -----------------------------------------------------------
    def setup(self, bottom, top):
        pass

    def reshape(self, bottom, top):
        pass

    def forward_cpu(self, bottom, top):
        raise NotImplementedError(f"layer '{self.name}' ({self.type}) has no forward_cpu")

    def backward_cpu(self, top, propagate_down, bottom):
        # Layers without a gradient (data, accuracy, ...) are never asked for one by the Net.
        if any(propagate_down):
            raise CaffeError(f"layer '{self.name}' of type {self.type} cannot backpropagate")

    forward_gpu = None
    backward_gpu = None

    # -- dispatch ----------------------------------------------------------------------------
    def uses_gpu(self) -> bool:
        return mode.gpu_mode() and self.forward_gpu is not None

    def forward(self, bottom, top):
        if self.uses_gpu():
            self.forward_gpu(bottom, top)
        else:
            self.forward_cpu(bottom, top)

    def backward(self, top, propagate_down, bottom):
        if mode.gpu_mode() and self.backward_gpu is not None:
            self.backward_gpu(top, propagate_down, bottom)
        else:
            self.backward_cpu(top, propagate_down, bottom)

    # -- helpers for implementations ---------------------------------------------------------
    def check_blob_counts(self, bottom, top):
        def check(what, n, exact, lo, hi):
            if exact is not None and n != exact:
                raise CaffeError(f"layer '{self.name}' ({self.type}) takes exactly {exact} {what} blob(s), got {n}")
            if lo is not None and n < lo:
                raise CaffeError(f"layer '{self.name}' ({self.type}) takes at least {lo} {what} blob(s), got {n}")
            if hi is not None and n > hi:
                raise CaffeError(f"layer '{self.name}' ({self.type}) takes at most {hi} {what} blob(s), got {n}")

        check("bottom", len(bottom), self.exact_num_bottom, self.min_bottom, self.max_bottom)
        check("top", len(top), self.exact_num_top, self.min_top, self.max_top)

    def new_param_blob(self, shape, filler=None) -> Blob:
        """A parameter blob of this layer's dtype, filled by a FillerParameter (None: zeros)."""
        from .filler import fill

        blob = Blob(shape, dtype=self.dtype)
        if filler is not None:
            fill(blob, filler)
        return blob

    def init_param_blobs(self, specs):
        """Create the parameter blobs from (name, shape, filler) specs or, when the weights came
        with the layer (a caffemodel inside the LayerParameter), check their count and shapes."""
        if self.blobs:
            if len(self.blobs) != len(specs):
                raise self.error(f"expected {len(specs)} parameter blobs, got {len(self.blobs)}")
            for blob, (name, shape, _) in zip(self.blobs, specs):
                if blob.shape != tuple(shape):
                    raise self.error(f"{name} shape should be {tuple(shape)}, got {blob.shape}")
        else:
            for _, shape, filler in specs:
                self.blobs.append(self.new_param_blob(shape, filler))
        self.param_propagate_down = [True] * len(self.blobs)

    def error(self, message: str) -> CaffeError:
        """A CaffeError naming this layer, for shape and parameter problems."""
        return CaffeError(f"layer '{self.name}' ({self.type}): {message}")

    def canonical_axis(self, blob: Blob, axis: int) -> int:
        """`blob.canonical_axis_index(axis)`, whose error names this layer."""
        try:
            return blob.canonical_axis_index(axis)
        except CaffeError as exc:
            raise self.error(str(exc)) from None

    def __repr__(self):
        return f"<{type(self).__name__} '{self.name}'>"
