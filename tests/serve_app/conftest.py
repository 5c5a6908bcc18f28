"""Fixtures of the web app's tests: an app over a temporary jobs folder whose root holds a folder
of images, and a dataset and a trained job shared by the tests that only read them. Skipped, with
the reason, without the serve extra (each test module skips itself then, before importing the app)."""
import pytest

from .helpers import finished, lenet_job_fields, make_image_folder


@pytest.fixture(scope="session")
def root(tmp_path_factory):
    """The folder the server may read: images/ (class sub-folders)."""
    root = tmp_path_factory.mktemp("server_root")
    make_image_folder(str(root / "images"))
    return root


@pytest.fixture(scope="session")
def app(root, tmp_path_factory):
    from nvcaffe_py.serve.app import app_shutdown, create_app

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
