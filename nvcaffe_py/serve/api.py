"""The REST JSON API of `nvcaffe serve`: everything the pages do, for scripts and other machines
(DIGITS had one). Each call answers JSON; a problem is {"error": message} with its status (400
bad input, 401 no token, 403 refused, 404 unknown, 409 not now, 413 too large)."""
import json
import time

from flask import Blueprint, Response, jsonify, request, send_file, stream_with_context

from ..errors import CaffeError
from . import compare, datasets, inside, jobs, networks, solver_form
from .context import current_server
from .download import model_archive
from .inference import Model
from .lmdb_browser import browse
from .storage import under_root
from .tasks import FINISHED

blueprint = Blueprint("api", __name__, url_prefix="/api")
EVENT_POLL_S = 1.0
KEEPALIVE_S = 15.0


def request_fields() -> dict:
    """The request's fields: a JSON object, or the form's fields."""
    if request.is_json:
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            raise CaffeError("the request body must be a JSON object")
        return body
    return request.form.to_dict()


def uploaded_images() -> list:
    images = [upload.read() for upload in request.files.getlist("image") if upload.filename]
    if not images:
        raise CaffeError("upload one or more images (form field 'image')")
    return images


# -- networks and datasets -----------------------------------------------------------------------
@blueprint.get("/networks")
def list_networks():
    return jsonify(standard=list(networks.standard_networks(current_server().models_dir)),
                   solver_types=solver_form.SOLVER_TYPES, lr_policies=solver_form.LR_POLICIES)


@blueprint.get("/datasets")
def list_datasets():
    store = current_server().jobs
    return jsonify([datasets.summary(store, i) for i in store.ids(datasets.KIND)])


@blueprint.post("/datasets")
def create_dataset():
    server = current_server()
    upload = request.files.get("zip")
    dataset_id = datasets.create(server.jobs, server.root, request_fields(),
                                 upload if upload and upload.filename else None, server.max_unpacked_bytes)
    return jsonify(id=dataset_id), 201


@blueprint.get("/datasets/<dataset_id>")
def get_dataset(dataset_id):
    return jsonify(datasets.summary(current_server().jobs, dataset_id))


@blueprint.get("/datasets/<dataset_id>/browse")
def browse_dataset(dataset_id):
    store = current_server().jobs
    summary = datasets.summary(store, dataset_id)
    split = request.args.get("split", "train")
    if split not in summary["databases"]:
        raise CaffeError(f"the dataset has no '{split}' database yet (it has {', '.join(summary['databases']) or 'none'})")
    return jsonify(_browse(summary["databases"][split]["path"]))


@blueprint.get("/browse")
def browse_lmdb():
    """Any LMDB under the server's root."""
    server = current_server()
    return jsonify(_browse(under_root(server.root, request.args.get("path", ""), "LMDB")))


def _browse(path):
    return browse(path, _int_arg("page", 0), _int_arg("per_page", 48), _int_arg("label", None))


def _int_arg(name, default):
    value = request.args.get(name, "")
    if value and not value.isdigit():
        raise CaffeError(f"{name} must be a whole number (got '{value}')")
    return int(value) if value else default


# -- jobs ----------------------------------------------------------------------------------------
@blueprint.get("/jobs")
def list_jobs():
    store = current_server().jobs
    return jsonify([jobs.summary(store, i, with_metrics=False) for i in store.ids(jobs.KIND)])


@blueprint.post("/jobs")
def create_job():
    server = current_server()
    fields = request_fields()
    upload = request.files.get("custom_network_file")
    if upload and upload.filename:
        try:
            fields["custom_network"] = upload.read().decode("utf-8")
        except UnicodeDecodeError:
            raise CaffeError("the uploaded network is not a UTF-8 text prototxt") from None
    return jsonify(id=jobs.create(server.jobs, server.root, fields, server.models_dir)), 201


@blueprint.get("/jobs/<job_id>")
def get_job(job_id):
    return jsonify(jobs.summary(current_server().jobs, job_id))


@blueprint.get("/jobs/<job_id>/events")
def job_events(job_id):
    """Server-sent events: the job (as GET /api/jobs/<id>) whenever it changes, until it ends."""
    store = current_server().jobs
    jobs.summary(store, job_id, with_metrics=False)  # an unknown job is a 404 now, not a broken stream

    def stream():
        last, quiet_since = None, time.monotonic()
        while True:
            job = jobs.summary(store, job_id)
            text = json.dumps(job)
            if text != last:
                yield f"event: job\ndata: {text}\n\n"
                last, quiet_since = text, time.monotonic()
            elif time.monotonic() - quiet_since > KEEPALIVE_S:
                yield ": still here\n\n"
                quiet_since = time.monotonic()
            if job["status"] in FINISHED:
                return
            time.sleep(EVENT_POLL_S)

    return Response(stream_with_context(stream()), mimetype="text/event-stream",
                    headers={"Cache-Control": "no-cache"})


@blueprint.post("/jobs/<job_id>/abort")
def abort_job(job_id):
    server = current_server()
    server.runner.abort(server.jobs.folder(jobs.KIND, job_id), "job")
    return jsonify(jobs.summary(server.jobs, job_id, with_metrics=False))


@blueprint.post("/jobs/<job_id>/resume")
def resume_job(job_id):
    store = current_server().jobs
    jobs.resume(store, job_id)
    return jsonify(jobs.summary(store, job_id, with_metrics=False))


@blueprint.post("/jobs/<job_id>/clone")
def clone_job(job_id):
    return jsonify(id=jobs.clone(current_server().jobs, job_id)), 201


@blueprint.get("/jobs/<job_id>/download")
def download_job(job_id):
    archive, name = model_archive(current_server().jobs, job_id, request.args.get("snapshot"))
    return send_file(archive, mimetype="application/gzip", as_attachment=True, download_name=name)


@blueprint.post("/jobs/<job_id>/classify")
def classify(job_id):
    model = Model(current_server().jobs, job_id, request.form.get("snapshot"))
    images = uploaded_images()
    names = [upload.filename for upload in request.files.getlist("image") if upload.filename]
    return jsonify(snapshot=model.iteration, results=[{"image": name, "top": top}
                                                      for name, top in zip(names, model.classify(images))])


@blueprint.post("/jobs/<job_id>/evaluate")
def evaluate(job_id):
    return jsonify(Model(current_server().jobs, job_id, request_fields().get("snapshot")).evaluate())


@blueprint.get("/jobs/<job_id>/graph.svg")
def graph(job_id):
    return Response(inside.graph_svg(current_server().jobs, job_id), mimetype="image/svg+xml")


@blueprint.get("/jobs/<job_id>/weights")
def weights(job_id):
    model = Model(current_server().jobs, job_id, request.args.get("snapshot"))
    return jsonify(snapshot=model.iteration, layers=inside.weights(model))


@blueprint.post("/jobs/<job_id>/activations")
def activations(job_id):
    model = Model(current_server().jobs, job_id, request.form.get("snapshot"))
    return jsonify(snapshot=model.iteration, blobs=inside.activations(model, uploaded_images()[0]))


@blueprint.get("/compare")
def comparison():
    rows = compare.comparison(current_server().jobs, request.args.get("sort", "created"),
                              request.args.get("order", "asc") == "desc")
    return jsonify(rows)
