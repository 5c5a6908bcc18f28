"""The deploy-time forward of a TEST net: the net's results within float rounding, with fewer
layers, less memory traffic and less memory. `Net(..., optimize=False)` (`nvcaffe test
-optimize=false`) turns it off; it is on for TEST nets where no layer needs backward.

Passes over the net's layers and weights, each giving ordinary layers and blobs, so that every
layer type and backend runs the result:
  fold      BatchNorm, Scale and Bias into the Convolution or InnerProduct before them, or a run of
            them into one Scale (folding.py);
  fuse      an in-place ReLU into the step before it (PlanStep); oneDNN convolutions in a row,
            each reading only the one before, into one step in oneDNN's layout (ChainStep);
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
from .folding import CONVOLUTIONS, Fold, blob_users, find_folds
from .memory_plan import share_buffers
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
        for layer, name in zip(net.layers, net.layer_names):
            if not net.bottom_names[name]:
                self.kept.update(net.top_names[name])
            if not self._is_builtin(layer):
                self.kept.update(net.bottom_names[name] + net.top_names[name])
        self._users = blob_users(net)
        self._folds = {}  # (first, last, into) -> Fold, reused while the same run folds
        self._steps = None
        self._input_shapes = None
        self._valid = None  # the blobs that hold their values after the last full forward; None: all

    @staticmethod
    def _is_builtin(layer):
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
        steps, needed, valid = self._current_steps(), set(names), self._valid
        chosen = []
        for step in reversed(steps):
            index = step[0]
            tops = self.net.top_names[self.net.layer_names[self._step_end[index]]]
            if needed & set(tops):
                chosen.append(step)
                needed |= {b for b in self.net.bottom_names[self.net.layer_names[index]] if b not in valid}
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

    def _chained(self, steps):
        """The steps with each run of oneDNN convolutions, each reading only the single top of
        the one before (a blob nothing else uses and the user does not read), as one ChainStep."""
        merged = []
        for step in steps:
            if merged and self._chains_after(merged[-1], step):
                first, before, bottoms, middle = merged.pop()
                members = before.members if isinstance(before, ChainStep) else [(before, bottoms, middle)]
                merged.append((first, ChainStep(members + [step[1:]]), bottoms, step[3]))
                self._step_end[first] = self._step_end[step[0]]
            else:
                merged.append(step)
        return merged

    def _chains_after(self, before, step):
        net = self.net
        first, before_step, _, before_tops = before
        index, plan_step, bottoms, _ = step
        if len(before_tops) != 1 or len(bottoms) != 1 or bottoms[0] is not before_tops[0]:
            return False
        name = net.bottom_names[net.layer_names[index]][0]
        if name in self.kept or not self._users[name] <= set(range(first, self._step_end[index] + 1)):
            return False
        last = before_step.members[-1][0] if isinstance(before_step, ChainStep) else before_step
        if not all(s.layer.type in CONVOLUTIONS and s.layer.uses_onednn() for s in (last, plan_step)):
            return False
        previous = (before_step.convolutions() if isinstance(before_step, ChainStep)
                    else [before_step.layer.onednn_convolution(before_step.slope)])[-1]
        # oneDNN may have no fast kernel for the layout the one before writes (then None).
        return previous is not None and plan_step.layer.onednn_convolution(plan_step.slope, previous) is not None

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
            cached = bool(bottoms) and self._is_builtin(layer) and not layer.reshape_reads_data
            steps.append((index, PlanStep(layer, relu, cached), bottoms, tops))
            self._step_end[index] = last + (relu is not None)
            index = self._step_end[index] + 1
        if reshape:
            for _, layer, bottoms, tops in steps:
                layer.reshape(bottoms, tops)
        steps = self._chained(steps)
        for group in {id(group): group for group in self._alias_group.values()}.values():
            if not self.kept.intersection(group):
                self._give_storage(group)
        fixed = {self._blobs[name].data_storage for name in self.kept}
        shared = share_buffers(steps, fixed, net.dtype)
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


class ChainStep:
    """Convolution steps in a row on oneDNN, each reading only the single top of the one before (a
    blob no one else uses or reads): one step, each blocked output passed on as it is, with no
    reorder to NCHW and back (the blobs between them are never written). In GPU mode the members
    run one by one."""

    def __init__(self, members):
        self.members = members  # (PlanStep, bottoms, tops)
        first = members[0][0]
        self.layer, self.name, self.type, self.loss_weights = first.layer, first.name, first.type, first.loss_weights
        self.in_place_capable = False
        self._convolutions = None  # while no member reshapes

    def reshape(self, bottoms, tops):
        if any([step.reshape(step_bottoms, step_tops) for step, step_bottoms, step_tops in self.members]):
            self._convolutions = None

    def forward(self, bottoms, tops):
        if self.layer.uses_gpu():
            for step, step_bottoms, step_tops in self.members:
                step.forward(step_bottoms, step_tops)
            return
        if self._convolutions is None:
            self._convolutions = self.convolutions()
        onednn.convolve(self._convolutions, [step.layer.onednn_parameters() for step, _, _ in self.members],
                        bottoms[0].data_readonly(), tops[0].data)

    def convolutions(self):
        """The members' oneDNN primitives, each reading the blocked output of the one before."""
        convolutions = []
        for step, _, _ in self.members:
            convolutions.append(step.layer.onednn_convolution(step.slope, convolutions[-1] if convolutions else None))
        return convolutions
