"""Net: a NetParameter turned into an ordered graph of layers and the blobs between them
(Caffe's Net, with pycaffe's Python surface).

Building: filter by NetState -> insert Split layers -> create each layer, connect its bottoms and
tops (in-place when a top repeats its bottom's name), set up and shape it, attach loss weights,
register parameters (sharing those named alike) -> decide which layers need backward.

A TEST net that needs no backward runs its full forwards through a deploy-time plan (folded
layers, shared buffers; inference_plan.py), unless built with `optimize=False`.

Running: the Net owns the loop over its layers. `run_forward` (behind `forward_from_to`) and
`backward_from_to` are the only such loops; whoever needs to act around each layer (the `time`
command, the NaN diagnosis, a profiler, gradient reduction across ranks) adds a callback, as
Caffe's Net::Callback and pycaffe's `net.before_forward(f)` / `after_forward` / `before_backward` / `after_backward`:
f(layer_index) runs around every layer of every pass.
"""
import itertools
import logging
import os
from collections import OrderedDict

import numpy as np
from google.protobuf import text_format

from . import backends, formats, hdf5_format, host_memory, log, registry, trained_weights, unsupported
from .blob import Blob, ShapeError
from .errors import CaffeError
from .inference_plan import BlobDict, InferencePlan
from .net_state import filter_net, make_state
from .pending_losses import loss_term
from .proto import caffe_pb2
from .registry import create_layer
from .split_insertion import insert_splits

TRAIN = caffe_pb2.TRAIN
TEST = caffe_pb2.TEST


def _note_layer(exc, layer, stage):
    """Name the layer on an exception raised inside it, keeping the exception's own type (a Python
    layer's RuntimeError reaches the caller as a RuntimeError, as in pycaffe). A CaffeError is a
    message for the user that names what it is about already."""
    if not isinstance(exc, CaffeError):
        exc.add_note(f"in {stage} of layer '{layer.name}' ({layer.type})")


class ParamSpec:
    """What the solver needs of a learnable blob: its multipliers and where it lives."""

    __slots__ = ("blob", "lr_mult", "decay_mult", "layer_name", "index", "name")

    def __init__(self, blob, lr_mult, decay_mult, layer_name, index, name):
        self.blob, self.lr_mult, self.decay_mult = blob, lr_mult, decay_mult
        self.layer_name, self.index, self.name = layer_name, index, name


def _definition_text(net_param) -> str:
    """The net's definition as Caffe logs it: prototxt text, without any weights it carries."""
    if any(layer.blobs for layer in net_param.layer):
        net_param = caffe_pb2.NetParameter.FromString(net_param.SerializeToString())
        for layer in net_param.layer:
            del layer.blobs[:]
    return text_format.MessageToString(net_param)


class _MemoryNeed:
    """The bytes of the net's blobs and parameters, added up as layers are set up: the layer whose
    blobs make the net need more memory than the process may use is refused, at setup."""

    def __init__(self, source):
        self.source, self.total, self.seen = source, 0, set()
        self.usable = host_memory.usable_bytes()

    def add(self, layer, blobs):
        for blob in blobs:
            if id(blob) not in self.seen:
                self.seen.add(id(blob))
                self.total += blob.count * blob.dtype.itemsize
        if self.total > self.usable:
            raise CaffeError(f"{self.source}: layer '{layer.name}' ({layer.type}): the net's blobs and parameters need "
                             f"{self.total} bytes by this layer, more than this process may use ({self.usable})")


class Callback:
    """A callback added to a Net; `remove()` (or leaving its `with` block) takes it off again."""

    def __init__(self, callbacks, function):
        self._callbacks, self.function = callbacks, function
        callbacks.append(function)

    def remove(self):
        if self.function in self._callbacks:
            self._callbacks.remove(self.function)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()


