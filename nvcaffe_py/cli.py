"""The `nvcaffe` command: Caffe's `caffe` tool (train, test, time, device_query) with its gflags
spellings (`-solver x`, `--solver x`, `--solver=x`), the porting commands (export_onnx, summary),
plus every data tool in nvcaffe_py/tools (`nvcaffe convert_imageset ...` runs that module's
`main(argv)`).

A CaffeError (or running out of memory) becomes one line on stderr and exit status 1; a bad flag
prints the usage, status 1.
"""
import contextlib
import difflib
import importlib
import importlib.metadata
import importlib.util
import os
import signal
import sys
import time

from . import backends, log, mode, onnx_export, summary
from .backends.cuda import context, traffic
from .errors import CaffeError
from .layer_timer import LayerTimer
from .net import Net
from .pending_losses import PendingLosses
from .proto import caffe_pb2
from .scaleout import data_parallel, launcher, world
from .solvers import NONE, SNAPSHOT, STOP, get_solver, load_solver_param
from .tools import TOOLS
from .tools.gflags import GflagsParser

PROG = "nvcaffe"


class UsageError(Exception):
    """A malformed command line: reported with the usage text."""


# name -> (kind, default, help); gflags' defaults from Caffe's tools/caffe.cpp.
FLAGS = {
    "solver": (str, "", "the solver definition protocol buffer text file"),
    "model": (str, "", "the model definition protocol buffer text file"),
    "weights": (str, "", "pretrained weights (.caffemodel) to fine-tune from or score, separated by ','"),
    "snapshot": (str, "", "the .solverstate to resume training from"),
    "gpu": (str, "", "run on the GPU(s) with these device ids, separated by ',' ('all': every GPU); train runs "
                     "one rank per GPU, test and time use the first"),
    "iterations": (int, 50, "test, time: the number of iterations (default 50); train: overrides max_iter"),
    "phase": (str, "", "network phase, TRAIN or TEST (default: test TEST, time TRAIN)"),
    "level": (int, 0, "network level (default 0; train: overrides the solver's train_state level)"),
    "stage": (str, "", "network stages, separated by ','"),
    "sigint_effect": (str, "stop", "what Ctrl-C does during training: snapshot, stop or none (default stop; "
                                   "stopping writes a snapshot when snapshot_after_train is set, as by default)"),
    "sighup_effect": (str, "snapshot", "what SIGHUP does during training: snapshot, stop or none (default snapshot)"),
    "compare": (str, "", "time: two backends to time side by side with the speed-up, e.g. cpu,gpu"),
    "output": (str, "", "export_onnx: the .onnx file to write"),
    "opset": (int, onnx_export.DEFAULT_OPSET, f"export_onnx: the ONNX opset (default {onnx_export.DEFAULT_OPSET}; "
                                              f"{onnx_export.MIN_OPSET} or later)"),
    "batch": (int, 0, "export_onnx, summary: the batch size of the net's inputs (default: the prototxt's)"),
    "optimize": (bool, True, "test, time: run a TEST net that needs no backward through the deploy-time forward "
                             "(folded layers, shared buffers; default true); false runs every layer as declared"),
}


