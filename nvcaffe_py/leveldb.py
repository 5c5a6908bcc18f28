"""LevelDB datasets (Caffe's db::LevelDB, its default backend) through plyvel, a well-kept binding
to the LevelDB library: the optional extra `pip install 'nvcaffe_py[leveldb]'`. Without it, a
LevelDB is refused with that advice (or how to get an LMDB instead).

LevelDB locks its directory, so a process opens each database once and every reader (the train
and test nets' data layers) shares that handle, each with its own iterator. Writers build into a
temporary directory and rename it into place, as LMDB writers do (db.DatabaseWriter).
"""
import os
import threading
import weakref

from .db import DatabaseWriter
from .errors import CaffeError

INSTALL_ADVICE = ("pip install 'nvcaffe_py[leveldb]' to read and write LevelDB, or recreate the dataset as an "
                  "LMDB (e.g. `nvcaffe convert_imageset ROOT/ LIST OUT_LMDB`) and set `backend: LMDB`")


def _plyvel():
    try:
        import plyvel
    except ImportError:
        raise CaffeError(f"LevelDB needs the plyvel binding: {INSTALL_ADVICE}") from None
    return plyvel


class _Handle:
    """An open database, closed when its last user lets go of it."""

    def __init__(self, db):
        self.db = db

    def __del__(self):
        self.db.close()


_handles = weakref.WeakValueDictionary()
_handles_lock = threading.Lock()


def open_db(path) -> _Handle:
    """The process's handle on the LevelDB at `path` (shared: keep it while reading, do not close it)."""
    key = os.path.realpath(path)
    with _handles_lock:
        handle = _handles.get(key)
        if handle is None:
            plyvel = _plyvel()
            try:
                handle = _Handle(plyvel.DB(key, create_if_missing=False))
            except plyvel.Error as exc:
                raise CaffeError(f"cannot open LevelDB '{path}': {exc}") from None
            _handles[key] = handle
        return handle


class CyclingCursor:
    """Records in key order, starting again from the first after the last (db.CyclingCursor's
    interface, on a LevelDB)."""

    def __init__(self, path):
        self.path = os.fspath(path)
        self._handle = open_db(self.path)
        self._iterator = self._handle.db.iterator()
        self._current = next(self._iterator, None)
        if self._current is None:
            raise CaffeError(f"LevelDB '{self.path}' holds no records")
        self.wrapped = 0

    def peek(self):
        return self._current

    def next(self):
        item = self._current
        self._current = next(self._iterator, None)
        if self._current is None:
            self._iterator = self._handle.db.iterator()
            self._current = next(self._iterator)
            self.wrapped += 1
        return item


def records(path):
    """(number of records, iterator of (key, value) in key order)."""
    handle = open_db(path)

    def items():
        yield from handle.db.iterator()  # the generator keeps the handle open

    return sum(1 for _ in handle.db.iterator(include_value=False)), items()


class LevelDBWriter(DatabaseWriter):
    def _open_store(self, directory):
        self._db = _plyvel().DB(directory, create_if_missing=True, error_if_exists=False)

    def _write_batch(self, records):
        with self._db.write_batch() as batch:
            for key, value in records:
                batch.put(key, value)

    def _close_store(self):
        self._db.close()