class Net:
    """`Net(proto, phase)`, `Net(proto, weights, phase)`, or keywords `phase=`, `weights=`,
    `level=`, `stages=`; `proto` is a prototxt path or a caffe_pb2.NetParameter (then `source`
    names it in error messages). With `optimize` (the default) a TEST net that needs no backward
    runs full forwards through the deploy-time plan; False runs every layer as declared."""

    def __init__(self, network, *args, phase=None, weights=None, level=None, stages=None,
                 dtype=np.float32, source=None, optimize=True):
        positional = list(args)
        if positional and isinstance(positional[0], (str, bytes, os.PathLike)):
            weights = positional.pop(0)
        if positional:
            phase = positional.pop(0)
        if positional:
            raise TypeError("Net(proto, [weights], phase): too many positional arguments")
        self.dtype = np.dtype(dtype)
        self.source = os.fspath(network) if isinstance(network, (str, os.PathLike)) else (source or "<net>")
        param = formats.read_net_param(network)
        if phase is None:
            phase = param.state.phase
        state = make_state(param, phase, level, stages)
        self._init(param, state)
        self._plan = None
        if optimize and self.phase == TEST and not any(self.layer_need_backward):
            self._plan = InferencePlan(self)
            self.blobs.reader = self._plan.keep
        if weights is not None:
            self.copy_from(weights)

    # -- construction ------------------------------------------------------------------------
    def _init(self, param, state):
        self.phase = state.phase
        self.state = state
        self.name = param.name
        in_state = filter_net(param, state)
        if log.logger.isEnabledFor(logging.INFO):
            log.info(f"Initializing net from parameters: \n{_definition_text(in_state)}")
        filtered = insert_splits(in_state, self.source)
        if not filtered.layer:
            self._refuse_empty(param, state)
        unsupported.check_layer_types(filtered, self.source)
        self.param = filtered
        memory_used = 0  # Caffe's "Memory required for data": every top's elements, in bytes
        self.layers = []
        self.layer_names = []
        self._callbacks = {"before_forward": [], "after_forward": [], "before_backward": [], "after_backward": []}
        # Blob names per layer: by index (two layers may share a name, as Caffe's mnist_autoencoder
        # has two 'loss' layers) and by name, pycaffe's view (the last layer of a name).
        self.layer_bottom_names, self.layer_top_names = [], []
        self.bottom_names, self.top_names = OrderedDict(), OrderedDict()
        self.bottom_vecs, self.top_vecs = [], []
        self.blobs = BlobDict()
        self.blob_loss_weights = {}
        self.inputs = []
        self._params = []  # ParamSpec of every learnable blob, owners only
        self._param_owner = {}  # shared param name -> (ParamSpec, shape)
        available = OrderedDict()  # blobs produced but not yet consumed
        bottom_need = []  # per layer, per bottom: does this bottom need a gradient?
        blob_needs_backward = {}
        memory = _MemoryNeed(self.source)

        for layer_param in filtered.layer:
            if not layer_param.HasField("phase"):
                layer_param.phase = self.phase
            name = layer_param.name
            log.info(f"Creating Layer {name}")
            try:
                layer = create_layer(layer_param, self.phase, self.dtype)
            except ShapeError as exc:
                raise CaffeError(f"{self.source}: layer '{name}' ({layer_param.type}): {exc}") from None
            self._check_given_per_blob(layer_param, "propagate_down", "bottom", len(layer_param.bottom))
            bottoms, needs = [], []
            for j, bname in enumerate(layer_param.bottom):
                log.info(f"{name} <- {bname}")
                bottoms.append(self.blobs[bname])
                available.pop(bname, None)
                need = blob_needs_backward.get(bname, False)
                if j < len(layer_param.propagate_down):
                    need = layer_param.propagate_down[j]
                needs.append(need)
            tops = []
            top_names = list(layer_param.top)
            for j, tname in enumerate(top_names):
                in_place = j < len(layer_param.bottom) and layer_param.bottom[j] == tname
                if in_place and not layer.runs_in_place():
                    raise CaffeError(f"{self.source}: layer '{name}' ({layer.type}) cannot run in place: its top "
                                     f"'{tname}' is its bottom; give the top another name")
                if in_place:
                    tops.append(self.blobs[tname])
                elif tname in self.blobs:
                    raise CaffeError(f"{self.source}: top blob '{tname}' of layer '{name}' is produced by more than one layer")
                else:
                    blob = Blob(dtype=self.dtype)
                    self.blobs[tname] = blob
                    tops.append(blob)
                available[tname] = tops[-1]
                log.info(f"{name} -> {tname}")
            self._add_auto_tops(layer, tops, top_names)
            log.info(f"Setting up {name}")
            self._setup_layer(layer, bottoms, tops)
            for top, weight in zip(tops, layer.loss_weights):
                log.info(f"Top shape: {''.join(f'{d} ' for d in top.shape)}({top.count})")  # Caffe's shape_string
                if weight:
                    log.info(f"    with loss weight {log.number(weight)}")
                memory_used += top.count
            log.info(f"Memory required for data: {memory_used * self.dtype.itemsize}")
            if layer_param.type == "Input":
                self.inputs.extend(top_names)
            for j, tname in enumerate(top_names):
                self.blob_loss_weights[tname] = layer.loss_weights[j]
            self.layers.append(layer)
            self.layer_names.append(name)
            self.layer_bottom_names.append(list(layer_param.bottom))
            self.layer_top_names.append(top_names)
            self.bottom_names[name] = list(layer_param.bottom)
            self.top_names[name] = top_names
            self.bottom_vecs.append(bottoms)
            self.top_vecs.append(tops)

            layer_needs = any(needs)
            if len(layer_param.param) > len(layer.blobs):
                raise CaffeError(f"{self.source}: layer '{name}' gives {len(layer_param.param)} param specs but has "
                                 f"only {len(layer.blobs)} parameter blob(s)")
            layer.param_propagate_down = []
            for k in range(len(layer.blobs)):
                lr_mult = self._register_param(layer, k)
                layer.param_propagate_down.append(lr_mult != 0)
                layer_needs = layer_needs or lr_mult != 0
            for tname in top_names:
                blob_needs_backward[tname] = layer_needs
            bottom_need.append(needs)
            memory.add(layer, [*tops, *layer.blobs])
        self.outputs = list(available)
        self._decide_backward(bottom_need, filtered.force_backward)
        for name, needed in reversed(list(zip(self.layer_names, self.layer_need_backward))):
            log.info(f"{name} {'needs' if needed else 'does not need'} backward computation.")
        for name in self.outputs:
            log.info(f"This network produces output {name}")
        log.info("Network initialization done.")

    def _refuse_empty(self, param, state):
        """A net with no layers would train and test on nothing, reporting loss 0."""
        if not param.layer:
            raise CaffeError(f"{self.source}: the net has no layers")
        stages = ", ".join(state.stage) or "none"
        raise CaffeError(f"{self.source}: none of the net's {len(param.layer)} layers is included in phase "
                         f"{caffe_pb2.Phase.Name(state.phase)} (level {state.level}, stages: {stages})")

    def _check_given_per_blob(self, layer_param, field, kind, count):
        """Caffe's rule for per-blob fields: given once per blob, or not at all."""
        given = len(getattr(layer_param, field))
        if given and given != count:
            raise CaffeError(f"{self.source}: layer '{layer_param.name}' gives {field} {given} times for its {count} "
                             f"{kind} blob(s); give it once per {kind} or not at all")

    def _add_auto_tops(self, layer, tops, top_names):
        wanted = layer.exact_num_top if layer.exact_num_top is not None else (layer.min_top or 0)
        if layer.auto_top_blobs:
            while len(tops) < wanted:
                blob = Blob(dtype=self.dtype)
                tname = f"({layer.name})_auto_top_{len(tops)}"
                self.blobs[tname] = blob
                tops.append(blob)
                top_names.append(tname)

    def _setup_layer(self, layer, bottoms, tops):
        try:
            layer.set_up(bottoms, tops)
        except ShapeError as exc:
            raise CaffeError(f"{self.source}: layer '{layer.name}' ({layer.type}): {exc}") from None
        except CaffeError:
            raise
        except Exception as exc:
            if not registry.is_builtin(layer):
                _note_layer(exc, layer, "setup")  # the user's code: its own exception, as pycaffe raises it
                raise
            # Parameters our checks let through (a negative filler std, say): one line for the user.
            raise CaffeError(f"{self.source}: layer '{layer.name}' ({layer.type}) failed to set up: "
                             f"{type(exc).__name__}: {exc}") from exc
        self._check_given_per_blob(layer.layer_param, "loss_weight", "top", len(tops))
        given = list(layer.layer_param.loss_weight)
        defaults = list(layer.default_loss_weights)
        layer.loss_weights = [given[j] if j < len(given) else (defaults[j] if j < len(defaults) and not given else 0.0)
                              for j in range(len(tops))]
        # Caffe writes the loss weight into the top's diff once, here: backward starts from that
        # diff, so a diff the caller sets afterwards (net.backward(**{top: d})) is what it uses.
        for top, weight in zip(tops, layer.loss_weights):
            if weight:
                top.diff[...] = weight

    def _register_param(self, layer, k) -> float:
        lp = layer.layer_param
        spec = lp.param[k] if k < len(lp.param) else caffe_pb2.ParamSpec()
        blob = layer.blobs[k]
        pname = spec.name
        if pname and pname in self._param_owner:
            owner, owner_layer = self._param_owner[pname]
            strict = spec.share_mode != caffe_pb2.ParamSpec.PERMISSIVE
            if (strict and owner.blob.shape != blob.shape) or owner.blob.count() != blob.count():
                raise CaffeError(
                    f"layer '{layer.name}' shares param '{pname}' with layer '{owner_layer}', but its shape "
                    f"{blob.shape} differs from the owner's {owner.blob.shape}")
            if spec.HasField("lr_mult") and spec.lr_mult != owner.lr_mult:
                raise CaffeError(f"layer '{layer.name}': shared param '{pname}' has lr_mult {spec.lr_mult}, "
                                 f"but its owner in layer '{owner_layer}' has {owner.lr_mult}")
            if strict:
                layer.blobs[k] = owner.blob
            else:  # PERMISSIVE: same count, own shape, shared storage
                blob.share_data(owner.blob)
                blob.share_diff(owner.blob)
            return owner.lr_mult
        entry = ParamSpec(blob, spec.lr_mult, spec.decay_mult, layer.name, k, pname)
        self._params.append(entry)
        if pname:
            self._param_owner[pname] = (entry, layer.name)
        return spec.lr_mult

    def _decide_backward(self, bottom_need, force_backward):
        """Caffe's rule: a layer runs backward only if it leads to a loss and something below
        it (a bottom or a parameter) wants a gradient; `force_backward` asks for every gradient."""
        self.layer_need_backward = []
        for i, layer in enumerate(self.layers):
            self.layer_need_backward.append(any(bottom_need[i]) or any(layer.param_propagate_down))
        under_loss, skip = set(), set()
        for i in reversed(range(len(self.layers))):
            layer = self.layers[i]
            tops = self.layer_top_names[i]
            contributes = any(layer.loss_weights[j] != 0 or t in under_loss for j, t in enumerate(tops))
            skip_down = all(t in skip for t in tops) if tops else True
            if self.layer_need_backward[i] and skip_down:
                self.layer_need_backward[i] = False
                bottom_need[i] = [False] * len(bottom_need[i])
            if not contributes:
                self.layer_need_backward[i] = False
            for j, b in enumerate(self.layer_bottom_names[i]):
                if contributes:
                    under_loss.add(b)
                else:
                    bottom_need[i][j] = False
                if not bottom_need[i][j]:
                    skip.add(b)
        if force_backward:
            for i, layer in enumerate(self.layers):
                self.layer_need_backward[i] = True
                bottom_need[i] = [need or layer.allow_force_backward(j) for j, need in enumerate(bottom_need[i])]
                layer.param_propagate_down = [True] * len(layer.blobs)
        self.bottom_need_backward = bottom_need

    # -- pycaffe-style views -----------------------------------------------------------------
    @property
    def layer_dict(self):
        return OrderedDict(zip(self.layer_names, self.layers))

    @property
    def params(self):
        """Layer name -> its parameter blobs (layers with parameters only), as pycaffe's."""
        return OrderedDict((n, list(l.blobs)) for n, l in zip(self.layer_names, self.layers) if len(l.blobs))

    @property
    def learnable_params(self):
        return list(self._params)

    def layer_index(self, name) -> int:
        try:
            return self.layer_names.index(name)
        except ValueError:
            raise CaffeError(f"net has no layer named '{name}'") from None

    @property
    def _layer_names(self):
        """pycaffe's spelling (scripts read `net._layer_names`)."""
        return self.layer_names

    # -- callbacks around each layer (Caffe's Net::Callback) ---------------------------------
    def before_forward(self, function) -> Callback:
        """Run function(layer_index) before each layer's forward; returns a removable handle."""
        return Callback(self._callbacks["before_forward"], function)

    def after_forward(self, function) -> Callback:
        return Callback(self._callbacks["after_forward"], function)

    def before_backward(self, function) -> Callback:
        """Run function(layer_index) before each layer's turn in backward (whether or not the
        layer computes a gradient, as in Caffe)."""
        return Callback(self._callbacks["before_backward"], function)

    def after_backward(self, function) -> Callback:
        return Callback(self._callbacks["after_backward"], function)

    # -- running -----------------------------------------------------------------------------
    def forward_from_to(self, start=0, end=None, losses=None) -> float:
        end = len(self.layers) - 1 if end is None else end
        if self._plan is not None:
            return self.run_forward(self._plan.steps(start, end), losses)
        return self.run_forward(zip(range(start, end + 1), self.layers[start:end + 1],
                                    self.bottom_vecs[start:end + 1], self.top_vecs[start:end + 1]), losses)

    def run_forward(self, steps, losses=None) -> float:
        """Run (layer index, layer, bottoms, tops) steps in order, with the callbacks; the loss. With
        `losses` (a PendingLosses) the loss tops go there instead, unread, and the return is None."""
        before, after = self._callbacks["before_forward"], self._callbacks["after_forward"]
        loss = 0.0
        with backends.net_pass():
            for i, layer, bottoms, tops in steps:
                for function in before:
                    function(i)
                try:
                    layer.reshape(bottoms, tops)
                    layer.forward(bottoms, tops)
                except ShapeError as exc:  # a shape the inputs led to (pycaffe reshapes inputs)
                    raise CaffeError(f"{self.source}: layer '{layer.name}' ({layer.type}): {exc}") from None
                except Exception as exc:
                    _note_layer(exc, layer, "forward")
                    raise
                for function in after:
                    function(i)
                for top, weight in zip(tops, layer.loss_weights):
                    if weight and losses is not None:
                        losses.add_top(top, weight)
                    elif weight:
                        loss += loss_term(weight, top.data_readonly())
        if losses is not None:
            losses.end_pass()
            return None
        return loss

    def backward_from_to(self, start=None, end=0):
        start = len(self.layers) - 1 if start is None else start
        before, after = self._callbacks["before_backward"], self._callbacks["after_backward"]
        with backends.net_pass():
            for i in range(start, end - 1, -1):
                layer, tops = self.layers[i], self.top_vecs[i]
                for function in before:
                    function(i)
                if self.layer_need_backward[i]:
                    try:
                        layer.backward(tops, self.bottom_need_backward[i], self.bottom_vecs[i])
                    except Exception as exc:
                        _note_layer(exc, layer, "backward")
                        raise
                for function in after:
                    function(i)

    def forward_backward(self, losses=None) -> float:
        """One forward and backward pass; the loss, or None when `losses` (a PendingLosses) keeps it."""
        loss = self.forward_from_to(losses=losses)
        self.backward_from_to()
        return loss

    def reshape(self):
        for layer, bottoms, tops in zip(self.layers, self.bottom_vecs, self.top_vecs):
            layer.reshape(bottoms, tops)

    def clear_param_diffs(self):
        for p in self._params:
            p.blob.zero_diff()

    def forward(self, blobs=None, start=None, end=None, **kwargs):
        """pycaffe's Net.forward: set input blobs from keywords, run, return the output arrays."""
        start_index = self.layer_index(start) if start is not None else 0
        if end is not None:
            end_index = self.layer_index(end)
            outputs = set(self.top_names[end]) | set(blobs or [])
        else:
            end_index = len(self.layers) - 1
            outputs = set(self.outputs) | set(blobs or [])
        for name, value in kwargs.items():
            self._set_blob(name, value, "data")
        if self._plan is not None:
            self._plan.keep(outputs, recompute=start_index > 0)
        self.forward_from_to(start_index, end_index)
        return {name: self.blobs[name].data for name in outputs}

    def backward(self, diffs=None, start=None, end=None, **kwargs):
        """pycaffe's Net.backward: set output diffs from keywords, run, return the input diffs."""
        start_index = self.layer_index(start) if start is not None else len(self.layers) - 1
        if end is not None:
            end_index = self.layer_index(end)
            outputs = set(self.bottom_names[end]) | set(diffs or [])
        else:
            end_index = 0
            outputs = set(self.inputs) | set(diffs or [])
        for name, value in kwargs.items():
            self._set_blob(name, value, "diff")
        self.backward_from_to(start_index, end_index)
        return {name: self.blobs[name].diff for name in outputs}

    def forward_all(self, blobs=None, **kwargs):
        """pycaffe's forward_all: run N items per input (`kwargs`: input name -> array) through the
        net a batch at a time (the last batch padded with zeros); {output or `blobs` name: the N
        results stacked}."""
        if not kwargs:
            raise CaffeError(f"forward_all needs the input arrays as keywords (the net's inputs: "
                             f"{', '.join(self.inputs) or 'none'})")
        results = {name: [] for name in set(self.outputs) | set(blobs or [])}
        for batch in self._batch(kwargs, "forward_all"):
            for name, value in self.forward(blobs=blobs, **batch).items():
                results[name].extend(value.copy())
        return self._unpad(results, kwargs)

    def forward_backward_all(self, blobs=None, diffs=None, **kwargs):
        """pycaffe's forward_backward_all: as forward_all, with a backward after each forward; the
        keywords are inputs (fed forward) and outputs (their diffs fed backward). Returns (the
        outputs and `blobs`, the input diffs and `diffs`), each stacked over the N items."""
        results = {name: [] for name in set(self.outputs) | set(blobs or [])}
        gradients = {name: [] for name in set(self.inputs) | set(diffs or [])}
        forward_batches = self._batch({k: v for k, v in kwargs.items() if k in self.inputs}, "forward_backward_all")
        backward_batches = self._batch({k: v for k, v in kwargs.items() if k in self.outputs}, "forward_backward_all")
        for forward_batch, backward_batch in itertools.zip_longest(forward_batches, backward_batches, fillvalue={}):
            for name, value in self.forward(blobs=blobs, **forward_batch).items():
                results[name].extend(value.copy())
            for name, value in self.backward(diffs=diffs, **backward_batch).items():
                gradients[name].extend(value.copy())
        return self._unpad(results, kwargs), self._unpad(gradients, kwargs)

    def _batch(self, arrays, caller):
        """{name: one batch of each array} per batch of the net's batch size, the last one padded
        with zeros (an empty `arrays` yields nothing)."""
        unknown = [name for name in arrays if name not in self.blobs]
        if unknown:
            raise CaffeError(f"{caller}: net has no blob named '{unknown[0]}' (inputs: {', '.join(self.inputs)}; "
                             f"outputs: {', '.join(self.outputs)})")
        arrays = {name: np.asarray(array) for name, array in arrays.items()}
        if not arrays:
            return
        total = len(next(iter(arrays.values())))
        batch_size = self.blobs[next(iter(arrays))].shape[0]
        for start in range(0, total, batch_size):
            batch = {name: array[start:start + batch_size] for name, array in arrays.items()}
            padding = max(0, start + batch_size - total)
            if padding:
                batch = {name: np.concatenate([part, np.zeros((padding,) + part.shape[1:], part.dtype)])
                         for name, part in batch.items()}
            yield batch

    @staticmethod
    def _unpad(results, arrays):
        """The stacked results of the items given, without those of the padding."""
        total = len(next(iter(arrays.values()))) if arrays else None
        return {name: np.asarray(values[:total]) for name, values in results.items()}

    def set_input_arrays(self, data, labels):
        """pycaffe's: feed arrays to the net's first layer, which must be MemoryData."""
        if not self.layers or self.layers[0].type != "MemoryData":
            raise CaffeError("set_input_arrays may only be called if the first layer is a MemoryData layer")
        self.layers[0].reset(data, labels)

    def _set_blob(self, name, value, field):
        if name not in self.blobs:
            raise CaffeError(f"net has no blob named '{name}' (blobs: {', '.join(self.blobs)})")
        blob = self.blobs[name]
        value = np.asarray(value)
        if value.shape != blob.shape:
            raise CaffeError(f"blob '{name}' has shape {blob.shape}; the array given has shape {value.shape}")
        getattr(blob, field)[...] = value

    # -- weights -----------------------------------------------------------------------------
    def copy_from(self, weights):
        """Copy trained parameters, layer by name, from a .caffemodel path or a NetParameter; a path
        ending in .h5 is read as Caffe's HDF5 weights (as Caffe's CopyTrainedLayersFrom decides).
        A file that gives no learnable layer weights is an error, one that misses some a warning."""
        trained_weights.copy_trained_layers(self, weights)

    copy_trained_layers_from = copy_from

    def load_hdf5(self, filename):
        """pycaffe's load_hdf5 (Caffe's CopyTrainedLayersFromHDF5), whatever the file's extension."""
        trained_weights.copy_trained_layers(self, filename, hdf5=True)

    def _owned_params(self):
        """(layer name, blob index) of every param its layer owns rather than shares."""
        return {(p.layer_name, p.index) for p in self._params}

    def share_with(self, other: "Net"):
        """Use `other`'s parameter blobs (Caffe's ShareTrainedLayersWith, for test nets); a clash
        names both nets, e.g. 'the TEST net of net.prototxt' and 'the TRAIN net of train.prototxt'."""
        others = other.layer_dict
        for name, layer in self.layer_dict.items():
            source = others.get(name)
            if source is None or not len(layer.blobs):
                continue
            if len(source.blobs) != len(layer.blobs):
                raise CaffeError(f"cannot share the weights of layer '{name}': it has {len(layer.blobs)} param blobs "
                                 f"in {self.description} but {len(source.blobs)} in {other.description}")
            for k, blob in enumerate(source.blobs):
                if blob.shape != layer.blobs[k].shape:
                    raise CaffeError(f"cannot share the weights of layer '{name}': param {k} has shape "
                                     f"{layer.blobs[k].shape} in {self.description} but {blob.shape} in "
                                     f"{other.description}")
                layer.blobs[k] = blob

    @property
    def description(self) -> str:
        """'the TEST net of net.prototxt', for messages about two nets."""
        return f"the {caffe_pb2.Phase.Name(self.phase)} net of {self.source}"

    def to_proto(self, write_diff=False) -> caffe_pb2.NetParameter:
        out = caffe_pb2.NetParameter()
        out.name = self.name
        for layer in self.layers:
            lp = out.layer.add()
            lp.CopyFrom(layer.layer_param)
            del lp.blobs[:]
            for blob in layer.blobs:
                formats.blob_to_proto(blob.data_readonly(), blob.diff_readonly() if write_diff else None,
                                      lp.blobs.add(), double=self.dtype == np.float64)
        return out

    def save(self, filename, write_diff=False) -> str:
        """Write the weights as a .caffemodel; returns the file's SHA-256 (hex)."""
        return formats.write_binary(filename, self.to_proto(write_diff))

    def save_hdf5(self, filename, write_diff=False) -> str:
        """pycaffe's save_hdf5 (Caffe's ToHDF5): the weights in Caffe's HDF5 layout; returns the
        file's SHA-256 (hex)."""
        owned = self._owned_params()
        layers = [(name, layer.blobs, [(name, k) in owned for k in range(len(layer.blobs))])
                  for name, layer in zip(self.layer_names, self.layers)]
        return hdf5_format.write_weights(filename, layers, write_diff)

    def __repr__(self):
        return f"<Net '{self.name}' phase={caffe_pb2.Phase.Name(self.phase)} layers={len(self.layers)}>"