# -- the commands --------------------------------------------------------------------------
def train(flags, given):
    if not flags["solver"]:
        raise UsageError("train needs -solver (the solver definition)")
    if flags["snapshot"] and flags["weights"]:
        raise UsageError("give -snapshot to resume training or -weights to fine-tune, not both")
    effects = {"stop": STOP, "snapshot": SNAPSHOT, "none": NONE}
    for name in ("sigint_effect", "sighup_effect"):
        if flags[name] not in effects:
            raise UsageError(f"-{name} must be snapshot, stop or none (got '{flags[name]}')")
    ranks = world.from_environment()
    gpu_ids = _gpu_ids_of(flags["gpu"]) if flags["gpu"] else None
    if ranks is None and gpu_ids and (len(gpu_ids) > 1 or os.environ.get("NVCAFFE_FORCE_NCCL") == "1"):
        return launcher.train_on_gpus(gpu_ids, ["train", *(f"-{name}={flags[name]}" for name in sorted(given))])
    training = data_parallel.join(ranks, gpu_ids) if ranks else None  # first: only rank 0 logs

    def make_solver(seed_if_unset=None):
        """The solver of the flags (in a data-parallel run, on every rank inside build's checks)."""
        param, source = load_solver_param(flags["solver"])
        if "level" in given:
            param.train_state.level = flags["level"]
        param.train_state.stage.extend(_stages(flags))
        if "iterations" in given:
            param.max_iter = flags["iterations"]
        if seed_if_unset is not None and param.random_seed < 0:
            param.random_seed = seed_if_unset
        if training is not None and gpu_ids:  # each rank is on its own GPU already
            log.info(f"Use GPU with device ID {mode.device_id()}")
        elif flags["gpu"]:
            _use_gpu(flags["gpu"])
        elif param.solver_mode == param.GPU:
            _gpu_from_solver(param, source)
        else:
            log.info("Use CPU.")
        if flags["weights"]:
            param.weights.append(flags["weights"])
        if flags["snapshot"]:
            log.info(f"Resuming from {flags['snapshot']}")
        return get_solver(param, source=source)

    if training is None:
        solver, resume = make_solver(), flags["snapshot"] or None
    else:  # rank 0 restores the snapshot and broadcasts it
        solver, resume = training.build(make_solver, flags["snapshot"]), None
    actions = _SignalActions(effects[flags["sigint_effect"]], effects[flags["sighup_effect"]])
    solver.set_action_function(actions)  # polled on rank 0 only; the other ranks ignore the signals
    with actions:
        log.info("Starting Optimization")
        try:
            solver.solve(resume)
        except CaffeError as exc:
            if training is None:
                raise
            # Only this rank knows: say so, and end the others rather than leave them waiting.
            print(f"{PROG}: error: rank {training.rank}: {' '.join(str(exc).split())}", file=sys.stderr, flush=True)
            training.abort()
    return 0


def test(flags, given):
    if not flags["model"]:
        raise UsageError("test needs -model (the net to score)")
    if not flags["weights"]:
        raise UsageError("test needs -weights (the trained .caffemodel to score)")
    _set_mode(flags)
    net = _test_net(flags)
    iterations = flags["iterations"]
    log.info(f"Running for {iterations} iterations.")
    totals, loss = None, 0.0
    meter = log.ProgressMeter(iterations, "batches")
    for i in range(iterations):
        loss += net.forward_from_to()
        meter.show(i + 1, f"Batch {i + 1}/{iterations}")
        scores = [(name, float(v)) for name in net.outputs for v in net.blobs[name].data_readonly().ravel()]
        for name, value in scores:
            log.info(f"Batch {i}, {name} = {log.number(value)}")
        totals = [v for _, v in scores] if totals is None else [t + v for t, (_, v) in zip(totals, scores)]
    log.info(f"Loss: {log.number(loss / max(iterations, 1))}")
    names = [name for name in net.outputs for _ in range(net.blobs[name].count())]
    for name, total in zip(names, totals or []):
        mean = total / iterations
        weight = net.blob_loss_weights.get(name, 0.0)
        suffix = f" (* {log.number(weight)} = {log.number(weight * mean)} loss)" if weight else ""
        log.info(f"{name} = {log.number(mean)}{suffix}")
    return 0


