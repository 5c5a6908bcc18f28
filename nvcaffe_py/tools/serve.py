"""serve: the web app (DIGITS for nvcaffe): datasets, training jobs with live curves, models to
test, look inside and compare, and its REST API. Needs the `serve` extra (Flask):
`pip install -e ".[serve]"`.

    nvcaffe serve [--port 5000] [--dir jobs] [--bind 127.0.0.1] [--token T] [--root DIR] [--max_upload_mb 1024]

Everything lives in the jobs folder (--dir) and survives a restart; jobs that ran when the
server stopped show as aborted and can be resumed. The server answers on 127.0.0.1 unless
--bind names another address, which needs a token (--token, or NVCAFFE_SERVE_TOKEN): every
request must then carry it. Paths on the server that a request names (image folders, list files,
solvers, LMDBs to browse) must be under --root (default: the current folder).
"""
import logging
import os
import signal
import sys

from .. import log
from ..errors import CaffeError
from . import run_tool
from .gflags import GflagsParser

def build_parser():
    p = GflagsParser("serve", "The web app: datasets, training jobs with live curves, models to test and compare.")
    p.add_flag("port", type=int, default=5000, help="the port to listen on (default 5000)")
    p.add_flag("dir", default="jobs", help="the jobs folder, where datasets, jobs, logs and snapshots live (default jobs)")
    p.add_flag("bind", default="127.0.0.1", help="the address to listen on (default 127.0.0.1; another needs --token)")
    p.add_flag("token", default="", help="the token every request must carry (default $NVCAFFE_SERVE_TOKEN)")
    p.add_flag("root", default=".", help="server paths that requests name must be under this folder (default .)")
    p.add_flag("max_upload_mb", type=int, default=1024, help="the largest upload, in MiB (default 1024)")
    return p


def serve(args) -> int:
    try:
        from werkzeug.serving import make_server

        from ..serve.app import app_shutdown, create_app, is_loopback
    except ImportError as exc:
        raise CaffeError(f"nvcaffe serve needs the serve extra ({exc.name} is missing): "
                         f"pip install -e \".[serve]\"") from None
    token = args.token or os.environ.get("NVCAFFE_SERVE_TOKEN", "")
    if not is_loopback(args.bind) and not token:
        raise CaffeError(f"binding {args.bind} lets other machines in: give a token (--token or NVCAFFE_SERVE_TOKEN) "
                         f"that every request must carry")
    if not os.path.isdir(args.root):
        raise CaffeError(f"--root '{args.root}' is not a folder")
    if args.max_upload_mb < 1:
        raise CaffeError("--max_upload_mb must be at least 1")
    log.logger.setLevel(logging.WARNING)  # the nets built for requests would flood the terminal
    app = create_app(args.dir, args.root, token, args.bind, args.max_upload_mb << 20)
    try:
        server = make_server(args.bind, args.port, app, threaded=True)
    except OSError as exc:
        app_shutdown(app)
        raise CaffeError(f"cannot listen on {args.bind}:{args.port}: {exc.strerror or exc}") from None
    host = f"[{args.bind}]" if ":" in args.bind else args.bind
    print(f"nvcaffe serve: http://{host}:{server.port}/" + (f"?token={token}" if token else "") +
          f" (jobs folder {os.path.abspath(args.dir)}; Ctrl-C stops it)", file=sys.stderr, flush=True)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        print("nvcaffe serve: stopping; running jobs stop (writing a snapshot) and show as aborted",
              file=sys.stderr, flush=True)
        app_shutdown(app)
    return 0


def _interrupt(signum, frame):
    raise KeyboardInterrupt  # SIGTERM stops the server as Ctrl-C does


def main(argv=None) -> int:
    return run_tool(build_parser(), serve, argv)
