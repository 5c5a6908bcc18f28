"""A dataset build or a training job is a task: a process of its own, started by the runner, whose
story the folder's state.json keeps — status (queued, running, done, failed, aborted), the runs
(one per start: its log, when it started and ended), the pid of the one running, and the message
of a failure. Only the server writes state.json; the process writes its log (and a build its
progress.json)."""
import dataclasses
import os
import re
import time

from .storage import STATE_FILE, read_json, write_json

QUEUED, RUNNING, DONE, FAILED, ABORTED = "queued", "running", "done", "failed", "aborted"
FINISHED = (DONE, FAILED, ABORTED)


@dataclasses.dataclass
class Launch:
    """How to start a task's next run: its command line, working folder, the log (a file name in
    the task's folder) and the device it occupies (None: it needs no queue)."""
    argv: list
    cwd: str
    log_name: str
    device: str | None
    details: dict = dataclasses.field(default_factory=dict)  # kept in the run's record


def read_state(folder) -> dict:
    return read_json(os.path.join(folder, STATE_FILE), {"status": QUEUED, "runs": []})


def write_state(folder, state):
    write_json(os.path.join(folder, STATE_FILE), state)


def queue(folder, **fields):
    """Mark the task queued for another run (fields: what that run needs, e.g. a snapshot)."""
    state = read_state(folder)
    state.update(status=QUEUED, queued=time.time(), message="", **fields)
    state.pop("abort_requested", None)
    write_state(folder, state)


def elapsed_seconds(state, now=None) -> float:
    """Time spent running, over every run."""
    now = time.time() if now is None else now
    return sum((run.get("finished") or now) - run["started"] for run in state.get("runs", []))


# The lines that say why a process failed: the CLI's one-line error, glog's E/F lines, the last
# line of a traceback.
_ERROR_LINE = re.compile(r"^(?:\w+(?: \w+)?: error: .*|[EF]\d{4} .*|\w+(?:Error|Exception): .*)$")


def failure_message(log_path, returncode) -> str:
    try:
        with open(log_path, encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        lines = []
    errors = [line for line in lines if _ERROR_LINE.match(line)]
    if errors:
        return errors[-1].split("] ", 1)[-1] if errors[-1][:1] in "EF" else errors[-1]
    return f"the process ended with status {returncode}" + (f": {lines[-1]}" if lines else "")
