"""Fixtures of the web app's tests: a folder of small class sub-folders of images, made on the
spot (make_digits' renderer, no download), an app over a temporary jobs folder, and a dataset and
a trained job shared by the tests that only read them."""
import io
import os
import time
import zipfile

import cv2
import numpy as np
import pytest

flask = pytest.importorskip("flask", reason="the web app needs the serve extra: pip install -e '.[serve]'")

from nvcaffe_py.serve.app import app_shutdown, create_app  # noqa: E402
from nvcaffe_py.tools.make_digits import render_digit  # noqa: E402

CLASSES = ("digit0", "digit1", "digit2")
PER_CLASS = 12
FINISHED = ("done", "failed", "aborted")


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


@pytest.fixture(scope="session")
def root(tmp_path_factory):
    """The folder the server may read: images/ (class sub-folders)."""
    root = tmp_path_factory.mktemp("server_root")
    make_image_folder(str(root / "images"))
    return root


@pytest.fixture(scope="session")
def app(root, tmp_path_factory):
    app = create_app(str(tmp_path_factory.mktemp("jobs")), str(root))
    yield app
    app_shutdown(app)


@pytest.fixture(scope="session")
def client(app):
    return app.test_client()


@pytest.fixture(scope="session")
def dataset_id(client):
    answer = client.post("/api/datasets", json={"name": "digits", "folder": "images", "width": 28, "height": 28,
                                                 "color": "gray", "val_percent": 25})
    assert answer.status_code == 201, answer.get_json()
    dataset = finished(client, "datasets", answer.get_json()["id"])
    assert dataset["status"] == "done", dataset["message"]
    return dataset["id"]


@pytest.fixture(scope="session")
def trained_job(client, dataset_id):
    answer = client.post("/api/jobs", json=lenet_job_fields(dataset_id, name="trained"))
    assert answer.status_code == 201, answer.get_json()
    job = finished(client, "jobs", answer.get_json()["id"])
    assert job["status"] == "done", job["message"]
    return job


def zip_of(files) -> io.BytesIO:
    """A zip in memory of {member name: bytes}."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, payload in files.items():
            archive.writestr(name, payload)
    out.seek(0)
    return out
