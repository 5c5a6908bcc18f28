"""One training run per snapshot_prefix: `<prefix>.lock`, locked (flock) for the run's life.

Two runs writing one prefix interleave their snapshots: iteration N's .caffemodel from one and its
.solverstate from the other, a pair that resumes into a silent mix. The second run to start is
refused with a message naming the first (the lock file holds its process id, host and start).
The lock goes with the process, however it ends; a run that finishes removes the file, and a run
that locked a file removed meanwhile tries again on the new one.
"""
import fcntl
import os
import socket
import time

from nvcaffe_py.errors import CaffeError


class PrefixLock:
    def __init__(self, snapshot_prefix):
        self.prefix = snapshot_prefix
        self.path = f"{snapshot_prefix}.lock"
        self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self):
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o666)
            except OSError as exc:
                raise CaffeError(f"cannot lock snapshot_prefix '{self.prefix}': {self.path}: "
                                 f"{exc.strerror or exc}") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 512, 0).decode("utf-8", errors="replace").strip() or "a process"
                os.close(fd)
                raise CaffeError(f"snapshot_prefix '{self.prefix}' is in use by another training run ({holder}); "
                                 f"wait for it to end or choose another snapshot_prefix") from None
            if self._still_at_path(fd):
                break
            os.close(fd)  # its holder removed it as we locked it: lock the file now at the path
        os.ftruncate(fd, 0)
        started = time.strftime("%Y-%m-%d %H:%M:%S")
        os.pwrite(fd, f"process {os.getpid()} on {socket.gethostname()}, since {started}\n".encode(), 0)
        self._fd = fd

    def _still_at_path(self, fd) -> bool:
        try:
            at_path = os.stat(self.path)
        except FileNotFoundError:
            return False
        mine = os.fstat(fd)
        return (at_path.st_dev, at_path.st_ino) == (mine.st_dev, mine.st_ino)

    def release(self):
        """Remove the lock file while still holding it, so that no one locks a file on its way out."""
        if self._fd is None:
            return
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        os.close(self._fd)
        self._fd = None

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc):
        self.release()
