"""Training jobs: each a folder of the jobs dir holding what `nvcaffe train` needs — the net
(train_val.prototxt), the solver (solver.prototxt), job.json (what the job is, for the pages) —
and what it writes: a log per run (run-1.log, ...) and its snapshots (snapshot_iter_N.*).
deploy.prototxt, the net for inference, is written beside them. A job is made from the form (a
standard or custom net on a dataset, with solver options) or from a solver.prototxt on the
server; it is queued, and the runner trains it in a process of its own."""
import glob
import math
import os
import re
import sys
import time

from .. import backends
from ..backends.cuda import context
from ..errors import CaffeError
from ..formats import net_param_from_text, read_net_param, read_solver_param, write_text
from ..net import Net
from ..proto import caffe_pb2
from . import datasets, networks, solver_form
from . import fields as f
from .errors import Conflict
from .metrics import job_metrics
from .storage import read_json, under_root, write_json
from .tasks import ABORTED, FAILED, RUNNING, Launch, elapsed_seconds, queue, read_state

KIND = "jobs"
JOB_FILE = "job.json"
TRAIN_VAL, SOLVER, DEPLOY = "train_val.prototxt", "solver.prototxt", "deploy.prototxt"
SNAPSHOT_PREFIX = "snapshot"
_SNAPSHOT = re.compile(r"snapshot_iter_(\d+)\.caffemodel(?:\.h5)?$")
CUSTOM = "custom"


# -- making jobs ---------------------------------------------------------------------------------
def create(jobs_dir, root, fields, models_dir=networks.MODELS_DIR) -> str:
    """A new queued job from the form's fields or, with `solver`, from a solver.prototxt on the
    server; returns its id. Every check runs before anything is written."""
    if f.text(fields, "solver"):
        return _from_solver(jobs_dir, root, fields)
    dataset_id = f.text(fields, "dataset")
    if not dataset_id:
        raise CaffeError("choose the dataset to train on")
    dataset = datasets.summary(jobs_dir, dataset_id)
    if dataset["status"] != "done":
        raise CaffeError(f"dataset '{dataset['name']}' is {dataset['status']}; a job needs a built dataset")
    standard = networks.standard_networks(models_dir)
    network = f.choice(fields, "network", (*standard, CUSTOM))
    if network == CUSTOM:
        text = f.text(fields, "custom_network")
        if not text:
            raise CaffeError("paste or upload the custom network's prototxt")
        net_param = net_param_from_text(text, "the custom network")
    else:
        net_param = read_net_param(standard[network])
    batch = f.integer(fields, "batch_size", 64, 1, 65536)
    gpus = _gpus(fields)
    solver = solver_form.solver_param(fields, sum(dataset["counts"]["train"]), batch)
    dataset_folder = jobs_dir.folder(datasets.KIND, dataset_id)
    net_param, test_batch = networks.for_dataset(
        net_param, {"train": datasets.lmdb_path(dataset_folder, "train"), "val": datasets.lmdb_path(dataset_folder, "val"),
                    "mean": dataset["mean_file"]},
        (dataset["height"], dataset["width"]), batch, sum(dataset["counts"]["val"]),
        len(dataset["labels"]) if network != CUSTOM else None)
    deploy = networks.deploy(net_param, networks.input_shape(net_param, dataset_folder))
    _check_builds(deploy)
    solver.test_iter.append(math.ceil(sum(dataset["counts"]["val"]) / test_batch))
    description = {"name": f.text(fields, "name", f"{network} on {dataset['name']}"), "network": network,
                   "net_name": net_param.name, "dataset": dataset_id, "dataset_name": dataset["name"],
                   "batch_size": batch, "iterations_per_epoch": math.ceil(sum(dataset["counts"]["train"]) / batch)}
    return _write_job(jobs_dir, description, net_param, solver, deploy, gpus, workdir=None)


