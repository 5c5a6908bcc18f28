"""The web app of `nvcaffe serve` (Flask): the REST API (api.py) and the pages (pages.py) over the
jobs folder, and the rules every request goes through — the token where one is set, loopback Host
names on a loopback server (no DNS rebinding), writes from the app's own pages only (Origin), the
upload limit — and errors as one clear message (JSON {"error": ...} from the API, a banner on a
page), never a stack trace."""
import hmac
import logging
import os

from flask import Flask, jsonify, redirect, render_template, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from ..errors import CaffeError
from . import api, datasets, jobs, networks, pages
from .context import EXTENSION, Server, current_server
from .errors import http_status
from .runner import Runner
from .storage import JobsDir

logger = logging.getLogger(__name__)
TOKEN_COOKIE = "nvcaffe_token"
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]", "::1")


def create_app(jobs_dir, root=".", token=None, bind="127.0.0.1", max_upload_bytes=1 << 30,
               models_dir=networks.MODELS_DIR, start_runner=True) -> Flask:
    """The app over the jobs folder `jobs_dir`; server-side paths must be under `root`. With
    start_runner, queued datasets and jobs start in the background (stop with app_shutdown)."""
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = max_upload_bytes
    store = JobsDir(jobs_dir)
    runner = Runner(store, {datasets.KIND: datasets.launch, jobs.KIND: jobs.launch})
    app.extensions[EXTENSION] = Server(store, runner, os.path.realpath(root), token or None, is_loopback(bind),
                                       max_upload_bytes, models_dir)
    app.register_blueprint(api.blueprint)
    app.register_blueprint(pages.blueprint)
    app.before_request(_guard)
    app.register_error_handler(CaffeError, lambda exc: _error(str(exc), http_status(exc)))
    app.register_error_handler(RequestEntityTooLarge, lambda exc: _error(
        f"the upload is larger than the server's limit of {max_upload_bytes / 2**20:.3g} MiB "
        f"(nvcaffe serve --max_upload_mb)", 413))
    app.register_error_handler(HTTPException, lambda exc: _error(exc.description, exc.code))
    app.register_error_handler(Exception, _unexpected)
    if start_runner:
        runner.start()
    return app


def is_loopback(address) -> bool:
    return address in LOOPBACK_NAMES or address.startswith("127.")


def app_shutdown(app):
    """Stop the runner and every task it runs (they show as aborted, and can be resumed)."""
    app.extensions[EXTENSION].runner.shutdown()


def _guard():
    server = current_server()
    if server.token:
        given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip() or \
            request.cookies.get(TOKEN_COOKIE) or request.args.get("token", "")
        if not hmac.compare_digest(given.encode(), server.token.encode()):
            return _error("this server needs its token: open the address that `nvcaffe serve` printed (it ends in "
                          "?token=...), or send the header 'Authorization: Bearer <token>'", 401)
        if "token" in request.args and not request.path.startswith("/api/"):
            # The token came in the address: keep it in a cookie and take it out of the address.
            response = redirect(request.path)
            response.set_cookie(TOKEN_COOKIE, server.token, httponly=True, samesite="Strict")
            return response
    elif server.loopback and request.host.rsplit(":", 1)[0] not in LOOPBACK_NAMES:
        return _error(f"this server answers to localhost only, not to '{request.host}'", 403)
    origin = request.headers.get("Origin")
    if request.method not in ("GET", "HEAD", "OPTIONS") and origin and origin.split("://", 1)[-1] != request.host:
        return _error(f"a request from another site ({origin}) may not change anything here", 403)
    return None


def _error(message, status):
    if request.path.startswith("/api/"):
        return jsonify(error=message), status
    return render_template("error.html", message=message, status=status), status


def _unexpected(exc):
    logger.exception("request %s %s", request.method, request.path)
    return _error(f"internal error ({type(exc).__name__}: {exc}); the server's log has the details", 500)
