"""The web app's training jobs through the REST API: made from the form or a server solver, run
one at a time per device, followed live (server-sent events), aborted, resumed, cloned, and
recovered after a restart; every bad input refused with its message."""
import json
import os
import shutil
import time

import pytest

from .helpers import NEEDS_SERVE, finished, lenet_job_fields, wait_for

pytest.importorskip("flask", reason=NEEDS_SERVE)

from nvcaffe_py.formats import read_solver_param  # noqa: E402
from nvcaffe_py.serve.app import app_shutdown, create_app  # noqa: E402
from nvcaffe_py.serve.tasks import read_state, write_state  # noqa: E402
from nvcaffe_py.tools import make_digits  # noqa: E402
from nvcaffe_py.tools.parse_log import parse_log  # noqa: E402


def test_a_job_trains_and_reports_its_curves(client, trained_job):
    job = client.get(f"/api/jobs/{trained_job['id']}").get_json()
    assert (job["status"], job["iter"], job["max_iter"], job["snapshots"]) == ("done", 30, 30, [10, 20, 30])
    train, test = job["metrics"]["train"], job["metrics"]["test"]
    assert [row["iter"] for row in train] == list(range(30))  # display: every iteration of a short job
    assert [row["iter"] for row in test] == [0, 10, 20, 30]
    assert set(test[0]) >= {"iter", "seconds", "lr", "epoch", "accuracy", "loss"} and train[0]["lr"] == 0.01
    folder = os.path.dirname(read_solver_param(os.path.join(job["workdir"], "solver.prototxt")).snapshot_prefix)
    log_train, log_test = parse_log(os.path.join(folder, "run-1.log"))
    assert [r["loss"] for r in log_train] == [r["loss"] for r in train]  # parse_log's rows, as they are
    assert [r["accuracy"] for r in log_test] == [r["accuracy"] for r in test]
    listed = {j["id"]: j for j in client.get("/api/jobs").get_json()}[job["id"]]
    assert listed["status"] == "done" and listed["final"]["test"]["iter"] == 30 and "metrics" not in listed


def _events(client, job_id, count):
    """The first `count` events of the job's stream (fewer if it ends first)."""
    answer = client.get(f"/api/jobs/{job_id}/events", buffered=False)
    assert answer.mimetype == "text/event-stream"
    events, buffer = [], ""
    for chunk in answer.response:
        buffer += chunk.decode()
        while "\n\n" in buffer:
            message, buffer = buffer.split("\n\n", 1)
            if message.startswith("event: job"):
                events.append(json.loads(message.split("data: ", 1)[1]))
        if len(events) >= count:
            break
    answer.close()
    return events


def test_a_finished_jobs_stream_sends_it_once_and_ends(client, trained_job):
    events = _events(client, trained_job["id"], 5)
    assert len(events) == 1 and events[0]["status"] == "done" and len(events[0]["metrics"]["train"]) == 30
    assert client.get("/api/jobs/20990101-000000-abcd/events").status_code == 404


def test_abort_resume_and_clone_with_one_job_at_a_time(client, dataset_id):
    job_id = client.post("/api/jobs", json=lenet_job_fields(dataset_id, iterations=400, snapshot=10)).get_json()["id"]
    wait_for(client, f"/api/jobs/{job_id}", lambda j: j["status"] == "running")
    clone_id = client.post(f"/api/jobs/{job_id}/clone").get_json()["id"]
    time.sleep(1)  # two ticks of the runner
    assert client.get(f"/api/jobs/{clone_id}").get_json()["status"] == "queued", "the CPU runs one job at a time"
    events = _events(client, job_id, 4)
    iterations = [e["iter"] for e in events if e["status"] == "running"]
    assert len(set(iterations)) > 1 and iterations == sorted(iterations), "the stream follows the training"
    assert client.post(f"/api/jobs/{clone_id}/abort").get_json()["status"] == "aborted"
    assert client.get(f"/api/jobs/{clone_id}").get_json()["message"] == "aborted before it started"
    wait_for(client, f"/api/jobs/{job_id}", lambda j: 10 in j["snapshots"] and j["iter"] > 12)
    assert client.post(f"/api/jobs/{job_id}/abort").status_code == 200
    aborted = finished(client, "jobs", job_id)
    assert aborted["status"] == "aborted" and aborted["iter"] < 400
    assert client.post(f"/api/jobs/{job_id}/abort").get_json()["error"].startswith("the job is aborted")
    assert client.post(f"/api/jobs/{job_id}/abort").status_code == 409
    assert read_state(os.path.join(os.path.dirname(aborted["workdir"]), clone_id))["runs"] == []
    last_snapshot = max(aborted["snapshots"])
    assert client.post(f"/api/jobs/{job_id}/resume").status_code == 200
    resumed = finished(client, "jobs", job_id)
    assert resumed["status"] == "done" and resumed["iter"] == 400, resumed["message"]
    runs = read_state(resumed["workdir"])["runs"]
    assert [run["resume_iter"] for run in runs] == [0, last_snapshot]
    train_iters = [row["iter"] for row in resumed["metrics"]["train"]]
    assert train_iters == list(range(0, 400, 4)), "the first run's rows stop where the second resumed"
    assert client.post(f"/api/jobs/{job_id}/resume").status_code == 409


