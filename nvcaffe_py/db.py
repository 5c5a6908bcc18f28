"""LMDB datasets, as Caffe's db::LMDB: a directory holding data.mdb, keys sorted, values Datums.

Readers open the environment read-only and without the lock file (lock=False), so that several
nets (train and test), processes, and read-only file systems can read one LMDB at once. Before
LMDB maps a file, lmdb_layout checks it (a truncated or damaged data.mdb would crash the process);
errors LMDB reports while reading are one-line errors naming the database and the record.
Writers build into a temporary directory beside the target and rename it into place when done,
so a crash or a bad record never leaves a half-written database under the target's name; the
next writer of that target removes what a killed one left (files.remove_stale_temporaries).
LevelDB databases are recognised (nvcaffe_py.leveldb reads them; nvcaffe_py.datasets picks).
"""
import os
import shutil
import threading
import weakref

import lmdb

from . import files, lmdb_layout
from .errors import CaffeError
from .lmdb_layout import key_text

def is_lmdb(path) -> bool:
    return os.path.isfile(os.path.join(path, "data.mdb"))


def is_leveldb(path) -> bool:
    return os.path.isfile(os.path.join(path, "CURRENT")) and not is_lmdb(path)


def check_lmdb(path):
    """Raise a one-line CaffeError unless `path` is an LMDB directory."""
    path = os.fspath(path)
    if is_lmdb(path):
        return
    if is_leveldb(path):
        raise CaffeError(f"'{path}' is a LevelDB database, not an LMDB (nvcaffe_py.datasets opens either)")
    if not os.path.exists(path):
        raise CaffeError(f"LMDB '{path}' does not exist")
    raise CaffeError(f"'{path}' is not an LMDB directory (it has no data.mdb)")


# LMDB allows one open environment per file per process, so readers share it: each takes its
# own read transaction, and the environment closes when the last reader lets go of it.
_readers = weakref.WeakValueDictionary()
_readers_lock = threading.Lock()


def open_reader(path) -> "lmdb.Environment":
    """The process's read-only environment for `path` (shared; do not close it)."""
    check_lmdb(path)
    key = os.path.realpath(path)
    with _readers_lock:
        env = _readers.get(key)
        if env is None:
            lmdb_layout.check(path)
            try:
                env = lmdb.open(key, readonly=True, lock=False, readahead=False, subdir=True)
            except lmdb.Error as exc:
                raise CaffeError(f"cannot open LMDB '{path}': {exc}") from None
            _readers[key] = env
        return env


class CyclingCursor:
    """Records in key order, starting again from the first after the last (Caffe's DataReader)."""

    def __init__(self, path):
        self.path = os.fspath(path)
        self._env = open_reader(self.path)
        self._last_key = None  # of the last record read, for messages
        self._txn = self._reading(lambda: self._env.begin(buffers=False))
        self._cursor = self._txn.cursor()
        if not self._reading(self._cursor.first):
            raise CaffeError(f"LMDB '{self.path}' holds no records")
        self.wrapped = 0  # how many times the end was reached

    def _reading(self, operation):
        """operation(), with LMDB's errors as one line naming the database and the record."""
        try:
            return operation()
        except lmdb.Error as exc:
            where = f"the record after '{key_text(self._last_key)}'" if self._last_key is not None \
                else "its first record"
            raise CaffeError(f"LMDB '{self.path}': cannot read {where}: {exc}") from None

    def peek(self):
        """(key, value) of the current record, without advancing."""
        return self._reading(self._cursor.item)

    def next(self):
        item = self.peek()
        self._last_key = item[0]
        if not self._reading(self._cursor.next):
            self._reading(self._cursor.first)
            self.wrapped += 1
        return item

    def records(self):
        """Every record once, in key order, from the first."""
        for _ in range(self.entries()):
            yield self.next()

    def entries(self) -> int:
        return self._txn.stat()["entries"]


class DatabaseWriter:
    """`with Writer(path) as db: db.put(key, value)`; the database appears under `path` only when
    the block ends without an exception. `replace=True` replaces an existing one. A subclass says
    how its store opens, takes a batch of records, and closes (LMDBWriter here, LevelDBWriter in
    nvcaffe_py.leveldb)."""

    def __init__(self, path, replace=False, commit_every=1000):
        self.path = os.path.abspath(os.fspath(path))
        if os.path.exists(self.path) and not replace:
            raise CaffeError(f"'{path}' already exists; remove it or choose another output name")
        parent = os.path.dirname(self.path)
        os.makedirs(parent, exist_ok=True)
        files.remove_stale_temporaries(parent, os.path.basename(self.path))
        self._tmp = files.temporary_path(self.path)
        os.mkdir(self._tmp)  # modes: what the umask gives (0755 and 0644 under 022)
        self._open_store(self._tmp)
        self._pending = []
        self._commit_every = commit_every
        self.count = 0

    def _open_store(self, directory):
        raise NotImplementedError

    def _write_batch(self, records):
        raise NotImplementedError

    def _close_store(self):
        raise NotImplementedError

    def put(self, key, value: bytes):
        self._pending.append((key.encode() if isinstance(key, str) else key, value))
        self.count += 1
        if len(self._pending) >= self._commit_every:
            self._commit()

    def _commit(self):
        self._write_batch(self._pending)
        self._pending.clear()

    def finish(self):
        self._commit()
        self._close_store()
        old = None
        if os.path.exists(self.path):  # killed before the next rename, the next writer puts it back
            old = files.temporary_path(self.path, "old")
            os.rename(self.path, old)
        os.rename(self._tmp, self.path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)

    def abort(self):
        self._close_store()
        shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.finish()
        else:
            self.abort()
        return False


class LMDBWriter(DatabaseWriter):
    map_size = 1 << 28  # virtual memory: doubled whenever a batch does not fit

    def _open_store(self, directory):
        self._env = lmdb.open(directory, map_size=self.map_size, subdir=True, mode=0o664)  # Caffe's mode, less umask

    def _write_batch(self, records):
        while True:
            try:
                with self._env.begin(write=True) as txn:
                    for key, value in records:
                        txn.put(key, value)
                return
            except lmdb.MapFullError:  # grow the map and redo the batch
                self._env.set_mapsize(self._env.info()["map_size"] * 2)

    def _close_store(self):
        self._env.close()
