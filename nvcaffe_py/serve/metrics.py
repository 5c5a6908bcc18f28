"""A job's curves: the rows that `nvcaffe parse_log` reads from each run's log — train loss, test
loss and accuracy, learning rate — as JSON rows ({"iter", "seconds", "lr", "epoch", <outputs>}),
the runs joined where a resumed run took over (a run's rows stop at the iteration the next one
resumed from), and the last iteration logged."""
import functools
import math
import os

from ..tools.parse_log import ITERATION, parse_log

TAIL_BYTES = 1 << 16


def job_metrics(folder, runs, iterations_per_epoch=None) -> dict:
    train, test, offset = [], [], 0.0
    for index, run in enumerate(runs):
        path = os.path.join(folder, run["log"])
        if not os.path.exists(path):
            continue
        later = runs[index + 1:]
        end = later[0].get("resume_iter", 0) if later else math.inf
        stat = os.stat(path)
        train_rows, test_rows = _parsed(path, stat.st_size, stat.st_mtime_ns)
        for rows, out in ((train_rows, train), (test_rows, test)):
            out += [_row(r, offset, iterations_per_epoch) for r in rows if r["NumIters"] < end]
        offset += (run.get("finished") or run["started"]) - run["started"]
    return {"train": train, "test": test, "iter": _last_iteration(folder, runs)}


@functools.lru_cache(maxsize=256)
def _parsed(path, size, mtime_ns):
    """parse_log's rows, read again only when the log changed (its size or time): the pages ask
    for every job's curves every few seconds."""
    return parse_log(path)


def _row(row, offset, iterations_per_epoch) -> dict:
    out = {"iter": int(row["NumIters"]), "seconds": round(row["Seconds"] + offset, 3), "lr": _finite(row["LearningRate"])}
    if iterations_per_epoch:
        out["epoch"] = round(out["iter"] / iterations_per_epoch, 4)
    out.update((name, _finite(value)) for name, value in row.items()
               if name not in ("NumIters", "Seconds", "LearningRate"))
    return out


def _finite(value):
    return value if math.isfinite(value) else None  # JSON has no NaN


def _last_iteration(folder, runs):
    """The iteration that the newest log last named, or where its run resumed; None before that."""
    if not runs:
        return None
    try:
        with open(os.path.join(folder, runs[-1]["log"]), "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - TAIL_BYTES))
            tail = f.read().decode("utf-8", errors="replace")
    except OSError:
        tail = ""
    found = ITERATION.findall(tail)
    return int(found[-1]) if found else runs[-1].get("resume_iter")