def time_command(flags, given):
    if not flags["model"]:
        raise UsageError("time needs -model (the net to benchmark)")
    compared = [b.strip().lower() for b in flags["compare"].split(",")] if flags["compare"] else None
    if compared is not None and (len(compared) != 2 or not set(compared) <= {"cpu", "gpu"}):
        raise UsageError(f"--compare takes two backends out of cpu and gpu, e.g. cpu,gpu (got '{flags['compare']}')")
    if compared is None:
        _set_mode(flags)
    elif "gpu" in compared:
        _use_gpu(flags["gpu"] or "0")  # fails here, before any timing, where no GPU is usable
    net = Net(flags["model"], phase=_phase(flags, "TRAIN"), level=flags["level"], stages=_stages(flags),
              optimize=flags["optimize"])
    if compared is None:
        _benchmark(net, flags["iterations"])
        return 0
    results = []
    for backend in compared:
        backends.set_mode_gpu() if backend == "gpu" else backends.set_mode_cpu()
        results.append(_benchmark(net, flags["iterations"]))
    _log_comparison(net, compared, results)
    return 0


def device_query(flags, given):
    reason = backends.cuda_unavailable_reason()
    if reason is not None:
        raise CaffeError(f"no usable GPU: {reason}")
    ids = range(context.device_count()) if flags["gpu"] == "all" else _gpu_ids(flags["gpu"] or "0")
    for device_id in ids:
        for key, value in context.describe(device_id).items():
            log.info(f"{key.replace('_', ' ').capitalize() + ':':<22}{value}")
    return 0


def export_onnx(flags, given):
    for name, what in (("model", "the deploy net"), ("weights", "the trained .caffemodel"),
                       ("output", "the .onnx file to write")):
        if not flags[name]:
            raise UsageError(f"export_onnx needs -{name} ({what})")
    net = _test_net(flags)
    _set_batch(net, flags["batch"])
    onnx_export.export(net, flags["output"], flags["opset"])
    log.info(f"Wrote {flags['output']} (ONNX opset {flags['opset']}): inputs {', '.join(net.inputs)}; "
             f"outputs {', '.join(net.outputs)}")
    return 0


def summary_command(flags, given):
    if not flags["model"]:
        raise UsageError("summary needs -model (the net to describe)")
    net = _test_net(flags)
    _set_batch(net, flags["batch"])
    print(summary.format_table(summary.summarize(net)))
    return 0


COMMANDS = {
    "train": (train, "train or finetune a model",
              ("solver", "weights", "snapshot", "gpu", "iterations", "level", "stage", "sigint_effect",
               "sighup_effect")),
    "test": (test, "score a model", ("model", "weights", "iterations", "gpu", "phase", "level", "stage", "optimize")),
    "device_query": (device_query, "show GPU diagnostic information", ("gpu",)),
    "time": (time_command, "benchmark model execution time",
             ("model", "iterations", "gpu", "phase", "level", "stage", "compare", "optimize")),
    "export_onnx": (export_onnx, "write a TEST-phase net and its weights as an ONNX model",
                    ("model", "weights", "output", "opset", "batch", "level", "stage")),
    "summary": (summary_command, "per layer: type, top shapes, parameters, multiply-adds, activation memory",
                ("model", "weights", "batch", "phase", "level", "stage")),
}


# -- helpers --------------------------------------------------------------------------------
def _stages(flags):
    return [s for s in flags["stage"].split(",") if s]


def _phase(flags, default):
    phase = flags["phase"] or default
    if phase not in ("TRAIN", "TEST"):
        raise UsageError(f"-phase must be TRAIN or TEST (got '{phase}')")
    return caffe_pb2.Phase.Value(phase)


def _test_net(flags):
    """The -model net (TEST phase unless -phase says otherwise), with the -weights given."""
    net = Net(flags["model"], phase=_phase(flags, "TEST"), level=flags["level"], stages=_stages(flags),
              optimize=flags["optimize"])
    for path in filter(None, flags["weights"].split(",")):
        net.copy_from(path)
    return net