def test_bad_job_requests_are_refused_with_their_reason(client, dataset_id, root, app):
    jobs_path = os.path.join(app.extensions["nvcaffe_serve"].jobs.path, "jobs")
    before = sorted(os.listdir(jobs_path))
    custom = 'name: "x"\nlayer { name: "data" type: "Data" top: "data" top: "label"\n  data_param { batch_size: 2 }\n'
    cases = {
        "choose the dataset": {"network": "lenet"},
        "no dataset": {"dataset": "20990101-000000-abcd"},
        "give network: one of alexnet, cifar10_quick, lenet, custom": {"dataset": dataset_id},
        "network must be one of": {"dataset": dataset_id, "network": "resnet"},
        "the custom network:3:30: Expected": {"dataset": dataset_id, "network": "custom", "custom_network": custom},
        "paste or upload": {"dataset": dataset_id, "network": "custom"},
        "needs a Data layer for the TRAIN phase and one for the TEST": {
            "dataset": dataset_id, "network": "custom",
            "custom_network": 'layer { name: "in" type: "Input" top: "data" input_param { shape { dim: 1 } } }'},
        "base_lr must be a number": lenet_job_fields(dataset_id, base_lr="fast"),
        "give stepsize": lenet_job_fields(dataset_id, lr_policy="step"),
        "momentum cannot be used with AdaGrad": lenet_job_fields(dataset_id, solver_type="AdaGrad", momentum=0.9),
        "epochs or iterations, not both": lenet_job_fields(dataset_id, epochs=2),
        "GPU": lenet_job_fields(dataset_id, gpus="99"),
        "gpus takes whole numbers": lenet_job_fields(dataset_id, gpus="first"),
        "no such file": {"solver": "missing_solver.prototxt"},
    }
    for expected, fields in cases.items():
        answer = client.post("/api/jobs", json=fields)
        assert answer.status_code in (400, 404), (fields, answer.get_json())
        assert expected in answer.get_json()["error"], (fields, answer.get_json())
    assert client.post("/api/jobs", json={"solver": "/etc/hostname"}).status_code == 403
    assert sorted(os.listdir(jobs_path)) == before


def test_a_missing_gpu_is_named(client, dataset_id):
    error = client.post("/api/jobs", json=lenet_job_fields(dataset_id, gpus="99")).get_json()["error"]
    assert "no GPU is usable here" in error or "there is no GPU 99" in error


def test_a_job_from_a_solver_on_the_server(client, dataset_id, root):
    dataset = client.get(f"/api/datasets/{dataset_id}").get_json()
    net = open(os.path.join(os.path.dirname(__file__), "..", "..", "models", "lenet", "lenet_train_test.prototxt")).read()
    net = net.replace("runs/digits/train_lmdb", dataset["databases"]["train"]["path"])
    net = net.replace("runs/digits/test_lmdb", dataset["databases"]["val"]["path"]).replace("num_output: 10", "num_output: 3")
    (root / "mine").mkdir()
    (root / "mine" / "net.prototxt").write_text(net)
    (root / "mine" / "solver.prototxt").write_text(
        'net: "mine/net.prototxt"\ntest_iter: 1\ntest_interval: 5\nbase_lr: 0.01\nlr_policy: "fixed"\n'
        'display: 1\nmax_iter: 10\nsnapshot_prefix: "mine/snap"\nsolver_mode: CPU\n')
    before = sorted(os.listdir(root / "mine"))
    answer = client.post("/api/jobs", json={"solver": "mine/solver.prototxt"})
    assert answer.status_code == 201, answer.get_json()
    job = finished(client, "jobs", answer.get_json()["id"])
    assert job["status"] == "done" and job["snapshots"] == [10], job["message"]
    assert job["network"].startswith("solver ") and job["has_deploy"]
    assert sorted(os.listdir(root / "mine")) == before, "snapshots go to the job's folder, not the solver's"


