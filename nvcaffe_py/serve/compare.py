"""DIGITS 3's model comparison: one row per job — network, dataset, status, iterations, time, and
its last test accuracy and losses — sortable by any column (empty values last)."""
from ..errors import CaffeError
from . import jobs

COLUMNS = ("name", "network", "dataset_name", "status", "iter", "elapsed", "accuracy", "test_loss", "train_loss",
           "created")


def comparison(jobs_dir, sort="created", descending=False) -> list:
    if sort not in COLUMNS:
        raise CaffeError(f"sort by one of {', '.join(COLUMNS)} (got '{sort}')")
    rows = [_row(jobs.summary(jobs_dir, job_id, with_metrics=False)) for job_id in jobs_dir.ids(jobs.KIND)]
    present = sorted((r for r in rows if r[sort] is not None), key=lambda r: r[sort], reverse=descending)
    return present + [r for r in rows if r[sort] is None]


def _row(job) -> dict:
    test, train = job["final"]["test"], job["final"]["train"]
    accuracy = next((value for name, value in test.items() if "accuracy" in name), None)
    return {"id": job["id"], "name": job["name"], "network": job["network"], "dataset_name": job["dataset_name"],
            "status": job["status"], "iter": job["iter"], "max_iter": job["max_iter"], "elapsed": job["elapsed"],
            "accuracy": accuracy, "test_loss": test.get("loss"), "train_loss": train.get("loss"),
            "created": job["created"]}