def _set_batch(net, batch):
    """Reshape the net's inputs to `batch` items (0: leave the prototxt's), as pycaffe scripts do."""
    if batch < 0:
        raise UsageError(f"-batch must be positive (got {batch})")
    if batch:
        for name in net.inputs:
            blob = net.blobs[name]
            blob.reshape((batch,) + blob.shape[1:])
        net.reshape()


def _gpu_ids(text):
    try:
        return [int(part) for part in text.split(",")]
    except ValueError:
        raise UsageError(f"-gpu takes device ids separated by ',' or 'all' (got '{text}')") from None


def _gpu_ids_of(text):
    """The GPUs -gpu names ('all': every one), checked to exist; CaffeError where none is usable."""
    reason = backends.cuda_unavailable_reason()
    if reason is not None:
        raise CaffeError(f"GPU mode requested but no GPU is usable: {reason}")
    count = context.device_count()
    ids = list(range(count)) if text == "all" else _gpu_ids(text)
    launcher.check_device_ids(ids, count)
    return ids


def _use_gpu(text):
    """Switch to the first GPU named by -gpu; CaffeError with the reason where none is usable."""
    ids = [0] if text == "all" else _gpu_ids(text)
    if len(ids) > 1:
        log.warning(f"only train uses several GPUs; using GPU {ids[0]}")
    mode.set_device(ids[0])
    backends.set_mode_gpu()
    log.info(f"Use GPU with device ID {ids[0]}")


def _set_mode(flags):
    if flags["gpu"]:
        _use_gpu(flags["gpu"])
    else:
        backends.set_mode_cpu()
        log.info("Use CPU.")


def _gpu_from_solver(param, source):
    """solver_mode: GPU (Caffe's default) uses device_id when a GPU is usable, else the CPU."""
    reason = backends.cuda_unavailable_reason()
    if reason is None:
        _use_gpu(str(param.device_id))
    else:
        log.warning(f"{source}: solver_mode is GPU but no GPU is usable ({reason}); training on the CPU")
        backends.set_mode_cpu()


class _SignalActions:
    """Turns SIGINT/SIGHUP into a solver action, polled once per iteration (Caffe's SignalHandler);
    installed for the duration of a `with` block."""

    def __init__(self, sigint_effect, sighup_effect):
        self.effects = {signal.SIGINT: sigint_effect}
        if hasattr(signal, "SIGHUP"):
            self.effects[signal.SIGHUP] = sighup_effect
        self.pending = []
        self.previous = {}

    def _handle(self, signum, frame):
        self.pending.append(self.effects[signum])

    def __call__(self):
        requests, self.pending = self.pending, []
        if STOP in requests:
            return STOP
        return next((r for r in requests if r != NONE), NONE)

    def __enter__(self):
        for signum in self.effects:
            self.previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc):
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)


