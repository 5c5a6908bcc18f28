"""Layer: the base class of every layer type, as Caffe's Layer and pycaffe's `caffe.Layer`.

A layer type overrides:
  setup(bottom, top)                       one-time checks and parameter creation (Caffe's LayerSetUp)
  reshape(bottom, top)                     output shapes from input shapes; called before each forward
  forward_cpu(bottom, top)                 NumPy reference
  backward_cpu(top, propagate_down, bottom)
  make_gpu()                               optional: the layer's GPU half (see below)
  cases                                    the conformance cases it is checked with (see below)

Conventions every implementation keeps (the Net and the solvers rely on them):
  * results are written into the existing arrays (`top[0].data[...] = x`, `out=`), never by
    rebinding, because in-place layers and shared buffers alias them; inputs are read through
    `data_readonly()` / `diff_readonly()`, which leave a device copy valid;
  * backward *overwrites* bottom diffs but *accumulates* into parameter diffs (`+=`), so that
    `iter_size` and shared parameters sum their gradients; the solver clears them each step;
  * a loss layer scales its gradient by `top[0].diff.flat[0]`, which the Net fills with the
    layer's loss weight (Caffe's convention), and sets `default_loss_weights = (1.0,)`.

The GPU half. A layer with CUDA kernels returns from `make_gpu()` an object (a GPUHalf, in
`<family>_gpu.py` beside the layer and its `.cu`) built with explicit arguments from what setup
decided; it declares its own device buffers and reads the layer only through public API (`blobs`,
`param_gradient_wanted`). `make_gpu()` returns None for a configuration no kernel covers: the
CPU code then runs in GPU mode too and the SyncedArrays move the data, which is also how a layer
with no GPU half at all (a NumPy-only plugin) runs everywhere.

Conformance. `cases` lists `nvcaffe_py.conformance.Case`s: shapes and parameters on which
tests/test_conformance.py runs the float64 gradient check and CPU<->GPU parity. Every built-in
type declares its own (a class does not inherit its parent's); `conformance.check_layer_type`
runs the same checks on a plugin.

pycaffe Python layers subclass this same class and override `setup/reshape/forward/backward`
directly; that is why `forward`/`backward` are plain methods that pick the backend.
"""
import numpy as np

from . import mode
from .blob import Blob
from .errors import CaffeError
from .filler import fill
from .formats import blob_from_proto


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
    # May forward write its top over its bottom (element-wise layers, which Caffe also runs in
    # place)? The deploy-time forward then does so where nothing reads the bottom afterwards.
    in_place_capable = False
    # Does reshape read the bottoms' values, not only their shapes (Filter)? Otherwise the
    # deploy-time forward skips the reshape of a built-in layer whose bottoms' shapes are unchanged.
    reshape_reads_data = False
    # The conformance cases of this type (nvcaffe_py.conformance.Case).
    cases = ()
    # The GPU half, built on first use in GPU mode (see make_gpu).
    _gpu_half = None
    _gpu_half_built = False

    # May `force_backward` make this bottom need a gradient? (labels: no)
    def allow_force_backward(self, bottom_index: int) -> bool:
        return True

    def __init__(self, layer_param, phase=None, dtype=np.float32):
        self.layer_param = layer_param
        self.dtype = np.dtype(dtype)
        self.phase = layer_param.phase if phase is None else phase
        self.blobs = BlobVec(dtype=self.dtype)
        # Weights carried inside the LayerParameter (e.g. from a caffemodel) are used as given.
        for k, proto in enumerate(layer_param.blobs):
            where = f"layer '{layer_param.name}' ({layer_param.type}) param {k}"
            self.blobs.append(blob_from_proto(proto, dtype=self.dtype, where=where))
        self.param_propagate_down = []
        self.param_str = layer_param.python_param.param_str
        self.loss_weights = []

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

    def make_gpu(self):
        """This layer's GPU half for the configuration setup chose, or None (the CPU code runs)."""
        return None

    def forward_only(self):
        """Called by the deploy-time forward: no backward follows this layer's forwards from now
        on, so it may take a forward-only path (Convolution: oneDNN, where installed)."""

    def multiply_adds(self, bottom, top) -> int:
        """How many multiply-adds of weights with activations one forward does at these shapes
        (`nvcaffe summary`): the convolutions', inner products' and recurrent layers' products.
        Element-wise work, pooling and normalization count 0, as in published MAC counts."""
        return 0

    @classmethod
    def runs_in_place(cls) -> bool:
        """May this type's top be its own bottom (`top` named as `bottom`)? Its conformance cases
        say: an in-place case states that forward and backward are right on shared memory (and
        conformance runs it so); declared cases without one say no (InnerProduct would read its
        input after overwriting it). A type that declares no cases at all, as a pycaffe Python
        layer, is trusted, as Caffe trusts every layer."""
        return cls.cases == () or any(case.in_place for case in cls.cases)

    @classmethod
    def has_backward(cls) -> bool:
        """Does this type compute gradients at all? (Caffe's layers without one, such as
        Accuracy or the data layers, keep the base backward, which refuses.)"""
        return cls.backward_cpu is not Layer.backward_cpu or cls.backward is not Layer.backward

    # -- setting up and dispatch -------------------------------------------------------------
    def set_up(self, bottom, top):
        """Caffe's SetUp: check the blob counts, set up, then shape the tops."""
        self.check_blob_counts(bottom, top)
        self._gpu_half, self._gpu_half_built = None, False  # setup may change what the half needs
        self.setup(bottom, top)
        self.reshape(bottom, top)

    @property
    def gpu(self):
        """The GPU half (make_gpu's), built once after setup; None where there is none."""
        if not self._gpu_half_built:
            self._gpu_half, self._gpu_half_built = self.make_gpu(), True
        return self._gpu_half

    def uses_gpu(self) -> bool:
        """Does this layer run GPU code now (GPU mode, and a GPU half for its configuration)?"""
        return mode.gpu_mode() and self.gpu is not None

    def forward(self, bottom, top):
        if mode.gpu_mode() and self.gpu is not None:  # uses_gpu(), a call less per layer
            self.gpu.forward(bottom, top)
        else:
            self.forward_cpu(bottom, top)

    def backward(self, top, propagate_down, bottom):
        if self.uses_gpu():
            self.gpu.backward(top, propagate_down, bottom)
        else:
            self.backward_cpu(top, propagate_down, bottom)

    def param_gradient_wanted(self, index: int) -> bool:
        """Should backward compute the gradient of parameter blob `index`? The Net decides from
        lr_mult (Caffe's param_propagate_down); a layer used on its own wants every one."""
        wanted = self.param_propagate_down
        return index >= len(wanted) or bool(wanted[index])

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
