"""The jobs folder, the app's only state: `datasets/<id>/` and `jobs/<id>/`, each described by JSON
files written atomically (dataset.json or job.json: what to do; state.json: how it went, written
last when the item is made, so that a folder without it is one still being made). Ids are
made here and checked against one pattern wherever a request names one, so that no name reaches
the file system unchecked. Paths that a request names on the server are kept under one root."""
import contextlib
import json
import os
import re
import secrets
import shutil
import time

from .. import formats
from ..errors import CaffeError
from .errors import Forbidden, NotFound

KINDS = ("datasets", "jobs")
STATE_FILE = "state.json"
_ID = re.compile(r"[0-9]{8}-[0-9]{6}-[0-9a-f]{4}")


def write_json(path, value):
    formats.write_atomic(path, (json.dumps(value, indent=1) + "\n").encode())


def read_json(path, default=None):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        return default
    except (OSError, ValueError) as exc:
        raise CaffeError(f"{path}: cannot read: {exc}") from None


class JobsDir:
    def __init__(self, path):
        self.path = os.path.abspath(os.fspath(path))
        for kind in KINDS:
            os.makedirs(os.path.join(self.path, kind), exist_ok=True)

    def new_folder(self, kind) -> tuple[str, str]:
        """(id, folder) of a new, empty folder; ids sort by creation time."""
        while True:
            new_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"
            folder = os.path.join(self.path, kind, new_id)
            try:
                os.mkdir(folder)
                return new_id, folder
            except FileExistsError:
                continue

    @contextlib.contextmanager
    def new_item(self, kind):
        """`with jobs_dir.new_item(kind) as (id, folder):` a new folder that is removed again when
        the block fails, so that a refused request leaves nothing behind."""
        item_id, folder = self.new_folder(kind)
        try:
            yield item_id, folder
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise

    def folder(self, kind, item_id) -> str:
        """The folder of dataset or job `item_id`; NotFound for an unknown or malformed id."""
        what = kind[:-1]
        if not isinstance(item_id, str) or not _ID.fullmatch(item_id):
            raise NotFound(f"no {what} '{item_id}'")
        folder = os.path.join(self.path, kind, item_id)
        if not os.path.isfile(os.path.join(folder, STATE_FILE)):
            raise NotFound(f"no {what} '{item_id}'")
        return folder

    def ids(self, kind) -> list[str]:
        """Every id of `kind` (made, not being made), oldest first."""
        base = os.path.join(self.path, kind)
        return sorted(name for name in os.listdir(base)
                      if _ID.fullmatch(name) and os.path.isfile(os.path.join(base, name, STATE_FILE)))


def under_root(root, path, what) -> str:
    """The real path of `path` (relative ones from `root`); Forbidden where it leads outside
    `root`, through '..' or a link."""
    if not isinstance(path, str) or not path.strip():
        raise CaffeError(f"give the {what}")
    root = os.path.realpath(root)
    real = os.path.realpath(os.path.join(root, path.strip()))
    if os.path.commonpath([root, real]) != root:
        raise Forbidden(f"{what} '{path}' is outside the folder the server may read ({root}); "
                        f"start `nvcaffe serve --root` higher up to allow it")
    return real