def _benchmark(net, iterations):
    """Caffe's `time`: per-layer forward and backward milliseconds averaged over `iterations`,
    measured by callbacks around each layer of the Net's own passes (GPU work waited for)."""
    backend = "GPU" if mode.gpu_mode() else "CPU"
    log.info(f"Performing Forward ({backend})")
    log.info(f"Initial loss: {log.number(net.forward_from_to())}")
    log.info("Performing Backward")
    net.backward_from_to()
    log.info("*** Benchmark begins ***")
    log.info(f"Testing for {iterations} iterations.")
    total_start = time.perf_counter()
    meter = log.ProgressMeter(iterations, "iter")
    with LayerTimer(net) as timer:
        for j in range(iterations):
            iter_start = time.perf_counter()
            net.forward_from_to()
            net.backward_from_to()
            elapsed_ms = (time.perf_counter() - iter_start) * 1e3
            log.info(f"Iteration: {j + 1} forward-backward time: {log.number(elapsed_ms)} ms.")
            meter.show(j + 1, f"Iteration {j + 1}/{iterations}")
    log.end_progress()
    total = time.perf_counter() - total_start
    runs = max(iterations, 1)
    forward_ms, backward_ms = timer.milliseconds(iterations)
    log.info("Average time per layer: ")
    for layer, f_ms, b_ms in zip(net.layers, forward_ms, backward_ms):
        log.info(f"{layer.name:>10}\tforward: {log.number(f_ms)} ms.")
        log.info(f"{layer.name:>10}\tbackward: {log.number(b_ms)} ms.")
    spans = net._plan.step_spans() if net._plan is not None else []
    if spans:
        shown = ", ".join(f"{first} .. {last}" for first, last in spans[:8])
        more = f" and {len(spans) - 8} more" if len(spans) > 8 else ""
        log.info(f"The deploy-time forward runs these layers as one step each, timed under the first: {shown}{more} "
                 "(-optimize=false times every layer)")
    if mode.gpu_mode():
        fallback = [f"{layer.name} ({layer.type})" for layer in net.layers if not layer.uses_gpu()]
        if fallback:
            log.info(f"Layers without a GPU kernel (their CPU code ran): {', '.join(fallback)}")
    log.info(f"Average Forward pass: {log.number(sum(forward_ms))} ms.")
    log.info(f"Average Backward pass: {log.number(sum(backward_ms))} ms.")
    log.info(f"Average Forward-Backward: {log.number(total * 1e3 / runs)} ms.")
    log.info(f"Total Time: {log.number(total * 1e3)} ms.")
    if mode.gpu_mode():
        _log_traffic(net)
    log.info("*** Benchmark ends ***")
    return forward_ms, backward_ms


def _log_traffic(net):
    """What one more forward-backward (untimed, its loss left on the device as in training) moved
    between host and device and how often the host waited for the device."""
    with traffic.counting() as counts:
        net.forward_backward(losses=PendingLosses())
    log.info(f"Host<->device per iteration: {counts['htod']} synchronous uploads ({counts['htod_bytes']} bytes), "
             f"{counts['dtoh']} downloads ({counts['dtoh_bytes']} bytes), {counts['htod_async']} asynchronous "
             f"uploads ({counts['htod_async_bytes']} bytes), {counts['sync']} synchronizations.")


def _log_comparison(net, backend_names, results):
    """One row per layer: both backends' forward and backward ms and the speed-up of the second."""
    (f0, b0), (f1, b1) = results
    a, b = backend_names

    def speedup(x, y):
        return f"{x / y:.2f}x" if y > 0 else "-"

    log.info(f"{'layer':>12} {a + ' fwd ms':>12} {b + ' fwd ms':>12} {'speed-up':>9} "
             f"{a + ' bwd ms':>12} {b + ' bwd ms':>12} {'speed-up':>9}")
    rows = [(layer.name, f0[i], f1[i], b0[i], b1[i]) for i, layer in enumerate(net.layers)]
    rows.append(("total", sum(f0), sum(f1), sum(b0), sum(b1)))
    for name, x_f, y_f, x_b, y_b in rows:
        log.info(f"{name:>12} {x_f:12.4f} {y_f:12.4f} {speedup(x_f, y_f):>9} "
                 f"{x_b:12.4f} {y_b:12.4f} {speedup(x_b, y_b):>9}")


# -- data tools (nvcaffe_py/tools/<name>.py with main(argv) -> int) ----------------------------
def _tool(name):
    """The tool module called `name`, or None: found by name (any module of nvcaffe_py.tools
    with a main), imported only when asked for."""
    if not name.isidentifier() or name.startswith("_"):
        return None
    if importlib.util.find_spec(f"{__package__}.tools.{name}") is None:
        return None
    module = importlib.import_module(f"{__package__}.tools.{name}")
    return module if callable(getattr(module, "main", None)) else None


def _tool_names():
    return TOOLS


