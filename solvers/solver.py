"""Solver: the training loop every update rule shares (Caffe's Solver with SGDSolver's plumbing).

A registered subclass (registry.py) gives the update rule twice, `update_cpu` on host arrays and
`update_gpu` on device arrays: it turns one parameter's gradient (already clipped, averaged over
iter_size and regularized) into the step that `apply_update` subtracts from the weights, keeping its
state in `self.history` (Caffe's history_: `history_per_param` Blobs per learnable parameter, all
first blobs, then all second blobs). `apply_update` is the one pipeline around the rule; in GPU
mode every step of it runs on the device, so weights, gradients and history stay there.

In a data-parallel run (nvcaffe_py.scaleout) every rank runs this loop on its own share of the
data; only rank 0 (`mode.solver_rank()`) builds and runs the test nets, polls the action function
(signals) and writes snapshots, and callbacks added with `add_callback` (Caffe's Solver::Callback:
`on_start` before each iteration's passes, `on_gradients_ready` before its update) average the
gradients and tell every rank when rank 0 stops.

Paths follow Caffe: net files and snapshot_prefix are relative to the current directory; a solver
read from a file without snapshot_prefix snapshots beside it, under the file's name.
"""
import math
import os
import time

import numpy as np
from google.protobuf import text_format

from nvcaffe_py import files, formats, hdf5_format, log, mode, rng, trained_weights, upgrade
from nvcaffe_py.blob import Blob
from nvcaffe_py.errors import CaffeError
from nvcaffe_py.net import Net
from nvcaffe_py.pending_losses import PendingLosses
from nvcaffe_py.proto import caffe_pb2

from . import detection_test, device_update, host_update, lr_policy
from .prefix_lock import PrefixLock

# What a signal (or any action function) may ask of a running solver (Caffe's SolverAction).
NONE, STOP, SNAPSHOT = "none", "stop", "snapshot"

_TRAIN_NET_FIELDS = ("net", "net_param", "train_net", "train_net_param")

# The values a field may take, as (test, what the message says it must be); NaN fails every test.
FINITE = (math.isfinite, "a finite number")
NON_NEGATIVE = (lambda v: 0 <= v < math.inf, "a finite number >= 0")
POSITIVE = (lambda v: 0 < v < math.inf, "a finite number > 0")
COUNT = (lambda v: v >= 0, ">= 0")
UNIT_INTERVAL = (lambda v: 0 <= v <= 1, "in [0, 1]")
BELOW_ONE = (lambda v: 0 <= v < 1, "in [0, 1)")


class _FunctionCallbacks:
    """pycaffe's add_callback(on_start, on_gradients_ready): two functions as one Solver callback."""

    def __init__(self, on_start, on_gradients_ready):
        self.on_start, self.on_gradients_ready = on_start, on_gradients_ready


class NonFiniteError(CaffeError):
    """Training hit a NaN or infinite loss or weight; the message names the iteration and the layer."""


class _NonFiniteOutput(Exception):
    """Ends the NaN diagnosis's re-run at the first layer whose output is not finite; says which."""


def _finite(blob) -> bool:
    return bool(np.isfinite(blob.data_readonly()).all())


def load_solver_param(solver):
    """(SolverParameter, source name) from a prototxt path or a SolverParameter (copied, upgraded)."""
    if isinstance(solver, caffe_pb2.SolverParameter):
        if not upgrade.solver_needs_upgrade(solver):
            param = caffe_pb2.SolverParameter()
            param.CopyFrom(solver)
            return param, "<solver>"
        return upgrade.upgrade_solver(solver), "<solver>"
    path = os.fspath(solver)
    param = formats.read_solver_param(path)
    # Caffe's UpgradeSnapshotPrefixProperty: no prefix -> the solver file's name without extension;
    # a prefix that is a directory -> that directory / the solver file's stem.
    stem = os.path.splitext(path)[0]
    if not param.HasField("snapshot_prefix"):
        param.snapshot_prefix = stem
    elif os.path.isdir(param.snapshot_prefix):
        param.snapshot_prefix = os.path.join(param.snapshot_prefix, os.path.basename(stem))
    return param, path


