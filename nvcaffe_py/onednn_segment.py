"""Runs of the deploy-time forward's steps on oneDNN as one step, in oneDNN's blocked layouts: the
values between them never go back to NCHW (inference_plan.py's last pass before the memory plan).

A segment is a run of consecutive steps, each a layer oneDNN runs (onednn.py): a Convolution
(with the ReLU after it), Pooling, InnerProduct, LRN and Concat, each built to read the layouts its
inputs come in; Split and a TEST-phase Dropout pass their input on. An Eltwise SUM of two inputs,
one of them a Convolution's output that only it reads, is that Convolution with a residual add
(a post-op: the output starts as the other input), and the ReLU after it. A step oneDNN cannot
run ends the segment; a segment without a Convolution or InnerProduct is not one.

What leaves a segment: a value that the user reads (the plan keeps it) or that a step after the
segment reads is written to its blob, in NCHW, right after it is computed (a reorder, or the
primitive writes the blob itself where its layout is NCHW already). The other values live in
per-thread work buffers (onednn._Workspace), shared by value lifetimes within the segment and by
every segment, and the blobs that would hold them are never written (a blob first read after a
forward is then computed again by the plan).

Running it: one pass over a list of primitives, each with its argument addresses (the blobs'
arrays, read each run; the work buffers; the weights, reordered again only for a new version),
the OpenMP thread count set where a primitive wants another, one wait for the stream at the end.
In GPU mode the steps run one by one as the plan made them.
"""
from .backends.cpu import onednn
from .folding import CONVOLUTIONS
from .memory_plan import Slots
from .proto import caffe_pb2


class _Value:
    """A value in the segment: its descriptor and dims; `blob` (the blob it is written to, where
    it leaves the segment or came in from outside); `names` (the blob names that hold it)."""

    def __init__(self, md, dims, blob, names, external=False):
        self.md, self.dims, self.blob, self.names = md, tuple(dims), blob, set(names)
        self.external = external  # an input from before the segment, in its blob (NCHW)
        self.export = False


class _Op:
    """A primitive of the segment: reads `reads` (values), writes `writes`; `operation` gives its
    primitive (`step`), thread count and, for weighted ones, the parameters of `layer`; `residual`
    the value its output starts as (a residual add)."""

    def __init__(self, operation, reads, writes, layer=None, residual=None, step=None, export_to=None, sources=1):
        self.operation, self.reads, self.writes, self.layer, self.residual = operation, reads, writes, layer, residual
        self.step = step if step is not None else operation.step
        self.export_to = export_to  # an export: the index of the blob it writes (among the outputs)
        self.sources = sources  # how many of `reads` are its source arguments (a Concat's all; else the first)


