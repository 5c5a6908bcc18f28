"""The server's rules (token, loopback Host names, same-origin writes, upload limit, errors as a
message), its pages, and `nvcaffe serve` itself: it starts, stops its jobs as aborted, refuses
to bind another address without a token, and says what to install without the extra."""
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from .helpers import NEEDS_SERVE, finished, lenet_job_fields

pytest.importorskip("flask", reason=NEEDS_SERVE)

from nvcaffe_py.cli import main  # noqa: E402
from nvcaffe_py.serve.app import create_app  # noqa: E402


@pytest.fixture
def guarded(tmp_path, root):
    """An app that needs a token, and one with a small upload limit (no runner: nothing runs)."""
    return create_app(str(tmp_path / "jobs"), str(root), token="s3cret", bind="0.0.0.0", start_runner=False)


def test_a_token_is_needed_on_every_request_where_one_is_set(guarded):
    client = guarded.test_client()
    for path in ("/api/jobs", "/", "/compare", "/api/datasets"):
        answer = client.get(path)
        assert answer.status_code == 401 and b"needs its token" in answer.data, path
    assert client.get("/api/jobs", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/api/jobs", headers={"Authorization": "Bearer s3cret"}).status_code == 200
    answer = client.get("/compare?token=s3cret")
    assert answer.status_code == 302 and answer.location.endswith("/compare") and "token" not in answer.location
    assert "nvcaffe_token=s3cret" in answer.headers["Set-Cookie"] and "HttpOnly" in answer.headers["Set-Cookie"]
    assert client.get("/compare").status_code == 200, "the cookie carries the token from then on"
    assert client.get("/api/jobs", headers={"Host": "192.0.2.7:5000", "Authorization": "Bearer s3cret"}).status_code == 200


def test_a_loopback_server_answers_loopback_names_only(client):
    assert client.get("/api/jobs", headers={"Host": "127.0.0.1:5000"}).status_code == 200
    answer = client.get("/api/jobs", headers={"Host": "attacker.example:5000"})
    assert answer.status_code == 403 and "localhost only" in answer.get_json()["error"]


def test_writes_from_another_site_are_refused(client, dataset_id):
    answer = client.post("/api/jobs", json={"dataset": dataset_id}, headers={"Origin": "http://attacker.example"})
    assert answer.status_code == 403 and "another site" in answer.get_json()["error"]
    same = client.post("/api/jobs", json={"network": "lenet"}, headers={"Origin": "http://localhost"})
    assert same.status_code == 400  # past the guard, refused for its content


def test_uploads_over_the_limit_are_refused_with_the_limit(tmp_path, root, trained_job):
    small = create_app(str(tmp_path / "jobs"), str(root), max_upload_bytes=1000, start_runner=False).test_client()
    answer = small.post(f"/api/jobs/{trained_job['id']}/classify", data={"image": (io.BytesIO(bytes(5000)), "a.png")})
    assert answer.status_code == 413 and "limit of 0.000954 MiB" in answer.get_json()["error"]


def test_errors_are_messages_never_stack_traces(client, app, trained_job):
    assert client.get("/api/nothing").get_json()["error"].startswith("The requested URL was not found")
    page = client.get("/jobs/20990101-000000-abcd")
    assert page.status_code == 404 and b"no job &#39;20990101-000000-abcd&#39;" in page.data
    assert client.get("/jobs/../../etc/passwd").status_code == 404
    assert client.get("/api/jobs/~root").get_json()["error"] == "no job '~root'"
    folder = app.extensions["nvcaffe_serve"].jobs.folder("jobs", trained_job["id"])
    os.rename(os.path.join(folder, "job.json"), os.path.join(folder, "job.json.away"))
    try:
        answer = client.get(f"/api/jobs/{trained_job['id']}")
    finally:
        os.rename(os.path.join(folder, "job.json.away"), os.path.join(folder, "job.json"))
    assert answer.status_code == 500 and "Traceback" not in answer.get_data(as_text=True)
    assert answer.get_json()["error"].startswith("internal error (TypeError")


def test_every_page_renders(client, trained_job, dataset_id):
    pages = {"/": "home", "/datasets/new": "dataset-new", f"/datasets/{dataset_id}": "dataset",
             "/explore?path=x": "explore", "/jobs/new": "job-new", f"/jobs/{trained_job['id']}": "job-training",
             f"/jobs/{trained_job['id']}/test": "job-test", f"/jobs/{trained_job['id']}/inside": "job-inside",
             "/compare": "compare"}
    for path, page in pages.items():
        answer = client.get(path)
        assert answer.status_code == 200 and f'data-page="{page}"'.encode() in answer.data, path
    assert client.get("/static/chart.umd.min.js").data.startswith(b"/*!\n * Chart.js v4")
    networks = client.get("/api/networks").get_json()
    assert {"lenet", "cifar10_quick", "alexnet"} <= set(networks["standard"]) and "Adam" in networks["solver_types"]


def test_the_app_needs_flask_only_where_it_serves():
    code = ("import sys, nvcaffe_py, nvcaffe_py.serve.jobs, nvcaffe_py.serve.datasets, nvcaffe_py.serve.inference, "
            "nvcaffe_py.serve.build_dataset; print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('flask', 'werkzeug')))")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "[]\n"
    without_flask = ("import sys; sys.modules['flask'] = None; from nvcaffe_py.cli import main; "
                     "sys.exit(main(['serve', '--port', '0']))")
    run = subprocess.run([sys.executable, "-c", without_flask], capture_output=True, text=True)
    assert run.returncode == 1 and 'needs the serve extra (flask is missing): pip install -e ".[serve]"' in run.stderr


def test_binding_another_address_needs_a_token(capsys, monkeypatch):
    monkeypatch.delenv("NVCAFFE_SERVE_TOKEN", raising=False)
    assert main(["serve", "--bind", "0.0.0.0", "--port", "0"]) == 1
    assert "give a token (--token or NVCAFFE_SERVE_TOKEN)" in capsys.readouterr().err


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _http(port, path, body=None):
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode() if body else None,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.load(answer)


def test_nvcaffe_serve_runs_and_its_jobs_show_as_aborted_when_it_stops(tmp_path, root):
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "nvcaffe_py", "serve", "--port", str(port), "--dir",
                               str(tmp_path / "jobs"), "--root", str(root)], stderr=subprocess.PIPE, text=True)
    try:
        assert f"http://127.0.0.1:{port}/" in server.stderr.readline()
        dataset_id = _http(port, "/api/datasets", {"folder": "images", "width": 28, "height": 28, "color": "gray"})["id"]
        deadline = time.monotonic() + 60
        while _http(port, f"/api/datasets/{dataset_id}")["status"] != "done":
            assert time.monotonic() < deadline
            time.sleep(0.2)
        job_id = _http(port, "/api/jobs", lenet_job_fields(dataset_id, iterations=100000))["id"]
        while _http(port, f"/api/jobs/{job_id}")["iter"] < 5:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        server.send_signal(signal.SIGTERM)
        assert server.wait(60) == 0
    finally:
        if server.poll() is None:
            server.kill()
    restarted = create_app(str(tmp_path / "jobs"), str(root), start_runner=False).test_client()
    job = finished(restarted, "jobs", job_id, timeout=1)
    assert job["status"] == "aborted" and job["message"] == "the server stopped"
    assert job["snapshots"], "a job stopped with the server writes a snapshot to resume from"