class Solver:
    type_name = None  # set by register_solver
    history_per_param = 1
    # Field -> domain for every rule; a rule adds or narrows its own in `field_domains`.
    common_field_domains = {"base_lr": NON_NEGATIVE, "weight_decay": NON_NEGATIVE, "momentum": NON_NEGATIVE,
                            "gamma": FINITE, "power": FINITE, "clip_gradients": FINITE, "max_iter": COUNT,
                            "display": COUNT, "snapshot": COUNT, "test_interval": COUNT}
    field_domains = {}

    def __init__(self, solver, dtype=np.float32, source=None):
        self.param, default_source = load_solver_param(solver)
        self.source = source or default_source
        log.info(f"Initializing solver from parameters: \n{text_format.MessageToString(self.param)}")
        self.dtype = np.dtype(dtype)
        self._check_param()
        if self.param.random_seed >= 0:
            rng.set_random_seed(self.param.random_seed)
        self.net = self._build_train_net()
        test_sources = self._test_net_sources()  # checked on every rank, built on rank 0 only (as Caffe)
        self.test_nets = self._build_test_nets(test_sources) if self.is_root else []
        for net in self.test_nets:  # now, so that a clash of shapes stops before training, naming both nets
            net.share_with(self.net)
        self.iter = 0
        self.current_step = 0
        self.history = [Blob(p.blob.shape, dtype=self.dtype)
                        for _ in range(self.history_per_param) for p in self.net.learnable_params]
        self._smoothed_loss = 0.0
        self._losses = []  # the average_loss window, from iteration _window_start on
        self._window_start = 0
        self._pending = PendingLosses()  # losses not read yet (GPU mode: on the device until displayed)
        self.test_scores = [[] for _ in self.test_nets]  # mean outputs of each net's last test
        self.last_snapshot = None
        self.requested_early_exit = False
        self._action_function = None
        self._prefix_lock = PrefixLock(self.param.snapshot_prefix)
        self._callbacks = []
        for weights in self.param.weights:
            self.copy_weights(weights)
        log.info("Solver scaffolding done.")

    # -- checks and construction ------------------------------------------------------------
    def _fail(self, message):
        raise CaffeError(f"{self.source}: {message}")

    def _check_param(self):
        p = self.param
        for field, (within, rule) in {**self.common_field_domains, **self.field_domains}.items():
            value = getattr(p, field)
            if not within(value):
                self._fail(f"{field} must be {rule} (got {value:g})")
        for k, iterations in enumerate(p.test_iter):
            if iterations <= 0:
                self._fail(f"test_iter #{k} is {iterations}; each test net needs a positive number of iterations")
        lr_policy.validate(p, self.source)
        if p.average_loss < 1:
            self._fail(f"average_loss must be at least 1 (got {p.average_loss})")
        if p.iter_size < 1:
            self._fail(f"iter_size must be at least 1 (got {p.iter_size})")
        if p.eval_type not in ("classification", "detection"):
            self._fail(f"unknown eval_type '{p.eval_type}' (known: classification, detection)")
        if p.eval_type == "detection" and p.ap_version not in detection_test.AP_VERSIONS:
            self._fail(f"unknown ap_version '{p.ap_version}' (known: {', '.join(detection_test.AP_VERSIONS)})")
        if p.regularization_type not in ("L1", "L2"):
            self._fail(f"unknown regularization_type '{p.regularization_type}' (known: L1, L2)")
        if p.snapshot > 0 or p.snapshot_after_train:  # a long run must not end unable to save
            directory = os.path.dirname(p.snapshot_prefix) or "."
            if not os.path.isdir(directory) or not os.access(directory, os.W_OK):
                self._fail(f"cannot write snapshots with snapshot_prefix '{p.snapshot_prefix}': directory "
                           f"'{directory}' does not exist or is not writable")
        self.check_param()

    def check_param(self):
        """Rule-specific checks of self.param (a subclass raises via self._fail)."""

    def _read_net(self, path):
        try:
            return formats.read_net_param(path)
        except CaffeError as exc:
            self._fail(f"cannot read net: {exc}")

    def _build_train_net(self):
        p = self.param
        given = [f for f in _TRAIN_NET_FIELDS if p.HasField(f)]
        if len(given) != 1:
            what = "no train net" if not given else f"more than one train net ({', '.join(given)})"
            self._fail(f"{what}; give exactly one of {', '.join(_TRAIN_NET_FIELDS)}")
        field = given[0]
        value = getattr(p, field)
        log.info(f"Creating training net from {field}" + (f" file: {value}" if isinstance(value, str) else ""))
        net_param = self._read_net(value) if isinstance(value, str) else value
        source = value if isinstance(value, str) else f"{self.source}: {field}"
        return self._make_net(net_param, caffe_pb2.TRAIN, p.train_state, source)

    def _make_net(self, net_param, phase, solver_state, source):
        """Caffe's NetState precedence: the phase, then the net's own state, then the solver's."""
        copy = caffe_pb2.NetParameter()
        copy.CopyFrom(net_param)
        state = caffe_pb2.NetState(phase=phase)
        state.MergeFrom(copy.state)
        if solver_state is not None:
            state.MergeFrom(solver_state)
        copy.state.CopyFrom(state)
        return Net(copy, dtype=self.dtype, source=source)

    def _test_net_sources(self):
        """[(what, net path or NetParameter)] of the test nets, checked against test_iter & co."""
        p = self.param
        if p.HasField("net") and p.HasField("net_param"):
            self._fail("give either net or net_param, not both")
        specific = [(f"test_net_param #{i}", n) for i, n in enumerate(p.test_net_param)]
        specific += [(f"test_net file: {path}", path) for path in p.test_net]
        generic = ("net file: " + p.net, p.net) if p.HasField("net") else \
            ("net_param", p.net_param) if p.HasField("net_param") else None
        counts_match = len(p.test_iter) >= len(specific) if generic else len(p.test_iter) == len(specific)
        if not counts_match:
            if not specific and not generic:
                self._fail("test_iter is given but there is no test net (give test_net or test_net_param, "
                           "or a net/net_param that serves train and test)")
            self._fail(f"test_iter is given {len(p.test_iter)} time(s) for {len(specific)} test net(s); "
                       f"give one test_iter per test net")
        sources = specific + [generic] * (len(p.test_iter) - len(specific))
        if p.test_state and len(p.test_state) != len(sources):
            self._fail(f"test_state is given {len(p.test_state)} time(s) for {len(sources)} test nets; "
                       f"give it once per test net or not at all")
        if sources and p.test_interval <= 0:
            self._fail(f"there are {len(sources)} test net(s) but test_interval is {p.test_interval}; "
                       f"set a positive test_interval")
        return sources

    def _build_test_nets(self, sources):
        p = self.param
        nets = []
        for i, (what, net) in enumerate(sources):
            log.info(f"Creating test net (#{i}) specified by {what}")
            net_param = self._read_net(net) if isinstance(net, str) else net
            source = net if isinstance(net, str) else f"{self.source}: {what}"
            nets.append(self._make_net(net_param, caffe_pb2.TEST, p.test_state[i] if p.test_state else None, source))
        return nets

    def copy_weights(self, weights):
        """Fine-tuning: copy layers by name from .caffemodel file(s) ('a,b') into every net."""
        for path in filter(None, weights.split(",")):
            log.info(f"Finetuning from {path}")
            self.net.copy_from(path)
            for net in self.test_nets:  # what the train net was told about the file holds for these
                trained_weights.copy_trained_layers(net, path, report_unreached=False)

    @property
    def lr(self) -> float:
        """The learning rate the next step will use (pycaffe's SGDSolver.lr): the lr policy at the
        current iteration."""
        return lr_policy.learning_rate(self.param, self.iter, self.current_step)[0]

    # -- the training loop -------------------------------------------------------------------
    @property
    def is_root(self) -> bool:
        """Whether this solver tests, logs and snapshots: always, but in a data-parallel run only rank 0."""
        return mode.solver_rank() == 0

    def set_action_function(self, function):
        """`function()` -> NONE | STOP | SNAPSHOT, polled once per iteration and per test batch, on
        rank 0 (Caffe's signal hook)."""
        self._action_function = function

    def _requested_action(self):
        return self._action_function() if self._action_function and self.is_root else NONE

    def add_callback(self, callback, on_gradients_ready=None):
        """Caffe's Solver::Callback: `callback.on_start()` runs before each iteration's forward and
        backward passes, `callback.on_gradients_ready()` after them, before the update. pycaffe's
        spelling with two functions, add_callback(on_start, on_gradients_ready), works too."""
        if on_gradients_ready is not None:
            callback = _FunctionCallbacks(callback, on_gradients_ready)
        self._callbacks.append(callback)

    def _snapshot_folder(self):
        """The folder snapshots go to, where it exists (else None: no snapshot can be there yet)."""
        directory = os.path.dirname(self.param.snapshot_prefix)
        return directory if os.path.isdir(directory or ".") else None

    def solve(self, resume_file=None):
        """Train to max_iter (from resume_file's state, if given), holding the snapshot_prefix's
        lock for the run: a second run on the same prefix is refused. Only the rank that snapshots
        (rank 0) holds it: the ranks of one run share the prefix."""
        log.info(f"Solving {self.net.name}")
        log.info(f"Learning Rate Policy: {self.param.lr_policy}")
        self.requested_early_exit = False
        directory = self._snapshot_folder()
        if directory is None or not self.is_root:
            self._solve(resume_file)
            return
        with self._prefix_lock:
            stem = os.path.basename(self.param.snapshot_prefix)
            files.remove_stale_temporaries(directory, f"{stem}_iter_")  # what a killed run was writing
            self._solve(resume_file)

    def _solve(self, resume_file):
        if resume_file:
            self.restore(resume_file)
        self.step(self.param.max_iter - self.iter)
        self._read_losses()  # the last iterations' losses (kept on the device in GPU mode) are checked
        p = self.param
        if not self.is_root:
            return
        if p.snapshot_after_train and (not p.snapshot or self.iter % p.snapshot != 0):
            self.snapshot()
        if self.requested_early_exit:
            log.info("Optimization stopped early.")
            return
        # One more forward pass to show the loss of the final weights, and a final test.
        if p.display and self.iter % p.display == 0:
            self._update_smoothed_loss(self.net.forward_from_to(), self.iter)
            log.info(f"Iteration {self.iter}, loss = {log.number(self._smoothed_loss)}")
        if p.test_interval and self.iter % p.test_interval == 0:
            self.test_all()
        log.info("Optimization Done.")

    def step(self, iters):
        p = self.param
        start_iter, stop_iter = self.iter, self.iter + iters
        self._losses = []
        self._smoothed_loss = 0.0
        self._window_start = self.iter
        timer, iter_last = time.perf_counter(), self.iter
        meter = log.ProgressMeter(iters, "iter")
        while self.iter < stop_iter:
            self.net.clear_param_diffs()
            if (p.test_interval and self.iter % p.test_interval == 0 and (self.iter > 0 or p.test_initialization)
                    and not self.requested_early_exit):
                self.test_all()
            # Before the early exit: in a data-parallel run this is where every rank learns that
            # rank 0 was asked to stop (during its test, or at the end of the last iteration).
            for callback in self._callbacks:
                callback.on_start()
            if self.requested_early_exit:
                break
            display = p.display and self.iter % p.display == 0
            for _ in range(p.iter_size):
                self.net.forward_backward(losses=self._pending)
            self._pending.end_iteration(self.iter, p.iter_size)
            if display or self._pending.on_host():  # on the device, losses wait for a display
                self._read_losses()
            if display:
                lapse = time.perf_counter() - timer
                per_s = (self.iter - iter_last) / (lapse or 1)
                log.info(f"Iteration {self.iter} ({log.number(per_s)} iter/s, {log.number(lapse)}s/{p.display} "
                         f"iters), loss = {log.number(self._smoothed_loss)}")
                timer, iter_last = time.perf_counter(), self.iter
                self._log_outputs(self.net, "Train", [b for name in self.net.outputs
                                                      for b in self.net.blobs[name].data_readonly().ravel()])
            for callback in self._callbacks:
                callback.on_gradients_ready()
            self.apply_update()
            self.iter += 1
            meter.show(self.iter - start_iter, f"Iteration {self.iter}/{stop_iter}",
                       f", loss = {self._smoothed_loss:.4g}, lr = {self.lr:.4g}")
            request = self._requested_action()
            if (p.snapshot and self.iter % p.snapshot == 0 and self.is_root) or request == SNAPSHOT:
                self.snapshot()
            if request == STOP:
                log.info(f"Iteration {self.iter}: stop requested")
                self.requested_early_exit = True  # the loop ends at its top, after the callbacks heard it
        log.end_progress()

    @property
    def smoothed_loss(self) -> float:
        """Caffe's running mean of the last `average_loss` losses (reading it reads the losses the
        device still holds)."""
        self._read_losses()
        return self._smoothed_loss

    def _read_losses(self):
        """Take the losses not read yet: stop on a non-finite one, smooth those of this step()."""
        for iteration, loss in self._pending.read():
            if not math.isfinite(loss):
                self._non_finite_loss(loss, iteration)
            if iteration >= self._window_start:
                self._update_smoothed_loss(loss, iteration)

    def _update_smoothed_loss(self, loss, iteration):
        """Caffe's running mean of the last `average_loss` losses, for display."""
        window = self.param.average_loss
        if len(self._losses) < window:
            self._losses.append(loss)
            self._smoothed_loss = (self._smoothed_loss * (len(self._losses) - 1) + loss) / len(self._losses)
        else:
            index = (iteration - self._window_start) % window
            self._smoothed_loss += (loss - self._losses[index]) / window
            self._losses[index] = loss

    def _log_outputs(self, net, kind, values):
        """`    Train net output #k: name = v (* w = wv loss)`, one line per output element."""
        k = 0
        for name in net.outputs:
            weight = net.blob_loss_weights.get(name, 0.0)
            for _ in range(net.blobs[name].count()):
                value = values[k]
                loss = f" (* {log.number(weight)} = {log.number(weight * value)} loss)" if weight else ""
                log.info(f"    {kind} net output #{k}: {name} = {log.number(value)}{loss}")
                k += 1

    def _non_finite_loss(self, loss, iteration):
        """Name the first layer whose output is not finite, then stop: no update is applied and no
        snapshot written. The layers that produced this batch (the data layers, before the first
        layer with bottoms) are checked as they are; the net's forward pass re-runs the others on
        it, each checked as it finishes. In GPU mode the losses are read on display iterations, so
        the loss of an earlier `iteration` may be found non-finite later (its updates applied)."""
        net = self.net

        def check(i):
            layer = net.layers[i]
            bad = [name for name, top in zip(net.layer_top_names[i], net.top_vecs[i]) if not _finite(top)]
            if bad:
                params_bad = not all(map(_finite, layer.blobs))
                raise _NonFiniteOutput(f"layer '{layer.name}' ({layer.type}) is the first whose output ('{bad[0]}') "
                                       f"is not finite" + (" (its parameters already are not)" if params_bad else ""))

        first_computed = next((i for i, bottoms in enumerate(net.bottom_vecs) if bottoms), len(net.layers))
        try:
            for i in range(first_computed):
                check(i)
            if first_computed < len(net.layers):
                with net.after_forward(check):
                    net.forward_from_to(first_computed)
            culprit = "no layer output was non-finite on a re-run"
        except _NonFiniteOutput as found:
            culprit = str(found)
        found = "" if iteration == self.iter else \
            f" (read at iteration {self.iter}: in GPU mode losses are read on display iterations)"
        raise NonFiniteError(f"iteration {iteration}: loss is {loss}{found}; {culprit}. Training stopped; "
                             f"{self._kept()}")

    def _kept(self):
        return f"last good snapshot: {self.last_snapshot}" if self.last_snapshot else "no snapshot was written"

    # -- testing ------------------------------------------------------------------------------
    def test_all(self):
        for i in range(len(self.test_nets)):
            if self.requested_early_exit:
                break
            self.test(i)

    def test(self, test_net_id=0):
        """Run test_iter forward passes; log and keep the mean of every output element (with
        eval_type "detection", each output's mean average precision: detection_test.py)."""
        log.info(f"Iteration {self.iter}, Testing net (#{test_net_id})")
        net = self.test_nets[test_net_id]
        net.share_with(self.net)
        iterations = self.param.test_iter[test_net_id]
        detection = self.param.eval_type == "detection"
        tallies = [detection_test.DetectionTally() for _ in net.outputs]
        scores, loss = None, 0.0
        meter = log.ProgressMeter(iterations, "batches")
        for i in range(iterations):
            request = self._requested_action()
            if request == SNAPSHOT:
                self.snapshot()
            elif request == STOP:
                self.requested_early_exit = True
                log.info("Test interrupted.")
                return
            iter_loss = net.forward_from_to()
            meter.show(i + 1, f"Testing net #{test_net_id}: batch {i + 1}/{iterations}")
            loss += iter_loss
            if detection:
                for name, tally in zip(net.outputs, tallies):
                    tally.add(net.blobs[name].data_readonly(), f"test net #{test_net_id} output '{name}'")
                continue
            values = np.concatenate([net.blobs[n].data_readonly().ravel().astype(np.float64) for n in net.outputs]
                                    or [np.zeros(0)])
            scores = values if scores is None else scores + values
        if self.param.test_compute_loss:
            log.info(f"Test loss: {log.number(loss / iterations)}")
        if detection:
            self.test_scores[test_net_id] = [tally.mean_average_precision(self.param.ap_version, self._log_class_ap)
                                             for tally in tallies]
            for k, (name, value) in enumerate(zip(net.outputs, self.test_scores[test_net_id])):
                log.info(f"    Test net output #{k}: {name} = {log.number(value)}")
            return
        means = [] if scores is None else list(scores / iterations)
        self.test_scores[test_net_id] = means
        self._log_outputs(net, "Test", means)

    def _log_class_ap(self, label, ap):
        if self.param.show_per_class_result:
            log.info(f"class{label}: {log.number(ap)}")

    # -- the update ---------------------------------------------------------------------------
    def apply_update(self):
        """Caffe's ApplyUpdate, in its order on either backend: clip all gradients together, then
        per parameter normalise by iter_size, regularise, and let the rule turn the gradient into
        the step; then subtract every step from its weights. Where the arrays live decides only who
        does each step's arithmetic (host_update or device_update), never which steps run."""
        p = self.param
        rate, self.current_step = lr_policy.learning_rate(p, self.iter, self.current_step)
        if p.display and self.iter % p.display == 0:
            log.info(f"Iteration {self.iter}, lr = {log.number(rate)}")
        arrays = device_update if mode.gpu_mode() else host_update
        params = self.net.learnable_params
        self._clip_gradients(params, arrays)
        for i, param in enumerate(params):
            blob = param.blob
            if p.iter_size > 1:
                arrays.scale_gradient(blob, 1.0 / p.iter_size)
            decay = p.weight_decay * param.decay_mult
            if decay:
                arrays.regularize(blob, decay, p.regularization_type)
            arrays.compute_step(self, blob, self.param_history(i), rate * param.lr_mult)
        for param in params:
            arrays.apply_step(param.blob)

    def _clip_gradients(self, params, arrays):
        """Scale all gradients down together when their global L2 norm exceeds clip_gradients. As
        in Caffe this comes before the iter_size averaging, so it sees the summed gradient."""
        threshold = self.param.clip_gradients
        if threshold < 0:
            return
        norm = math.sqrt(sum(arrays.gradient_sumsq(p.blob) for p in params))
        if norm <= threshold:
            return
        scale = threshold / norm
        log.info(f"Gradient clipping: scaling down gradients (L2 norm {log.number(norm)} > "
                 f"{log.number(threshold)}) by scale factor {log.number(scale)}")
        for p in params:
            arrays.scale_gradient(p.blob, scale)

    def update_cpu(self, diff, histories, rate):
        """The rule: turn the gradient `diff` (a host array, already clipped, normalised and
        regularised) into the step in place, updating `histories` (this parameter's history
        arrays, history_per_param of them); `rate` is the parameter's learning rate."""
        raise NotImplementedError

    def update_gpu(self, diff, histories, rate):
        """update_cpu on device arrays, with the rule's kernel from updates.cu."""
        raise NotImplementedError

    def param_history(self, i):
        """The history Blobs of parameter i (history_per_param of them, in Caffe's layout)."""
        return self.history[i::len(self.history) // self.history_per_param]

    # -- snapshots ----------------------------------------------------------------------------
    def snapshot_filename(self, extension):
        return f"{self.param.snapshot_prefix}_iter_{self.iter}{extension}"

    def snapshot(self):
        """Write <prefix>_iter_N.caffemodel, then .solverstate (each atomically; both with `.h5` appended
        and in Caffe's HDF5 layout under snapshot_format: HDF5); return both paths. The state
        records the weights file's fingerprint. Outside solve() (pycaffe), the prefix is locked for
        the writes. Weights that are no longer finite are never written over a good snapshot."""
        if self._prefix_lock.held or self._snapshot_folder() is None:
            return self._write_snapshot()
        with self._prefix_lock:
            return self._write_snapshot()

    def _write_snapshot(self):
        for p in self.net.learnable_params:
            if not _finite(p.blob):
                raise NonFiniteError(f"iteration {self.iter}: parameter {p.index} of layer '{p.layer_name}' is not "
                                     f"finite; not snapshotting. Training stopped; {self._kept()}")
        if self.param.snapshot_format == caffe_pb2.SolverParameter.HDF5:
            suffix, kind, save_net, write_state = ".h5", "HDF5", self.net.save_hdf5, hdf5_format.write_solver_state
        else:
            suffix, kind, save_net, write_state = "", "binary proto", self.net.save, formats.write_binary
        model = self.snapshot_filename(".caffemodel" + suffix)
        state_file = self.snapshot_filename(".solverstate" + suffix)
        try:
            log.info(f"Snapshotting to {kind} file {model}")
            fingerprint = save_net(model, write_diff=self.param.snapshot_diff)
            state = caffe_pb2.SolverState(iter=self.iter, learned_net=model, current_step=self.current_step,
                                          learned_net_sha256=fingerprint)
            for h in self.history:
                formats.blob_to_proto(h.data_readonly(), proto=state.history.add(), double=self.dtype == np.float64)
            log.info(f"Snapshotting solver state to {kind} file {state_file}")
            write_state(state_file, state)
        except files.WriteError as exc:
            previous = f"the previous snapshot {self.last_snapshot} is intact" if self.last_snapshot else \
                "no earlier snapshot was written"
            raise CaffeError(f"iteration {self.iter}: cannot write snapshot {exc.path}: {exc.reason}; "
                             f"{previous}") from None
        self.last_snapshot = state_file
        return model, state_file

    def restore(self, state_file):
        """Resume from a .solverstate (or, by its extension, a .solverstate.h5): iteration,
        learning-rate step, weights and history."""
        state_file = os.fspath(state_file)
        log.info(f"Restoring previous solver status from {state_file}")
        needed_by = f"this {self.type_name} solver on this net"
        if state_file.endswith(".h5"):
            state = hdf5_format.read_solver_state(state_file, [h.shape for h in self.history], needed_by)
        else:
            state = formats.read_binary(state_file, caffe_pb2.SolverState())
        if len(state.history) != len(self.history):
            raise CaffeError(f"{state_file}: holds {len(state.history)} history blobs but {needed_by} needs "
                             f"{len(self.history)} (another solver type or net?)")
        if state.iter < 0 or state.current_step < 0:
            raise CaffeError(f"{state_file}: iteration {state.iter} and step {state.current_step} cannot be negative")
        if state.learned_net:
            weights = self._find_learned_net(state.learned_net, state_file)
            if state.learned_net_sha256 and files.sha256_of(weights) != state.learned_net_sha256:
                raise CaffeError(f"{state_file}: its weights file '{weights}' is not the one saved with it (its "
                                 f"SHA-256 differs; another run may have written it since); resume from a "
                                 f"matching pair")
            self.net.copy_from(weights)
        for k, (h, proto) in enumerate(zip(self.history, state.history)):
            if not formats.proto_shape_matches(proto, h.shape):
                raise CaffeError(f"{state_file}: history blob {k} has shape {formats.blob_proto_shape(proto)}, "
                                 f"the net's parameter has {h.shape}")
            values = formats.array_from_blob_proto(proto, self.dtype, where=f"{state_file}: history blob {k}")
            h.data[...] = values.reshape(h.shape)
        self.iter = state.iter
        self.current_step = state.current_step
        self.last_snapshot = state_file

    @staticmethod
    def _find_learned_net(learned_net, state_file):
        """The model as written (relative to the current directory, like Caffe), else beside the state."""
        if os.path.exists(learned_net):
            return learned_net
        beside = os.path.join(os.path.dirname(state_file), os.path.basename(learned_net))
        if os.path.exists(beside):
            return beside
        raise CaffeError(f"{state_file}: its weights file '{learned_net}' does not exist (looked in the current "
                         f"directory and beside the solverstate)")
