"""The rules for the user's files. Reading: only regular files are read, and whole files (protobuf
files, lists) only up to the size Caffe reads protobuf files. Writing: atomically (a temporary
file beside the target, then a rename), so that a crash or a full disk never leaves a truncated
file under the target's name; a failed write is a one-line WriteError.

A path naming a device (`--weights /dev/zero`), a FIFO or a directory is refused before anything
is read, without blocking (the file is opened non-blocking and checked by its descriptor, so a
path swapped in between cannot slip through). Caffe's ReadProtoFromBinaryFile reads at most
INT_MAX bytes; a bigger protobuf file is refused by its size, unread.
"""
import errno
import os
import stat
import tempfile

from .errors import CaffeError

PROTOBUF_FILE_LIMIT = (1 << 31) - 1  # Caffe's kProtoReadBytesLimit (INT_MAX)


class WriteError(CaffeError):
    """A file could not be written (disk full, read-only file system, ...); nothing was replaced."""

    def __init__(self, path, reason):
        super().__init__(f"{path}: cannot write: {reason}")
        self.path, self.reason = path, reason


def _open_regular(path) -> int:
    """A read-only descriptor of the regular file `path`; a one-line CaffeError otherwise."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise CaffeError(f"{path}: no such file") from None
    except OSError as exc:
        if exc.errno == errno.EISDIR:  # where a directory cannot even be opened
            raise CaffeError(f"{path}: not a regular file (a directory)") from None
        raise CaffeError(f"{path}: cannot read: {exc.strerror or exc}") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = "a directory" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode) else "a device or socket"
        raise CaffeError(f"{path}: not a regular file ({kind})")
    return fd


def check_regular(path):
    """Refuse `path` unless it is a regular file (for readers that open it by name, as h5py does)."""
    os.close(_open_regular(os.fspath(path)))


def read_regular(path, limit=None) -> bytes:
    """The bytes of the regular file `path`, refused unread when it holds more than `limit`
    (by default PROTOBUF_FILE_LIMIT)."""
    path = os.fspath(path)
    limit = PROTOBUF_FILE_LIMIT if limit is None else limit
    fd = _open_regular(path)
    with os.fdopen(fd, "rb") as f:
        size = os.fstat(fd).st_size
        if size > limit:
            raise CaffeError(f"{path}: {size} bytes, more than the {limit} such a file may hold")
        try:
            data = f.read(size + 1)
        except OSError as exc:
            raise CaffeError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if len(data) != size:
        raise CaffeError(f"{path}: changed size while it was read (from {size} bytes)")
    return data


def write_atomic(path, payload: bytes):
    """Write to a temporary file beside `path`, then rename: never a truncated file under `path`."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    tmp = None
    try:
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".", suffix=".tmp", dir=directory)
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        raise WriteError(path, exc.strerror or str(exc)) from None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