class Segment:
    """Builds one segment step by step (`add`), then the runnable step (`finish`)."""

    def __init__(self, plan):
        self.plan, self.library = plan, onednn.library()
        self.steps, self.ops, self.values = [], [], {}  # values: id(blob) -> _Value
        self.pending = {}  # id(top blob) -> (layer, source value, top blob) of a Convolution an Eltwise will take
        self.weighted = 0

    # -- building ------------------------------------------------------------------------------
    def value_of(self, blob):
        """The value a blob holds: computed in the segment, else an NCHW input from outside."""
        value = self.values.get(id(blob))
        if value is None:
            value = _Value(self.library.desc(blob.shape), blob.shape, blob, [self.plan.name_of(blob)], external=True)
            self.values[id(blob)] = value
        return value

    def add(self, step) -> bool:
        """Take the plan step (index, PlanStep, bottoms, tops) into the segment, if oneDNN runs it
        here; False leaves the segment as it was."""
        index, plan_step, bottoms, tops = step
        layer = plan_step.layer
        if not self.plan.is_builtin(layer) or layer.uses_gpu():
            return False
        if any(id(b) in self.pending for b in bottoms) and layer.type != "Eltwise":
            return False  # a held Convolution's output is read by the Eltwise alone
        self._index = index
        taken = self._take(layer, plan_step.slope, bottoms, tops)
        if taken:
            self.steps.append(step)
        return taken

    def _take(self, layer, slope, bottoms, tops):
        kind = layer.type
        if slope is None and (kind == "Split" or (kind == "Dropout" and not layer.train and tops[0] is bottoms[0])):
            value = self.value_of(bottoms[0])
            for top in tops:
                value.names.add(self.plan.name_of(top))
                self.values[id(top)] = value
            return True
        if kind == "Concat" and slope is None and len(tops) == 1:
            return self._take_concat(layer, bottoms, tops[0])
        if len(bottoms) != 1 and kind != "Eltwise" or len(tops) != 1:
            return False
        if kind in CONVOLUTIONS:
            return self._take_convolution(layer, slope, bottoms[0], tops[0])
        if kind == "Eltwise":
            return self._take_residual(layer, slope, bottoms, tops[0])
        make = getattr(layer, "onednn_operation", None)
        if make is None:
            return False
        source = self.value_of(bottoms[0])
        operation = make(source.md, source.dims, slope)
        if operation is None:
            return False
        self._emit(operation, source, tops[0], layer if operation.parameters else None)
        self.weighted += operation.parameters
        return True

    def _take_concat(self, layer, bottoms, top):
        sources = [self.value_of(bottom) for bottom in bottoms]
        operation = getattr(layer, "onednn_concat", lambda *_: None)([v.md for v in sources], [v.dims for v in sources])
        if operation is None:
            return False
        value = _Value(operation.dst, top.shape, top, [self.plan.name_of(top)])
        self.values[id(top)] = value
        self.ops.append(_Op(operation, sources, value, sources=len(sources)))
        return True

    def _convolution_reading(self, layer, slope, source, residual_scale=None, dst=None):
        """(primitive, reorder or None): the layer's Convolution reading `source` as it is, or else
        through a reorder into the layout the primitive chose."""
        operation = None if source.external else layer.onednn_convolution(slope, source.md, residual_scale, dst)
        if operation is not None:
            return operation, None
        operation = layer.onednn_convolution(slope, None, residual_scale, dst)
        if operation is None:
            return None, None
        layout = self.library.layout
        if layout(operation.src) == layout(source.md):  # it chose that layout (NCHW for a first layer of few channels)
            return operation, None
        reorder = operation.reorder_in if source.external else self.library.reorder(source.md, operation.src)
        return operation, reorder

    def _take_convolution(self, layer, slope, bottom, top):
        if not layer.uses_onednn():
            return False
        source = self.value_of(bottom)
        operation, reorder = self._convolution_reading(layer, slope, source)
        if operation is None:
            return False
        self.weighted += 1
        if slope is None and self.plan.residual_for(self._index, top):
            self.pending[id(top)] = (layer, source, top)  # the Eltwise after it builds it
            return True
        self._emit_convolution(operation, reorder, source, top, layer)
        return True

    def _emit_convolution(self, operation, reorder, source, top, layer, residual=None):
        if reorder is not None:
            moved = _Value(operation.src, source.dims, None, ())
            self.ops.append(_Op(None, [source], moved, step=reorder))
            source = moved
        self._emit(operation, source, top, layer, residual)

    def _take_residual(self, layer, slope, bottoms, top):
        """An Eltwise SUM of a held Convolution's output and another value: the Convolution with
        a residual add."""
        held = [k for k, b in enumerate(bottoms) if id(b) in self.pending and layer.coeffs[k] == 1]
        if not held or len(bottoms) != 2 or layer.op != caffe_pb2.EltwiseParameter.SUM:
            return False
        fused = held[-1]
        conv_layer, source, conv_top = self.pending[id(bottoms[fused])]
        if id(bottoms[1 - fused]) in self.pending:  # both are held (a projection shortcut): one runs as it is
            self._flush_pending(bottoms[1 - fused])
        residual = self.value_of(bottoms[1 - fused])
        scale = float(layer.coeffs[1 - fused])
        for dst in ((residual.md, None) if not residual.external else (None,)):
            operation, reorder = self._convolution_reading(conv_layer, slope, source, scale, dst)
            if operation is not None:
                break
        else:
            return False
        del self.pending[id(conv_top)]
        self._emit_convolution(operation, reorder, source, top, conv_layer, residual)
        return True

    def _emit(self, operation, source, top, layer=None, residual=None):
        value = _Value(operation.dst, top.shape, top, [self.plan.name_of(top)])
        self.values[id(top)] = value
        self.ops.append(_Op(operation, [source] + ([residual] if residual is not None else []), value, layer,
                            residual))

    def _flush_pending(self, top=None):
        """Convolutions held for an Eltwise (the one writing `top`; None: all, for an Eltwise the
        segment did not take) run as they are, from here."""
        for key, (layer, source, held_top) in list(self.pending.items()):
            if top is None or held_top is top:
                operation, reorder = self._convolution_reading(layer, None, source)
                self._emit_convolution(operation, reorder, source, held_top, layer)
                del self.pending[key]

    # -- finishing -----------------------------------------------------------------------------
    def finish(self):
        """The plan steps this segment stands for: one SegmentStep, or the steps as they were
        where oneDNN would run no Convolution or InnerProduct of theirs."""
        if not self.weighted or not self.ops:
            return list(self.steps)
        self._flush_pending()
        first, last = self.steps[0][0], self.plan.step_last_layer(self.steps[-1][0])
        inputs = []
        for op in self.ops:
            for value in op.reads:
                if value.external and value not in inputs:
                    inputs.append(value)
        outputs = [op.writes for op in self.ops if op.writes.blob is not None
                   and self.plan.read_outside(op.writes.names, first, last)]
        step = SegmentStep(self, inputs, outputs)
        return [(first, step, [v.blob for v in inputs], [v.blob for v in outputs])]


