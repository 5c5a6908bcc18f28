"""`python -m nvcaffe_py.serve.build_dataset FOLDER`: build the dataset that FOLDER/dataset.json
describes, as its own process (the runner starts it; its log is FOLDER/build.log). The steps are
Caffe's tools run as from the command line — convert_imageset for train.txt and val.txt, then
compute_image_mean — with their progress written to FOLDER/progress.json as they go. A crop or
fill resize is done first, into FOLDER/staging/ (convert_imageset only squashes); the staged
copies are removed at the end."""
import os
import shutil
import sys
import time

import cv2

from .. import log
from ..datum import read_image_list
from ..formats import write_atomic
from ..tools import compute_image_mean, convert_imageset
from .datasets import DATASET_FILE, MEAN_FILE, PROGRESS_FILE, SPLITS, lmdb_path
from .resize import resize
from .storage import read_json, write_json

WRITE_EVERY_S = 0.25


class ProgressFile:
    """progress.json: the step running and the fraction of all the work done, each step weighted
    by its number of images."""

    def __init__(self, folder, steps):
        self.path = os.path.join(folder, PROGRESS_FILE)
        self.steps = steps  # [(name, images)]
        self.total = sum(images for _, images in steps) or 1
        self.finished = 0  # images of the steps done
        self.step = None
        self._written = 0.0

    def begin(self, name):
        self.step = name
        self.update(0, 1, force=True)

    def end(self):
        self.update(1, 1, force=True)
        self.finished += dict(self.steps)[self.step]

    def update(self, done, total, force=False):
        now = time.monotonic()
        if force or now - self._written >= WRITE_EVERY_S:
            self._written = now
            fraction = (self.finished + dict(self.steps)[self.step] * done / max(total, 1)) / self.total
            write_json(self.path, {"step": self.step, "fraction": round(min(fraction, 1.0), 4)})


def build(folder) -> int:
    spec = read_json(os.path.join(folder, DATASET_FILE))
    lists = {name: os.path.join(folder, f"{name}.txt") for name in SPLITS}
    counts = {name: sum(spec["counts"][name]) for name in SPLITS}
    staged = spec["resize_mode"] != "squash"
    steps = ([("resize", sum(counts.values()))] if staged else []) + \
        [(f"convert {name}", counts[name]) for name in SPLITS] + [("mean", counts["train"])]
    progress = ProgressFile(folder, steps)
    stop_listening = log.listen_to_progress(progress.update)
    try:
        image_root = ""  # the lists hold absolute paths
        if staged:
            progress.begin("resize")
            image_root, lists = _stage(folder, lists, spec, progress)
            progress.end()
        size = [] if staged else ["-resize_height", str(spec["height"]), "-resize_width", str(spec["width"])]
        options = size + (["-gray"] if spec["color"] == "gray" else []) + \
            (["-encode_type", spec["encoding"]] if spec["encoding"] != "none" else [])
        for name in SPLITS:
            progress.begin(f"convert {name}")
            status = convert_imageset.main(["-shuffle", *options, image_root, lists[name], lmdb_path(folder, name)])
            if status:
                return status
            progress.end()
        progress.begin("mean")
        status = compute_image_mean.main([lmdb_path(folder, "train"), os.path.join(folder, MEAN_FILE)])
        progress.end()
        return status
    finally:
        stop_listening()
        shutil.rmtree(os.path.join(folder, "staging"), ignore_errors=True)


def _stage(folder, lists, spec, progress) -> tuple[str, dict]:
    """Resized copies (PNG, lossless) of every listed image in FOLDER/staging: (that folder, with
    its '/', and lists of the copies' names in it). An unreadable image is left out with a
    warning, as convert_imageset leaves it out."""
    staging = os.path.join(folder, "staging")
    os.makedirs(staging, exist_ok=True)
    staged_lists, done = {}, 0
    for name, path in lists.items():
        lines = []
        for number, image_path, label in read_image_list(path):
            image = cv2.imread(image_path, cv2.IMREAD_COLOR)
            done += 1
            progress.update(done, progress.steps[0][1])
            if image is None:
                log.warning(f"{path}:{number}: skipped: could not open or decode image file '{image_path}'")
                continue
            target = f"{name}_{number:08d}.png"
            cv2.imwrite(os.path.join(staging, target), resize(image, spec["height"], spec["width"], spec["resize_mode"]))
            lines.append(f"{target} {label}\n")
        staged_lists[name] = os.path.join(staging, f"{name}.txt")
        write_atomic(staged_lists[name], "".join(lines).encode())
    return staging + os.sep, staged_lists


if __name__ == "__main__":
    sys.exit(build(os.path.abspath(sys.argv[1])))
