"""A trained job's model through the REST API: classify images, score the validation set, look
inside (graph, weights, activations), compare jobs, download the model — each checked against
caffe.Net run here on the same files."""
import io
import os
import shutil
import tarfile

import numpy as np
import pytest

from .helpers import CLASSES, NEEDS_SERVE, png_bytes

pytest.importorskip("flask", reason=NEEDS_SERVE)

from nvcaffe_py import TEST, Net  # noqa: E402


def _image(root, digit, n=0):
    return png_bytes(root / "images" / CLASSES[digit] / f"{n}.png")


def _classify(client, job_id, images, snapshot=""):
    data = {"image": [(io.BytesIO(payload), f"{k}.png") for k, payload in enumerate(images)], "snapshot": snapshot}
    return client.post(f"/api/jobs/{job_id}/classify", data=data)


def test_classifying_images_gives_the_top_classes(client, trained_job, root):
    answer = _classify(client, trained_job["id"], [_image(root, 0), _image(root, 2)])
    assert answer.status_code == 200, answer.get_json()
    body = answer.get_json()
    assert body["snapshot"] == 30 and [r["image"] for r in body["results"]] == ["0.png", "1.png"]
    for result in body["results"]:
        top = result["top"]
        assert len(top) == 3 and {t["label"] for t in top} == set(CLASSES)
        probabilities = [t["probability"] for t in top]
        assert probabilities == sorted(probabilities, reverse=True) and abs(sum(probabilities) - 1) < 1e-5
    earlier = _classify(client, trained_job["id"], [_image(root, 0)], snapshot="10").get_json()
    assert earlier["snapshot"] == 10 and earlier["results"][0]["top"] != body["results"][0]["top"]


def test_classify_refuses_what_it_cannot_use(client, trained_job, root):
    cases = {"not an image": _classify(client, trained_job["id"], [b"plain text"]),
             "upload one or more images": client.post(f"/api/jobs/{trained_job['id']}/classify", data={}),
             "no snapshot of iteration '15'": _classify(client, trained_job["id"], [_image(root, 1)], "15"),
             "no snapshot of iteration 'last'": _classify(client, trained_job["id"], [_image(root, 1)], "last")}
    for expected, answer in cases.items():
        assert answer.status_code == 400 and expected in answer.get_json()["error"], answer.get_json()


def test_the_validation_set_gives_the_logged_accuracy_and_a_confusion_matrix(client, trained_job):
    for snapshot in (10, 30):
        result = client.post(f"/api/jobs/{trained_job['id']}/evaluate", json={"snapshot": snapshot}).get_json()
        matrix = np.array(result["matrix"])
        assert result["count"] == 9 and matrix.shape == (3, 3) and matrix.sum() == 9
        assert matrix.sum(axis=1).tolist() == [3, 3, 3]  # each class's validation images, by true label
        logged = {row["iter"]: row["accuracy"] for row in trained_job["metrics"]["test"]}
        assert result["accuracy"] == pytest.approx(logged[snapshot], abs=1e-5), "the training log's test accuracy"
        assert result["accuracy"] == pytest.approx(np.trace(matrix) / 9)


def test_weights_and_activations_are_the_nets_own(client, trained_job, root, app):
    folder = app.extensions["nvcaffe_serve"].jobs.folder("jobs", trained_job["id"])
    net = Net(os.path.join(folder, "deploy.prototxt"), os.path.join(folder, "snapshot_iter_30.caffemodel"), TEST)
    layers = client.get(f"/api/jobs/{trained_job['id']}/weights").get_json()["layers"]
    assert [layer["layer"] for layer in layers] == ["conv1", "conv2", "ip1", "ip2"]
    conv1 = layers[0]["params"][0]
    assert conv1["shape"] == [20, 1, 5, 5] and conv1["image"].startswith("data:image/png;base64,")
    expected = net.params["conv1"][0].data
    assert conv1["stats"]["mean"] == pytest.approx(float(expected.mean()), rel=1e-6)
    assert conv1["stats"]["max"] == pytest.approx(float(expected.max()), rel=1e-6)
    assert sum(conv1["stats"]["histogram"]["counts"]) == expected.size
    image = _image(root, 1)
    blobs = client.post(f"/api/jobs/{trained_job['id']}/activations",
                        data={"image": (io.BytesIO(image), "one.png")}).get_json()["blobs"]
    by_name = {b["blob"]: b for b in blobs}
    assert list(by_name) == list(net.blobs) and by_name["conv1"]["shape"] == [20, 24, 24]
    top = _classify(client, trained_job["id"], [image]).get_json()["results"][0]["top"]
    probabilities = {t["index"]: t["probability"] for t in top}
    assert by_name["prob"]["stats"]["max"] == pytest.approx(max(probabilities.values()), rel=1e-6)


def test_the_graph_is_drawn_or_the_missing_tool_named(client, trained_job):
    answer = client.get(f"/api/jobs/{trained_job['id']}/graph.svg")
    if shutil.which("dot"):
        assert answer.status_code == 200 and answer.mimetype == "image/svg+xml"
        assert b"<svg" in answer.data and b"conv1" in answer.data and b"prob" in answer.data
    else:
        assert answer.status_code == 400 and "Graphviz" in answer.get_json()["error"]


def test_the_comparison_sorts_by_any_column(client, trained_job, dataset_id):
    rows = client.get("/api/compare?sort=accuracy&order=desc").get_json()
    mine = next(r for r in rows if r["id"] == trained_job["id"])
    assert mine["accuracy"] == trained_job["metrics"]["test"][-1]["accuracy"]
    assert mine["network"] == "lenet" and mine["dataset_name"] == "digits" and mine["status"] == "done"
    accuracies = [r["accuracy"] for r in rows]
    known = [a for a in accuracies if a is not None]
    assert known == sorted(known, reverse=True) and accuracies[:len(known)] == known, "empty values last"
    names = [r["name"] for r in client.get("/api/compare?sort=name").get_json()]
    assert names == sorted(names)
    assert "sort by one of" in client.get("/api/compare?sort=colour").get_json()["error"]


def test_the_model_downloads_as_an_archive_that_runs(client, trained_job, tmp_path, root):
    answer = client.get(f"/api/jobs/{trained_job['id']}/download?snapshot=20")
    assert answer.status_code == 200 and answer.mimetype == "application/gzip"
    with tarfile.open(fileobj=io.BytesIO(answer.data)) as archive:
        names = sorted(os.path.basename(n) for n in archive.getnames())
        archive.extractall(tmp_path, filter="data")
    assert names == ["deploy.prototxt", "labels.txt", "mean.binaryproto", "snapshot_iter_20.caffemodel",
                     "solver.prototxt", "train_val.prototxt"]
    (folder,) = list(tmp_path.iterdir())
    assert (folder / "labels.txt").read_text().split() == list(CLASSES)
    net = Net(str(folder / "deploy.prototxt"), str(folder / "snapshot_iter_20.caffemodel"), TEST)
    assert net.blobs["prob"].data.shape == (1, 3)
    assert client.get(f"/api/jobs/{trained_job['id']}/download?snapshot=7").status_code == 400