class SegmentStep:
    """A segment as the Net's loop runs it (see the module's docstring)."""

    in_place_capable = False

    def __init__(self, segment, inputs, outputs):
        self.members = [(step, bottoms, tops) for _, step, bottoms, tops in segment.steps]
        first = self.members[0][0]
        self.layer, self.name, self.type = first.layer, first.name, first.type
        weights = {id(top): weight for step, _, tops in self.members for top, weight in zip(tops, step.loss_weights)}
        self.loss_weights = [weights.get(id(value.blob), 0) for value in outputs]
        self.library = segment.library
        self.inputs = [value.blob for value in inputs]
        self.outputs = [value.blob for value in outputs]
        self._compile(segment.ops, inputs, outputs)

    def _compile(self, ops, inputs, outputs):
        """The program: per primitive (operation, step, argument table indices, thread count, the
        layer whose parameters it takes), with the work buffers planned by value lifetimes."""
        library = self.library
        where = {}  # id(value) -> index into the run's address table: inputs, outputs, then slots
        for k, value in enumerate(inputs):
            where[id(value)] = k
        program = []
        for k, value in enumerate(outputs):
            value.export = True
            if library.layout(value.md) == library.layout(library.desc(value.dims)):
                where[id(value)] = len(inputs) + k  # written in NCHW already: into its blob
        # Exports right after the value is computed, by a reorder into the blob.
        sequence = []
        for op in ops:
            sequence.append(op)
            value = op.writes
            if value.export and id(value) not in where:
                sequence.append(_Op(None, [value], None, step=library.reorder(value.md, library.desc(value.dims)),
                                    export_to=len(inputs) + outputs.index(value)))
        last_read = {}
        for position, op in enumerate(sequence):
            for value in op.reads:
                last_read[id(value)] = position
        base = len(inputs) + len(outputs)
        slots, slot_of = Slots(), {}

        def place(value, position, in_place_of=None):
            if id(value) in where:
                return
            if in_place_of is not None and id(in_place_of) in slot_of and last_read[id(in_place_of)] == position \
                    and library.layout(in_place_of.md) == library.layout(value.md):
                slot = slot_of[id(in_place_of)]
                last_read[id(in_place_of)] = -1  # its slot goes on with this value
            else:
                slot = slots.take(library.size(value.md))
            slot_of[id(value)] = slot
            where[id(value)] = base + slot

        for position, op in enumerate(sequence):
            if op.writes is not None:
                # In place of the residual where nothing reads it after (nor does the op itself, as its input).
                place(op.writes, position, op.residual if op.residual is not op.reads[0] else None)
                if op.residual is not None and where[id(op.writes)] != where.get(id(op.residual)):
                    # The output starts as the residual: copied (and reordered) into it first.
                    copy = library.reorder(op.residual.md, op.writes.md)
                    program.append((None, copy, (where[id(op.residual)], where[id(op.writes)]), None, None))
                reads = [where[id(value)] for value in op.reads[:op.sources]]
                program.append((op.operation, op.step, tuple(reads + [where[id(op.writes)]]),
                                op.operation.threads if op.operation is not None else None, op.layer))
            else:  # an export
                program.append((None, op.step, (where[id(op.reads[0])], op.export_to), None, None))
            for value in op.reads:
                if last_read.get(id(value)) == position and id(value) in slot_of:
                    slots.give(slot_of[id(value)])
        self._program, self._slot_sizes = program, slots.sizes

    def reshape(self, bottoms, tops):
        """Shapes are the plan's: it builds the segment again when the inputs' shapes change."""

    def forward(self, bottoms, tops):
        if self.layer.uses_gpu():
            for step, step_bottoms, step_tops in self.members:
                step.reshape(step_bottoms, step_tops)
                step.forward(step_bottoms, step_tops)
            return
        library = self.library
        address = onednn.address
        table = ([address(blob.data_readonly()) for blob in self.inputs] + [address(blob.data) for blob in self.outputs]
                 + onednn.work_buffers(self._slot_sizes))
        default = library.threads(None)
        current = default
        try:
            for operation, step, arguments, threads, layer in self._program:
                wanted = threads or default
                if wanted != current:
                    library.threads(wanted)
                    current = wanted
                if layer is None:
                    step.run(*[table[k] for k in arguments])
                else:
                    weights, bias = operation.set_parameters(*layer.onednn_parameters())
                    step.run(table[arguments[0]], weights, bias, table[arguments[1]])
            step.wait()
        finally:
            if current != default:
                library.threads(default)
