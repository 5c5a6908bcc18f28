"""A job's model as one archive (tar.gz), as DIGITS gave it: a snapshot's weights, the deploy net,
the train/val net and solver, the dataset's mean image and labels (labels.txt, one class a line,
in label order)."""
import io
import os
import tarfile
import tempfile

from . import datasets, jobs
from .storage import read_json

SPOOL_BYTES = 64 << 20  # archives larger than this are built in a temporary file


def model_archive(jobs_dir, job_id, snapshot=None):
    """(file object at its start, archive name) of the job's model at `snapshot` (default: newest)."""
    folder = jobs_dir.folder(jobs.KIND, job_id)
    job = read_json(os.path.join(folder, jobs.JOB_FILE))
    iteration, weights = jobs.chosen_snapshot(folder, snapshot)
    base = f"job-{job_id}-iter-{iteration}"
    members = {os.path.basename(weights): weights}
    members.update((name, os.path.join(folder, name)) for name in (jobs.DEPLOY, jobs.TRAIN_VAL, jobs.SOLVER))
    out = tempfile.SpooledTemporaryFile(SPOOL_BYTES)
    with tarfile.open(fileobj=out, mode="w:gz") as archive:
        for name, path in members.items():
            if os.path.exists(path):
                archive.add(path, f"{base}/{name}")
        if job["dataset"]:
            dataset_folder = jobs_dir.folder(datasets.KIND, job["dataset"])
            archive.add(os.path.join(dataset_folder, datasets.MEAN_FILE), f"{base}/{datasets.MEAN_FILE}")
            labels = "".join(f"{name}\n" for name in datasets.spec(dataset_folder)["labels"]).encode()
            info = tarfile.TarInfo(f"{base}/labels.txt")
            info.size = len(labels)
            archive.addfile(info, io.BytesIO(labels))
    out.seek(0)
    return out, f"{base}.tar.gz"
