"""The web app's datasets through the REST API (Flask's test client): built from a server
folder, a list file or an uploaded zip, browsed, and every bad input refused with its message."""
import io
import os
import stat
import zipfile

import numpy as np
import pytest

from .helpers import CLASSES, NEEDS_SERVE, finished, make_image_folder, zip_of

pytest.importorskip("flask", reason=NEEDS_SERVE)

from nvcaffe_py.datum import datum_to_array, parse_datum  # noqa: E402
from nvcaffe_py.db import open_reader  # noqa: E402
from nvcaffe_py.formats import read_mean_binaryproto  # noqa: E402


def test_a_folder_of_class_folders_becomes_two_lmdbs_and_a_mean(client, dataset_id):
    dataset = client.get(f"/api/datasets/{dataset_id}").get_json()
    assert dataset["labels"] == list(CLASSES)
    assert dataset["counts"] == {"train": [9, 9, 9], "val": [3, 3, 3]}  # 25% of each class held out
    assert dataset["progress"] == 1.0
    assert {name: db["records"] for name, db in dataset["databases"].items()} == {"train": 27, "val": 9}
    records = [parse_datum(v) for _, v in open_reader(dataset["databases"]["train"]["path"]).begin().cursor()]
    images = np.stack([datum_to_array(d) for d in records]).astype(np.float64)
    assert images.shape[1:] == (1, 28, 28)  # gray, at the asked size
    np.testing.assert_allclose(read_mean_binaryproto(dataset["mean_file"])[0], images.mean(axis=0), rtol=1e-5)
    assert dataset["id"] in [d["id"] for d in client.get("/api/datasets").get_json()]


def test_browsing_pages_through_thumbnails_with_label_counts(client, dataset_id):
    page = client.get(f"/api/datasets/{dataset_id}/browse?split=train&page=1&per_page=10").get_json()
    assert page["records"] == 27 and page["pages"] == 3 and len(page["items"]) == 10
    assert page["label_counts"] == {"0": 9, "1": 9, "2": 9}
    assert page["items"][0]["image"].startswith("data:image/png;base64,")
    only_ones = client.get(f"/api/datasets/{dataset_id}/browse?split=val&label=1").get_json()
    assert only_ones["matching"] == 3 and {item["label"] for item in only_ones["items"]} == {1}
    first = client.get(f"/api/datasets/{dataset_id}/browse?per_page=1").get_json()["items"][0]
    assert first["key"] == next(iter(open_reader(page["path"]).begin().cursor()))[0].decode()
    assert client.get(f"/api/datasets/{dataset_id}/browse?split=test").status_code == 400
    assert "per_page" in client.get(f"/api/datasets/{dataset_id}/browse?per_page=0").get_json()["error"]
    assert "label must be a whole number" in client.get(f"/api/datasets/{dataset_id}/browse?label=one").get_json()["error"]


def test_any_lmdb_under_the_root_can_be_browsed(client, dataset_id, root):
    source = client.get(f"/api/datasets/{dataset_id}").get_json()["databases"]["val"]["path"]
    os.symlink(source, root / "val_copy_lmdb")  # inside the root, by a link the check follows to the jobs dir
    answer = client.get("/api/browse?path=val_copy_lmdb")
    assert answer.status_code == 403, "a link out of the root is refused"
    answer = client.get("/api/browse?path=images")
    assert answer.status_code == 400 and "not an LMDB" in answer.get_json()["error"]


def test_an_uploaded_zip_cropped_in_colour_and_encoded(client, tmp_path):
    folder = make_image_folder(str(tmp_path / "photos"), per_class=4, color=True)
    files = {f"photos/{c}/{n}": open(os.path.join(folder, c, n), "rb").read()
             for c in CLASSES for n in os.listdir(os.path.join(folder, c))}
    answer = client.post("/api/datasets", data={"zip": (zip_of(files), "photos.zip"), "width": "24", "height": "20",
                                                "resize_mode": "crop", "encoding": "png", "val_percent": "25"})
    assert answer.status_code == 201, answer.get_json()
    dataset = finished(client, "datasets", answer.get_json()["id"])
    assert dataset["status"] == "done", dataset["message"]
    assert dataset["labels"] == list(CLASSES) and dataset["source"] == "uploaded photos.zip"
    _, value = next(iter(open_reader(dataset["databases"]["train"]["path"]).begin().cursor()))
    datum = parse_datum(value)
    assert datum.encoded and datum_to_array(datum).shape == (3, 20, 24)


def test_a_list_file_gray_and_filled(client, root):
    lines = [f"images/{c}/{n}.png {k}" for k, c in enumerate(CLASSES) for n in range(4)]
    (root / "list.txt").write_text("\n".join(lines) + "\n")
    answer = client.post("/api/datasets", json={"list_file": "list.txt", "width": 40, "height": 30,
                                                 "resize_mode": "fill", "color": "gray", "val_percent": 50})
    dataset = finished(client, "datasets", answer.get_json()["id"])
    assert dataset["status"] == "done", dataset["message"]
    assert dataset["labels"] == ["0", "1", "2"] and dataset["counts"]["val"] == [2, 2, 2]
    _, value = next(iter(open_reader(dataset["databases"]["val"]["path"]).begin().cursor()))
    image = datum_to_array(parse_datum(value))
    assert image.shape == (1, 30, 40)
    assert not image[0, :, :5].any(), "a 28x28 image fills 30x30 of 40x30: black bands at the sides"