def _from_solver(jobs_dir, root, fields) -> str:
    """A job that runs a solver.prototxt of the server: its relative paths are read from `root`
    (as `nvcaffe train` run there would), its snapshots go to the job's folder."""
    path = under_root(root, fields["solver"], "solver")
    solver = read_solver_param(path)
    if solver.HasField("net_param"):
        net_param = solver.net_param
    elif solver.net:
        net_path = under_root(root, solver.net, f"net of {os.path.basename(path)}")
        net_param = read_net_param(net_path)
        solver.net = net_path
    else:
        raise CaffeError(f"{path}: the solver names no net (`net: \"train_val.prototxt\"`); train_net and "
                         f"test_net are not taken here")
    gpus = _gpus(fields) if "gpus" in fields else (str(solver.device_id) if solver.solver_mode == solver.GPU else "")
    try:
        deploy = networks.deploy(net_param, networks.input_shape(net_param, root))
    except CaffeError:
        deploy = None  # the net does not read LMDBs through Data layers: no inference for this job
    description = {"name": f.text(fields, "name", os.path.basename(path)), "network": f"solver {path}",
                   "net_name": net_param.name, "dataset": None, "dataset_name": "",
                   "batch_size": None, "iterations_per_epoch": None}
    return _write_job(jobs_dir, description, None, solver, deploy, gpus, workdir=os.path.realpath(root))


def _write_job(jobs_dir, description, net_param, solver, deploy, gpus, workdir) -> str:
    with jobs_dir.new_item(KIND) as (job_id, folder):
        if net_param is not None:
            write_text(os.path.join(folder, TRAIN_VAL), net_param)
            solver.net = os.path.join(folder, TRAIN_VAL)
        if deploy is not None:
            write_text(os.path.join(folder, DEPLOY), deploy)
        solver.snapshot_prefix = os.path.join(folder, SNAPSHOT_PREFIX)
        solver.solver_mode = solver.GPU if gpus else solver.CPU
        write_text(os.path.join(folder, SOLVER), solver)
        write_json(os.path.join(folder, JOB_FILE), {
            "id": job_id, **description, "gpus": gpus, "workdir": workdir or folder, "max_iter": solver.max_iter,
            "solver_type": solver.type or "SGD", "base_lr": solver.base_lr, "lr_policy": solver.lr_policy})
        queue(folder)
    return job_id


def _gpus(fields) -> str:
    """'' (the CPU) or the GPU ids asked for, each checked against this machine's GPUs."""
    ids = f.integers(fields, "gpus")
    if not ids:
        return ""
    reason = backends.cuda_unavailable_reason()
    if reason is not None:
        raise CaffeError(f"GPU {','.join(map(str, ids))} asked for, but no GPU is usable here: {reason}")
    count = context.device_count()
    missing = [i for i in ids if not 0 <= i < count]
    if missing:
        raise CaffeError(f"there is no GPU {missing[0]}: this machine has {count} (ids 0 to {count - 1})")
    return ",".join(map(str, ids))


def _check_builds(deploy):
    """Build the deploy net once (one image), so that a net that cannot work is refused here,
    with the layer named, rather than in the job's log."""
    try:
        Net(deploy, phase=caffe_pb2.TEST, source="the network")
    except CaffeError as exc:
        raise CaffeError(f"the network does not build on this dataset: {exc}") from None


def clone(jobs_dir, job_id) -> str:
    """A new queued job with the same net, solver and options."""
    source = jobs_dir.folder(KIND, job_id)
    job = read_json(os.path.join(source, JOB_FILE))
    solver = read_solver_param(os.path.join(source, SOLVER))
    net_param = read_net_param(os.path.join(source, TRAIN_VAL)) if os.path.exists(os.path.join(source, TRAIN_VAL)) else None
    deploy = read_net_param(os.path.join(source, DEPLOY)) if os.path.exists(os.path.join(source, DEPLOY)) else None
    description = {k: job[k] for k in ("network", "net_name", "dataset", "dataset_name", "batch_size",
                                       "iterations_per_epoch")}
    description["name"] = f"{job['name']} (clone)"
    workdir = None if job["workdir"] == source else job["workdir"]
    return _write_job(jobs_dir, description, net_param, solver, deploy, job["gpus"], workdir)


# -- following jobs ------------------------------------------------------------------------------
def snapshots(folder) -> dict:
    """{iteration: weights file} of the job's snapshots."""
    found = {}
    for path in glob.glob(os.path.join(folder, SNAPSHOT_PREFIX + "_iter_*")):
        match = _SNAPSHOT.search(os.path.basename(path))
        if match:
            found[int(match.group(1))] = path
    return dict(sorted(found.items()))


