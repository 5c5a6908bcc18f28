"""The record databases that data layers and tools read and write: LMDB (nvcaffe_py.db) or LevelDB
(nvcaffe_py.leveldb, through the optional plyvel). Reading goes by what is on disk, as Caffe's
`backend` default (LEVELDB) would otherwise mislead; writing goes by Caffe's `-backend` names."""
from . import db, leveldb
from .errors import CaffeError

WRITERS = {"lmdb": db.LMDBWriter, "leveldb": leveldb.LevelDBWriter}


def writer_class(backend: str):
    """The writer of Caffe's -backend `backend` (lmdb or leveldb)."""
    cls = WRITERS.get(backend.lower())
    if cls is None:
        raise CaffeError(f"-backend {backend} is not a database type; give lmdb (the default) or leveldb")
    return cls


def kind(path) -> str:
    return "LevelDB" if db.is_leveldb(path) else "LMDB"


def open_cursor(path):
    """A cursor cycling over the records of the LMDB or LevelDB at `path` (peek, next, wrapped)."""
    return leveldb.CyclingCursor(path) if db.is_leveldb(path) else db.CyclingCursor(path)


def records(path):
    """(number of records, iterator of (key, value) in key order) of the LMDB or LevelDB at `path`."""
    if db.is_leveldb(path):
        return leveldb.records(path)
    cursor = db.CyclingCursor(path)  # its reads turn LMDB's errors into ones naming the record
    return cursor.entries(), cursor.records()
