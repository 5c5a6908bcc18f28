"""The pages of `nvcaffe serve`. Each is a template that names what it shows (an id, a path);
static/app.js fills it from the REST API, so the pages and the API cannot tell different stories.
An unknown dataset or job is the error page here already."""
from flask import Blueprint, render_template, request

from . import datasets, jobs
from .context import current_server

blueprint = Blueprint("pages", __name__)


@blueprint.get("/")
def home():
    return render_template("home.html", page="home")


@blueprint.get("/datasets/new")
def new_dataset():
    return render_template("dataset_new.html", page="dataset-new")


@blueprint.get("/datasets/<dataset_id>")
def dataset(dataset_id):
    current_server().jobs.folder(datasets.KIND, dataset_id)
    return render_template("dataset.html", page="dataset", dataset_id=dataset_id)


@blueprint.get("/explore")
def explore():
    """Any LMDB under the server's root (DIGITS 3's explorer), from ?path=."""
    return render_template("explore.html", page="explore", path=request.args.get("path", ""))


@blueprint.get("/jobs/new")
def new_job():
    return render_template("job_new.html", page="job-new")


@blueprint.get("/jobs/<job_id>", defaults={"view": "training"})
@blueprint.get("/jobs/<job_id>/<any(test, inside):view>")
def job(job_id, view):
    """A job's training (curves and actions), its model's test, or inside its model."""
    current_server().jobs.folder(jobs.KIND, job_id)
    return render_template(f"job_{view}.html", page=f"job-{view}", job_id=job_id)


@blueprint.get("/compare")
def compare():
    return render_template("compare.html", page="compare")