def test_a_custom_network_uploaded_as_a_file(client, dataset_id):
    net = open(os.path.join(os.path.dirname(__file__), "..", "..", "models", "lenet", "lenet_train_test.prototxt"), "rb").read()
    fields = {key: str(value) for key, value in lenet_job_fields(dataset_id, iterations=5).items()}
    fields.update(network="custom", custom_network_file=(__import__("io").BytesIO(net.replace(b"num_output: 10", b"num_output: 3")),
                                                         "mine.prototxt"))
    answer = client.post("/api/jobs", data=fields)
    assert answer.status_code == 201, answer.get_json()
    job = finished(client, "jobs", answer.get_json()["id"])
    assert job["status"] == "done" and job["network"] == "custom", job["message"]


def test_a_restart_shows_running_jobs_as_aborted_and_they_resume(tmp_path, root):
    first = create_app(str(tmp_path / "jobs"), str(root), start_runner=False)
    client = first.test_client()
    dataset_id = client.post("/api/datasets", json={"folder": "images", "width": 28, "height": 28,
                                                    "color": "gray"}).get_json()["id"]
    first.extensions["nvcaffe_serve"].runner.tick()  # starts the build
    while client.get(f"/api/datasets/{dataset_id}").get_json()["status"] != "done":
        first.extensions["nvcaffe_serve"].runner.tick()
        time.sleep(0.2)
    job_id = client.post("/api/jobs", json=lenet_job_fields(dataset_id)).get_json()["id"]
    folder = first.extensions["nvcaffe_serve"].jobs.folder("jobs", job_id)
    # As a server killed while the job ran leaves it: running, with a pid that is gone.
    write_state(folder, {"status": "running", "pid": 2 ** 22 + 1, "runs": [{"log": "run-1.log", "started": time.time()}]})
    second = create_app(str(tmp_path / "jobs"), str(root))
    try:
        job = second.test_client().get(f"/api/jobs/{job_id}").get_json()
        assert job["status"] == "aborted" and job["message"] == "the server stopped while it ran"
        assert second.test_client().post(f"/api/jobs/{job_id}/resume").status_code == 200
        assert finished(second.test_client(), "jobs", job_id)["status"] == "done"
    finally:
        app_shutdown(second)


def test_the_readme_api_example_makes_a_job(tmp_path):
    """The README's `curl ... -d '{"solver": "models/lenet/lenet_solver.prototxt"}'`, from a
    checkout where `nvcaffe make_digits` ran: the job reads the net and data as the solver says,
    relative to the root, and snapshots into its own folder."""
    checkout = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    shutil.copytree(os.path.join(checkout, "models", "lenet"), tmp_path / "models" / "lenet")  # a link would leave the root
    assert make_digits.main(["--output", str(tmp_path / "runs" / "digits"), "--num_train", "20", "--num_test", "10"]) == 0
    app = create_app(str(tmp_path / "jobs"), str(tmp_path), start_runner=False)
    answer = app.test_client().post("/api/jobs", json={"solver": "models/lenet/lenet_solver.prototxt"})
    assert answer.status_code == 201, answer.get_json()
    job = app.test_client().get(f"/api/jobs/{answer.get_json()['id']}").get_json()
    assert job["status"] == "queued" and job["max_iter"] == 2000 and job["has_deploy"]
    solver = read_solver_param(os.path.join(tmp_path, "jobs", "jobs", job["id"], "solver.prototxt"))
    assert solver.net == os.path.join(tmp_path, "models", "lenet", "lenet_train_test.prototxt")
    assert solver.snapshot_prefix == os.path.join(tmp_path, "jobs", "jobs", job["id"], "snapshot")
