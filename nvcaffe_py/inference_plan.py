"""The deploy-time forward of a TEST net: the net's results within float rounding, with fewer
layers, less memory traffic and less memory. `Net(..., optimize=False)` (`nvcaffe test
-optimize=false`) turns it off; it is on for TEST nets where no layer needs backward.

Passes over the net's layers and weights, each giving ordinary layers and blobs, so that every
layer type and backend runs the result:
  fold      BatchNorm, Scale and Bias into the Convolution or InnerProduct before them, or a run of
            them into one Scale (folding.py);
  fuse      an in-place ReLU into the step before it (PlanStep); runs of steps oneDNN can run
            into one step in its blocked layouts (onednn_segment.py);
  memory    blobs whose values are never needed at the same time share a buffer, and element-wise
            layers write over an input nothing reads afterwards (memory_plan.py).
The steps are the net's own layers (a folded run is one layer, named after its first) and the
net's own blobs, run by the Net's forward loop, so callbacks see each step under the index of its
first layer (LayerTimer charges a folded run to that layer).

Which blobs hold their values: pycaffe users read blobs after a forward (`net.blobs["fc7"].data`),
so the plan keeps ("kept") the net's inputs and outputs, the tops of layers that read no bottom
(data layers), the blobs of layers that are not built in (Python layers may hold on to arrays),
every blob named in `net.forward(blobs=[...])` and every blob looked up in `net.blobs`. A kept blob
is never folded away and never shares its buffer. A blob first looked up after a forward that did
not keep it is recomputed then, by the steps that lead to it from kept blobs (once; afterwards it
is kept). A forward over part of the net (`start` / `end`) runs the net's own layers, after keeping
the blobs they read and write.

Folded parameters follow the layers' blobs: a write through `blob.data` (or `copy_from`) is seen
at the next forward, which refolds. An array taken from `blob.data` earlier and written later is
not seen (take `blob.data` again, as in GPU mode).
"""
from collections import OrderedDict

from . import log
from .backends.cpu import onednn
from .folding import Fold, blob_users, find_folds
from .memory_plan import share_buffers
from .onednn_segment import Segment
from .proto import caffe_pb2
from .registry import BUILTIN_PACKAGE
from .synced_array import SyncedArray


