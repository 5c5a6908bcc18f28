"""Datasets: image classification datasets built in folders of the jobs dir as the README's
walkthrough builds one by hand. Creating one checks the request, writes the lists (train.txt,
val.txt: `path label`; labels.txt: the class names) and dataset.json (the options), and queues
the build: a process of its own (serve/build_dataset.py) that runs convert_imageset into
train_lmdb and val_lmdb and compute_image_mean into mean.binaryproto."""
import os
import sys

from ..errors import CaffeError
from ..formats import write_atomic
from . import fields as f
from .lmdb_browser import record_count
from .image_sources import class_folders, list_file, split
from .resize import RESIZE_MODES
from .storage import read_json, under_root, write_json
from .tasks import DONE, Launch, elapsed_seconds, queue, read_state
from .zip_upload import unpack

KIND = "datasets"
DATASET_FILE = "dataset.json"
PROGRESS_FILE = "progress.json"
ENCODINGS = ("none", "png", "jpg")
SPLITS = ("train", "val")
MEAN_FILE = "mean.binaryproto"


def lmdb_path(folder, split_name) -> str:
    return os.path.join(folder, f"{split_name}_lmdb")


def create(jobs_dir, root, fields, upload=None, max_unpacked_bytes=1 << 32) -> str:
    """Check the request, lay out the dataset's folder and queue its build; returns its id.
    fields: name, one of folder (class sub-folders) or list_file (on the server, under `root`) —
    or `upload`, a zip of class sub-folders —, val_percent, width, height, resize_mode, color,
    encoding. Nothing is written for a request that fails its checks."""
    options = {
        "name": f.text(fields, "name", "dataset"),
        "val_percent": f.integer(fields, "val_percent", 25, 1, 90),
        "width": f.integer(fields, "width", 32, 1, 4096),
        "height": f.integer(fields, "height", 32, 1, 4096),
        "resize_mode": f.choice(fields, "resize_mode", RESIZE_MODES, "squash"),
        "color": f.choice(fields, "color", ("color", "gray"), "color"),
        "encoding": f.choice(fields, "encoding", ENCODINGS, "none"),
    }
    folder_field, list_field = f.text(fields, "folder"), f.text(fields, "list_file")
    given = [what for what, value in (("a folder", folder_field), ("a list file", list_field), ("a zip", upload))
             if value]
    if len(given) != 1:
        raise CaffeError("give one source of images: a folder on the server, a list file on the server or a zip "
                         f"to upload (got {' and '.join(given) or 'none'})")
    if folder_field:
        options["source"] = under_root(root, folder_field, "image folder")
        names, items = class_folders(options["source"])
    elif list_field:
        options["source"] = under_root(root, list_field, "list file")
        names, items = list_file(options["source"], root)
    if upload is None:
        train, val = split(items, options["val_percent"])
    with jobs_dir.new_item(KIND) as (dataset_id, folder):
        if upload is not None:
            images = os.path.join(folder, "images")
            unpack(upload, images, max_unpacked_bytes)
            options["source"] = f"uploaded {getattr(upload, 'filename', None) or 'zip'}"
            names, items = class_folders(_top_folder(images))
            train, val = split(items, options["val_percent"])
        for split_name, entries in zip(SPLITS, (train, val)):
            write_atomic(os.path.join(folder, f"{split_name}.txt"),
                         "".join(f"{path} {label}\n" for path, label in entries).encode())
        counts = {split_name: [sum(1 for _, label in entries if label == k) for k in range(len(names))]
                  for split_name, entries in zip(SPLITS, (train, val))}
        write_json(os.path.join(folder, DATASET_FILE), {"id": dataset_id, **options, "labels": names, "counts": counts})
        queue(folder)
    return dataset_id


def _top_folder(folder) -> str:
    """The folder of class sub-folders in an unpacked zip: a zip of one folder holding them is
    common, so a lone folder (beside macOS's __MACOSX) that holds folders is gone into."""
    while True:
        entries = [e for e in os.listdir(folder) if e != "__MACOSX" and e[0] != "."]
        inner = os.path.join(folder, entries[0]) if len(entries) == 1 else None
        if inner is None or not os.path.isdir(inner) or not any(
                os.path.isdir(os.path.join(inner, e)) for e in os.listdir(inner)):
            return folder
        folder = inner


def spec(folder) -> dict:
    return read_json(os.path.join(folder, DATASET_FILE))


def summary(jobs_dir, dataset_id) -> dict:
    """What the pages and the API show of a dataset: its options, labels and counts, its build's
    status, progress (0 to 1) and message, and its databases once built."""
    folder = jobs_dir.folder(KIND, dataset_id)
    state = read_state(folder)
    progress = read_json(os.path.join(folder, PROGRESS_FILE), {})
    built = state["status"] == DONE
    return {**spec(folder), "status": state["status"], "message": state.get("message", ""),
            "created": state.get("queued"), "elapsed": elapsed_seconds(state),
            "progress": 1.0 if built else progress.get("fraction", 0.0), "step": progress.get("step", ""),
            "databases": {name: {"path": lmdb_path(folder, name), "records": record_count(lmdb_path(folder, name))}
                          for name in SPLITS} if built else {},
            "mean_file": os.path.join(folder, MEAN_FILE) if built else None}


def launch(folder, state) -> Launch:
    """A build runs at once (no device queue), as `python -m nvcaffe_py.serve.build_dataset FOLDER`."""
    return Launch([sys.executable, "-m", f"{__package__}.build_dataset", folder], folder, "build.log", None)
