"""The rules for the user's files. Reading: only regular files are read, and whole files (protobuf
files, lists) only up to the size Caffe reads protobuf files. Writing: atomically (a temporary
file beside the target, then a rename), so that a crash or a full disk never leaves a truncated
file under the target's name, with the permissions the umask gives; a failed write is a one-line
WriteError. Temporaries carry their writer's process id, so that a later run can remove those of
a killed one.

A path naming a device (`--weights /dev/zero`), a FIFO or a directory is refused before anything
is read, without blocking (the file is opened non-blocking and checked by its descriptor, so a
path swapped in between cannot slip through). Caffe's ReadProtoFromBinaryFile reads at most
INT_MAX bytes; a bigger protobuf file is refused by its size, unread.
"""
import errno
import hashlib
import os
import re
import secrets
import shutil
import stat

from . import log
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


# -- temporaries ---------------------------------------------------------------------------------
# A temporary stands beside its target as `<target name>.<pid>-<8 hex digits>.tmp` (`.old` for a
# dataset moved aside while its replacement is renamed in): the writer's process id tells a later
# run whether the writer is gone, so that what a killed run left can be cleaned up.
_TEMPORARY = re.compile(r"^(?P<target>.+)\.(?P<pid>\d+)-[0-9a-f]{8}\.(?P<kind>tmp|old)$")


def temporary_path(path, kind="tmp") -> str:
    """A fresh temporary name beside `path`, of our naming; nothing is created."""
    return f"{path}.{os.getpid()}-{secrets.token_hex(4)}.{kind}"


def _process_is_gone(pid) -> bool:
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except (OSError, OverflowError):  # alive (another user's), or no process id at all
        return False
    return False


def remove_stale_temporaries(directory, target_prefix) -> list:
    """Remove what writers that are gone left in `directory` for targets whose names start with
    `target_prefix`: temporaries, and datasets moved aside (put back where their target is missing,
    since the replacement never arrived). Logs and returns the names dealt with."""
    found = []
    for name in sorted(os.listdir(directory or ".")):
        match = _TEMPORARY.match(name)
        if not match or not match["target"].startswith(target_prefix) or not _process_is_gone(int(match["pid"])):
            continue
        path, target = os.path.join(directory, name), os.path.join(directory, match["target"])
        if match["kind"] == "old" and not os.path.exists(target):
            os.rename(path, target)
        elif os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            os.unlink(path)
        found.append(name)
    if found:
        log.info(f"Removed {len(found)} temporary file{'s' if len(found) > 1 else ''} left by an interrupted run: "
                 f"{', '.join(found)}")
    return found


def write_atomic(path, payload: bytes) -> str:
    """Write to a temporary file beside `path`, then rename: never a truncated file under `path`.
    The file gets the permissions the umask gives new files. Returns the SHA-256 (hex) of what was
    written, its fingerprint."""
    path = os.fspath(path)
    tmp = temporary_path(path)
    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        raise WriteError(path, exc.strerror or str(exc)) from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return hashlib.sha256(payload).hexdigest()


def sha256_of(path) -> str:
    """The SHA-256 (hex) of the regular file `path`, read in chunks."""
    digest = hashlib.sha256()
    with os.fdopen(_open_regular(os.fspath(path)), "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