class InferencePlan:
    def __init__(self, net):
        self.net = net
        self.kept = set(net.inputs) | set(net.outputs)
        self._blobs = OrderedDict()  # name -> blob, without telling anyone it is read
        for layer, name, tops in zip(net.layers, net.layer_names, net.top_vecs):
            self._blobs.update(zip(net.top_names[name], tops))
        # Blobs that hold one buffer by the layers' own doing (in place, Split, Reshape): as set up.
        by_storage = OrderedDict()
        for name, blob in self._blobs.items():
            by_storage.setdefault(blob.data_storage, []).append(name)
        self._alias_group = {name: group for group in by_storage.values() for name in group}
        self._name_of = {id(blob): name for name, blob in self._blobs.items()}
        for layer, name in zip(net.layers, net.layer_names):
            if not net.bottom_names[name]:
                self.kept.update(net.top_names[name])
            if not self.is_builtin(layer):
                self.kept.update(net.bottom_names[name] + net.top_names[name])
        self._users = blob_users(net)
        self._folds = {}  # (first, last, into) -> Fold, reused while the same run folds
        self._steps = None
        self._input_shapes = None
        self._valid = None  # the blobs that hold their values after the last full forward; None: all

    @staticmethod
    def is_builtin(layer):
        """One of this project's layer types (a Python layer or a plugin may do anything)."""
        return type(layer).__module__.startswith(BUILTIN_PACKAGE + ".")

    # -- what the user reads -------------------------------------------------------------------
    def keep(self, names, recompute=True):
        """Keep these blobs' values from now on; with `recompute`, a blob the last forward did not
        keep is computed again now."""
        new = [name for name in names if name not in self.kept]
        if not new:
            return
        for name in new:  # out of any buffer the last plan shared: one of its own
            group = self._alias_group[name]
            if not self.kept.intersection(group):
                self._give_storage(group)
            self.kept.add(name)
        self._steps = None
        stale = [name for name in new if self._valid is not None and name not in self._valid]
        if recompute and stale:
            self._recompute(stale)

    def _recompute(self, names):
        """Run the steps that lead to these blobs from blobs that hold their values. A value is
        known by any name of its alias group (a step may write it under another: a segment writes
        a Split's input, which its tops share)."""
        steps, valid = self._current_steps(), self._valid
        needed, chosen = set().union(*(self._alias_group[name] for name in names)), []
        for step in reversed(steps):
            if needed.intersection(self.name_of(top) for top in step[3]):
                chosen.append(step)
                for bottom in step[2]:
                    group = self._alias_group[self.name_of(bottom)]
                    if not valid.intersection(group):
                        needed.update(group)
        self.net.run_forward(chosen[::-1])
        valid.update(names)

    # -- the steps -----------------------------------------------------------------------------
    def steps(self, start, end):
        """The (index, layer, bottoms, tops) to run for a forward from layer `start` to `end`."""
        net = self.net
        if start == 0 and end == len(net.layers) - 1:
            steps = self._current_steps()
            self._valid = set(self.kept)
            return steps
        names = [net.layer_names[i] for i in range(start, end + 1)]
        written = {t for name in names for t in net.top_names[name]}
        self.keep(written, recompute=False)
        self.keep([b for name in names for b in net.bottom_names[name] if b not in written])
        if self._valid is not None:
            self._valid.update(written)
        return list(zip(range(start, end + 1), net.layers[start:end + 1], net.bottom_vecs[start:end + 1],
                        net.top_vecs[start:end + 1]))

    def _give_storage(self, names):
        """One new buffer (allocated on first use) for blobs that hold one by the layers' doing."""
        storage = SyncedArray(max(self._blobs[name].count for name in names), self.net.dtype)
        for name in names:
            self._blobs[name].use_data_storage(storage)

    def _current_steps(self):
        shapes = [self._blobs[name].shape for name in self.net.inputs]
        if self._steps is None or shapes != self._input_shapes:
            self._build(reshape=shapes != self._input_shapes)
            self._input_shapes = shapes
        for fold in self._active_folds:
            if not fold.is_current():
                fold.refresh()
        return self._steps

    def _segmented(self, steps):
        """The steps with each run that oneDNN can run as one SegmentStep (onednn_segment.py)."""
        if onednn.unavailable_reason() is not None:
            return steps
        merged, segment = [], None
        for step in steps:
            if segment is not None and segment.add(step):
                continue
            if segment is not None:
                merged.extend(segment.finish())
            segment = Segment(self)
            if not segment.add(step):  # nor does it start one
                merged.append(step)
                segment = None
        if segment is not None:
            merged.extend(segment.finish())
        return merged

    def step_spans(self):
        """(first, last) layer names of each step of a full forward that runs several layers (a
        fold, a fused ReLU, a segment): callbacks, and so `nvcaffe time`, see it under its first."""
        steps, names = self._current_steps(), self.net.layer_names
        starts = [index for index, _, _, _ in steps] + [len(names)]
        return [(names[first], names[after - 1]) for first, after in zip(starts, starts[1:]) if after - 1 > first]

    # -- what segments ask -----------------------------------------------------------------------
    def name_of(self, blob) -> str:
        return self._name_of[id(blob)]

    def step_last_layer(self, index) -> int:
        """The last layer of the step that starts at layer `index`."""
        return self._step_end[index]

    def read_outside(self, names, first, last) -> bool:
        """Whether the user or a layer outside first..last reads any of these blobs."""
        inside = range(first, last + 1)
        return any(name in self.kept or any(user not in inside for user in self._users[name]) for name in names)

    def residual_for(self, index, top) -> bool:
        """Whether the output of the step at `index` is read only by an Eltwise SUM of two (which
        may then take that step as a residual add), and not by the user."""
        name = self.name_of(top)
        inside = range(index, self._step_end[index] + 1)
        others = [user for user in self._users[name] if user not in inside]
        if name in self.kept or len(others) != 1:
            return False
        layer = self.net.layers[others[0]]
        return (layer.type == "Eltwise" and layer.op == caffe_pb2.EltwiseParameter.SUM
                and len(self.net.bottom_vecs[others[0]]) == 2)

    def _in_place_relu(self, index, tops):
        """The ReLU at `index` when it works in place on the single top of the step before it."""
        net = self.net
        if index >= len(net.layers) or len(tops) != 1 or net.layers[index].type != "ReLU":
            return None
        return net.layers[index] if net.top_vecs[index][0] is tops[0] is net.bottom_vecs[index][0] else None

    def _build(self, reshape):
        """The steps and their buffers; `reshape` first when the inputs' shapes changed (the blobs'
        values are then to be computed anew)."""
        net = self.net
        runs = find_folds(net, self.kept, self._users)
        self._folds = {run: self._folds.get(run) or Fold(net, *run) for run in runs}
        self._active_folds = list(self._folds.values())
        self._fold_at = {fold.first: fold for fold in self._active_folds}
        steps, index, self._step_end = [], 0, {}
        while index < len(net.layers):
            fold = self._fold_at.get(index)
            if fold is None:
                layer, bottoms, tops, last = net.layers[index], net.bottom_vecs[index], net.top_vecs[index], index
            else:
                layer, bottoms, tops, last = fold.layer, fold.bottoms, fold.tops, fold.last
            layer.forward_only()
            relu = self._in_place_relu(last + 1, tops)
            if relu is not None:
                relu.forward_only()
            cached = bool(bottoms) and self.is_builtin(layer) and not layer.reshape_reads_data
            steps.append((index, PlanStep(layer, relu, cached), bottoms, tops))
            self._step_end[index] = last + (relu is not None)
            index = self._step_end[index] + 1
        if reshape:
            for _, layer, bottoms, tops in steps:
                layer.reshape(bottoms, tops)
        steps = self._segmented(steps)
        for group in {id(group): group for group in self._alias_group.values()}.values():
            if not self.kept.intersection(group):
                self._give_storage(group)
        fixed = {self._blobs[name].data_storage for name in self.kept}
        shared = share_buffers(steps, fixed, net.dtype, self._blobs.values())
        log.info(f"Deploy-time forward of {net.name}: {len(steps)} steps for {len(net.layers)} layers "
                 f"({len(self._active_folds)} folds), {shared * net.dtype.itemsize} bytes of shared activations")
        self._steps = steps