# -- parsing and usage ------------------------------------------------------------------------
def usage() -> str:
    lines = [f"usage: {PROG} <command> [flags]   (flags: -flag value, --flag value or --flag=value)",
             "", "commands:"]
    lines += [f"  {name:<27}{text}" for name, (_, text, _) in COMMANDS.items()]
    lines += [f"  {name:<27}{text}" for name, text in _tool_names().items()]
    lines += ["", f"'{PROG} <command> --help' lists the flags of a command."]
    return "\n".join(lines)


def _parser(command):
    _, text, names = COMMANDS[command]
    parser = GflagsParser(command, text)
    for name in names:
        kind, _, help_text = FLAGS[name]
        # None marks a flag that was not given; its Caffe default is filled in afterwards.
        if kind is bool:
            parser.add_bool_flag(name, default=None, help=help_text)
        else:
            parser.add_flag(name, type=kind, default=None, help=help_text)
    return parser


def _quiet_rank() -> bool:
    """Whether this process is a data-parallel rank other than 0, which leaves the errors that
    every rank meets alike (a flag, a file, -gpu ids) to rank 0's one line; an error of its own
    during training it prints itself, with its rank (train)."""
    ranks = world.from_environment()
    return ranks is not None and ranks.rank != 0


def _take_log_dir(argv):
    """(argv without glog's -log_dir, the log directory): every Caffe tool takes -log_dir, in any
    gflags spelling and anywhere on the line; GLOG_log_dir in the environment otherwise."""
    rest, log_dir = [], os.environ.get("GLOG_log_dir", "")
    args = iter(argv)
    for arg in args:
        name, has_value, value = arg.lstrip("-").partition("=")
        if not (arg.startswith("-") and name == "log_dir"):
            rest.append(arg)
            continue
        log_dir = value if has_value else next(args, "")
        if not log_dir:
            raise UsageError("-log_dir needs a directory")
    return rest, log_dir


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        argv, log_dir = _take_log_dir(argv)
        with log.logging_to_dir(log_dir, PROG) if log_dir else contextlib.nullcontext():
            return _run(argv)
    except (UsageError, CaffeError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1


def _run(argv) -> int:
    if not argv or argv[0] in ("-h", "-help", "--help", "help"):
        print(usage(), file=sys.stdout if argv else sys.stderr)
        return 0 if argv else 1
    if argv[0] in ("-version", "--version"):
        print(f"{PROG} version {importlib.metadata.version(__package__)}")
        return 0
    command, rest = argv[0], argv[1:]
    parser = None
    try:
        if command not in COMMANDS:
            tool = _tool(command)
            if tool is None:
                close = difflib.get_close_matches(command, [*COMMANDS, *_tool_names()], n=1, cutoff=0.6)
                hint = f"; did you mean '{close[0]}'?" if close else f"\n\n{usage()}"
                print(f"{PROG}: unknown command '{command}'{hint}", file=sys.stderr)
                return 1
            return int(tool.main(rest) or 0)
        parser = _parser(command)
        try:
            args = parser.parse_args(rest)
        except SystemExit as exc:  # argparse: --help (0) or a bad flag (2, usage already printed)
            return 0 if exc.code in (0, None) else 1
        given = {name for name, value in vars(args).items() if value is not None}
        flags = {name: getattr(args, name, None) for name in FLAGS}
        flags = {name: FLAGS[name][1] if value is None else value for name, value in flags.items()}
        return COMMANDS[command][0](flags, given)
    except UsageError as exc:
        if not _quiet_rank():
            parser.print_usage(sys.stderr)
            print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 1
    except CaffeError as exc:
        log.end_progress()
        if not _quiet_rank():
            print(f"{PROG}: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    except data_parallel.QuietExit:  # rank 0 reports the error for every rank
        return 1
    except MemoryError as exc:  # what the setup-time size checks cannot foresee (gradients, scratch)
        log.end_progress()
        detail = f" ({exc})" if str(exc) else ""
        print(f"{PROG}: error: out of memory{detail}; try a smaller batch_size", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        log.end_progress()
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
