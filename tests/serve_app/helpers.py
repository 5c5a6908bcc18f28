"""What the web app's tests share: a folder of small class sub-folders of images, made on the
spot (make_digits' renderer, no download), waiting for a dataset or job, a job's form fields, a
zip in memory."""
import io
import os
import time
import zipfile

import cv2
import numpy as np

from nvcaffe_py.tools.make_digits import render_digit

CLASSES = ("digit0", "digit1", "digit2")
PER_CLASS = 12
FINISHED = ("done", "failed", "aborted")
NEEDS_SERVE = "the web app needs the serve extra: pip install -e '.[serve]'"


def make_image_folder(folder, per_class=PER_CLASS, color=False, seed=0):
    """folder/<class>/<n>.png: digits 0, 1, 2 as 28x28 gray (or tinted colour) images."""
    random = np.random.default_rng(seed)
    for digit, name in enumerate(CLASSES):
        os.makedirs(os.path.join(folder, name), exist_ok=True)
        for n in range(per_class):
            image = render_digit(digit, random)
            if color:
                image = cv2.merge([image, (image * 0.5).astype(np.uint8), 255 - image])
            cv2.imwrite(os.path.join(folder, name, f"{n}.png"), image)
    return folder


def png_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def wait_for(client, url, done, timeout=90):
    """GET `url` until done(json) holds; the last answer."""
    deadline = time.monotonic() + timeout
    while True:
        answer = client.get(url)
        assert answer.status_code == 200, answer.get_json()
        body = answer.get_json()
        if done(body):
            return body
        assert time.monotonic() < deadline, f"{url} still {body.get('status')} after {timeout}s: {body.get('message')}"
        time.sleep(0.2)


def finished(client, kind, item_id, timeout=90):
    return wait_for(client, f"/api/{kind}/{item_id}", lambda body: body["status"] in FINISHED, timeout)


def lenet_job_fields(dataset_id, iterations=30, snapshot=10, **more):
    return {"dataset": dataset_id, "network": "lenet", "batch_size": 8, "iterations": iterations,
            "snapshot_interval": snapshot, "test_interval": 10, "random_seed": 1, **more}


def zip_of(files) -> io.BytesIO:
    """A zip in memory of {member name: bytes}."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, payload in files.items():
            archive.writestr(name, payload)
    out.seek(0)
    return out