class BlobDict(OrderedDict):
    """`net.blobs`: looking a blob up (by name, or through values() / items()) tells `reader`,
    the plan's `keep`, that the user reads it."""
    reader = None

    def __getitem__(self, name):
        blob = super().__getitem__(name)
        if self.reader is not None:
            self.reader((name,))
        return blob

    def get(self, name, default=None):
        return self[name] if name in self else default

    def values(self):
        if self.reader is not None:
            self.reader(list(self))
        return super().values()

    def items(self):
        if self.reader is not None:
            self.reader(list(self))
        return super().items()


class PlanStep:
    """A step of the plan as the Net's loop runs it: a layer (folded, or the net's own) and the
    in-place ReLU after it, fused in. Its reshape runs only when the bottoms' shapes changed, where
    that is all it depends on (`cached`: a built-in layer with bottoms whose reshape reads no
    values; at batch 1 the reshapes took as long as the work). A layer with `forward_rectified`
    (Convolution) applies the ReLU in its own forward on the CPU (on oneDNN, as a post-op);
    otherwise the ReLU layer runs after it."""

    def __init__(self, layer, relu, cached):
        self.layer, self.relu, self.cached = layer, relu, cached
        self.slope = None if relu is None else relu.negative_slope  # of the fused ReLU
        self.name, self.type, self.loss_weights = layer.name, layer.type, layer.loss_weights
        self.in_place_capable = layer.in_place_capable
        self._rectified = None if relu is None else getattr(layer, "forward_rectified", None)
        self._shapes = None

    def reshape(self, bottoms, tops) -> bool:
        """The layer's reshape, unless it is cached and the bottoms kept their shapes; whether it ran."""
        shapes = [bottom.shape for bottom in bottoms]
        if self.cached and shapes == self._shapes:
            return False
        self.layer.reshape(bottoms, tops)
        if self.relu is not None:
            self.relu.reshape(tops, tops)
        self._shapes = shapes
        return True

    def forward(self, bottoms, tops):
        if self.relu is None:
            self.layer.forward(bottoms, tops)
        elif self._rectified is not None and not self.layer.uses_gpu():
            self._rectified(bottoms, tops, self.slope)
        else:
            self.layer.forward(bottoms, tops)
            self.relu.forward(tops, tops)
