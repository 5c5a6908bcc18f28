"""What every request of the app reaches through Flask's current_app: the jobs folder, the runner,
the folder the server may read, the token, the limits."""
import dataclasses

from flask import current_app

EXTENSION = "nvcaffe_serve"


@dataclasses.dataclass
class Server:
    jobs: object  # storage.JobsDir
    runner: object  # runner.Runner
    root: str  # server-side paths that requests name must be under it
    token: str | None  # required on every request where set
    loopback: bool  # bound to a loopback address: only loopback Host names are answered
    max_upload_bytes: int
    models_dir: str

    @property
    def max_unpacked_bytes(self) -> int:
        return 4 * self.max_upload_bytes  # what an uploaded zip may unpack to


def current_server() -> Server:
    return current_app.extensions[EXTENSION]
