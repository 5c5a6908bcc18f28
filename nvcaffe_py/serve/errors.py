"""The app's errors beyond bad input. Bad input stays nvcaffe_py's CaffeError (HTTP 400, its
message shown as it is); these carry the HTTP status of what else a request can run into."""
from ..errors import CaffeError


class NotFound(CaffeError):
    status = 404


class Forbidden(CaffeError):
    status = 403


class Conflict(CaffeError):
    """The request does not fit what the dataset or job is doing now (abort a finished job)."""
    status = 409


def http_status(exc: CaffeError) -> int:
    return getattr(exc, "status", 400)