def chosen_snapshot(folder, snapshot=None) -> tuple[int, str]:
    """(iteration, weights file) of the snapshot of iteration `snapshot` (the newest for None or '')."""
    taken = snapshots(folder)
    if not taken:
        raise CaffeError("the job has no snapshot yet: its model can be tested and downloaded once training wrote one")
    if snapshot in (None, ""):
        return max(taken), taken[max(taken)]
    try:
        number = float(snapshot)
        iteration = int(number) if math.isfinite(number) and number.is_integer() else None
    except (TypeError, ValueError):
        iteration = None
    if iteration not in taken:
        raise CaffeError(f"the job has no snapshot of iteration '{snapshot}' (it has {', '.join(map(str, taken))})")
    return iteration, taken[iteration]


def train_val(folder):
    """The job's train/val net, as its solver names it."""
    solver = read_solver_param(os.path.join(folder, SOLVER))
    return solver.net_param if solver.HasField("net_param") else read_net_param(solver.net)


def _solver_state(folder, iteration):
    for suffix in (".solverstate", ".solverstate.h5"):
        path = os.path.join(folder, f"{SNAPSHOT_PREFIX}_iter_{iteration}{suffix}")
        if os.path.exists(path):
            return path
    return None


def summary(jobs_dir, job_id, with_metrics=True) -> dict:
    """What the pages and the API show of a job: its description, status (queued, running, done,
    failed, aborted) and message, iteration, max_iter, elapsed seconds and ETA, snapshots, and
    its curves (metrics: train and test rows)."""
    folder = jobs_dir.folder(KIND, job_id)
    job = read_json(os.path.join(folder, JOB_FILE))
    state = read_state(folder)
    metrics = job_metrics(folder, state["runs"], job["iterations_per_epoch"])
    iteration = metrics.pop("iter")
    out = {**job, "status": state["status"], "message": state.get("message", ""),
           "created": state.get("queued"), "iter": iteration or 0, "elapsed": round(elapsed_seconds(state), 1),
           "eta": _eta(state, iteration, job["max_iter"]), "snapshots": list(snapshots(folder)),
           "has_deploy": os.path.exists(os.path.join(folder, DEPLOY))}
    if with_metrics:
        out["metrics"] = metrics
    else:
        out["final"] = {"train": metrics["train"][-1] if metrics["train"] else {},
                        "test": metrics["test"][-1] if metrics["test"] else {}}
    return out


def _eta(state, iteration, max_iter):
    """Seconds left at the current run's pace; None when not running or not yet measurable."""
    if state["status"] != RUNNING or not state["runs"] or iteration is None:
        return None
    run = state["runs"][-1]
    done = iteration - run.get("resume_iter", 0)
    spent = time.time() - run["started"]
    return round((max_iter - iteration) * spent / done, 1) if done > 0 else None


def resume(jobs_dir, job_id):
    """Queue an aborted or failed job again, from its last snapshot (from the start without one)."""
    folder = jobs_dir.folder(KIND, job_id)
    state = read_state(folder)
    if state["status"] not in (ABORTED, FAILED):
        raise Conflict(f"the job is {state['status']}; only an aborted or failed job can be resumed")
    taken = list(snapshots(folder))
    resumable = [i for i in taken if _solver_state(folder, i)]
    queue(folder, resume_iter=resumable[-1] if resumable else 0)


def launch(folder, state) -> Launch:
    """The job's next run: `nvcaffe train` on its solver (from its last snapshot when resumed),
    in the job's working folder, on its device."""
    job = read_json(os.path.join(folder, JOB_FILE))
    argv = [sys.executable, "-m", "nvcaffe_py", "train", "-solver", os.path.join(folder, SOLVER)]
    resume_iter = state.get("resume_iter", 0)
    if resume_iter:
        argv += ["-snapshot", _solver_state(folder, resume_iter)]
    if job["gpus"]:
        argv += ["-gpu", job["gpus"]]
    device = f"gpu{job['gpus'].split(',')[0]}" if job["gpus"] else "cpu"
    return Launch(argv, job["workdir"], f"run-{len(state['runs']) + 1}.log", device, {"resume_iter": resume_iter})