def _dataset_count(client):
    return len(client.get("/api/datasets").get_json())


def test_bad_requests_are_refused_with_their_reason_and_write_nothing(client, root, app):
    (root / "empty" / "cats").mkdir(parents=True)
    (root / "empty" / "cats" / "notes.txt").write_text("no images here")
    before = _dataset_count(client), len(os.listdir(os.path.join(app.extensions["nvcaffe_serve"].jobs.path, "datasets")))
    cases = {
        "no images found": {"folder": "empty"},
        "give one source of images": {},
        "a folder and a list file": {"folder": "images", "list_file": "list.txt"},
        "val_percent must be between 1 and 90": {"folder": "images", "val_percent": 95},
        "width must be a whole number": {"folder": "images", "width": "wide"},
        "resize_mode must be one of squash, crop, fill": {"folder": "images", "resize_mode": "stretch"},
        "is not a folder": {"folder": "images/digit0/0.png"},
        "cannot read the image list": {"list_file": "missing.txt"},
        "each needs at least one": {"folder": "images", "val_percent": 1},
    }
    for expected, fields in cases.items():
        answer = client.post("/api/datasets", json=fields)
        assert answer.status_code == 400, (fields, answer.get_json())
        assert expected in answer.get_json()["error"], (fields, answer.get_json())
    assert client.post("/api/datasets", data=b"[1, 2]", content_type="application/json").status_code == 400
    after = _dataset_count(client), len(os.listdir(os.path.join(app.extensions["nvcaffe_serve"].jobs.path, "datasets")))
    assert after == before


def test_server_paths_outside_the_root_are_refused(client, root):
    for fields in ({"folder": ".."}, {"folder": "/etc"}, {"list_file": "/etc/hostname"}, {"folder": "images/../.."}):
        answer = client.post("/api/datasets", json=fields)
        assert answer.status_code == 403, (fields, answer.get_json())
        assert "outside the folder the server may read" in answer.get_json()["error"]
    (root / "escape.txt").write_text("/etc/hostname 0\n../../x.png 1\n")
    answer = client.post("/api/datasets", json={"list_file": "escape.txt"})
    assert answer.status_code == 403 and "escape.txt:1" in answer.get_json()["error"]
    assert client.get("/api/browse?path=/").status_code == 403


def test_zip_members_never_land_outside_their_folder(client, tmp_path, app):
    jobs_path = app.extensions["nvcaffe_serve"].jobs.path
    image = open(os.path.join(make_image_folder(str(tmp_path / "one"), per_class=1), "digit0", "0.png"), "rb").read()
    link = zipfile.ZipInfo("a/link.png")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    linked = zip_of({})
    with zipfile.ZipFile(linked, "w") as archive:
        archive.writestr("a/digit0/0.png", image)
        archive.writestr(link, "/etc/passwd")
    linked.seek(0)
    cases = {"outside its folder": zip_of({"../../escaped.png": image}),
             "outside its folder ": zip_of({"/tmp/escaped.png": image}),
             "symbolic link": linked,
             "not a zip file": io.BytesIO(b"PK but not really")}
    for expected, payload in cases.items():
        answer = client.post("/api/datasets", data={"zip": (payload, "x.zip")})
        assert answer.status_code == 400 and expected.strip() in answer.get_json()["error"], answer.get_json()
    assert not os.path.exists(os.path.join(jobs_path, "escaped.png"))
    assert not os.path.exists("/tmp/escaped.png")
    leftovers = [d for d in os.listdir(os.path.join(jobs_path, "datasets"))
                 if not os.path.exists(os.path.join(jobs_path, "datasets", d, "dataset.json"))]
    assert leftovers == []


def test_a_zip_that_unpacks_beyond_the_limit_is_refused(tmp_path, root):
    from nvcaffe_py.serve.app import create_app
    small = create_app(str(tmp_path / "jobs"), str(root), max_upload_bytes=1 << 16, start_runner=False).test_client()
    bomb = zip_of({"a/digit0/big.png": bytes(1 << 20)})  # 1 MiB of zeros compresses to about 1 KiB
    answer = small.post("/api/datasets", data={"zip": (bomb, "bomb.zip")})
    assert answer.status_code == 400 and "the limit" in answer.get_json()["error"]
    too_big = small.post("/api/datasets", data={"zip": (io.BytesIO(os.urandom(1 << 17)), "big.zip")})
    assert too_big.status_code == 413 and "limit of 0.0625 MiB" in too_big.get_json()["error"]


def test_a_dataset_being_made_is_neither_listed_nor_started(client, app):
    server = app.extensions["nvcaffe_serve"]
    dataset_id, folder = server.jobs.new_folder("datasets")  # as create() leaves it while it unpacks a zip
    try:
        server.runner.tick()
        assert dataset_id not in [d["id"] for d in client.get("/api/datasets").get_json()]
        assert client.get(f"/api/datasets/{dataset_id}").status_code == 404
        assert os.listdir(folder) == [], "the runner did not start a build there"
    finally:
        os.rmdir(folder)
