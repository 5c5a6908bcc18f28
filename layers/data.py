"""Data: batches of Caffe Datum records from an LMDB or a LevelDB (`data_param { source batch_size
backend rand_skip prefetch }`), transformed by `transform_param`, prefetched by a background thread.

Records are read in key order and cycle at the end; `rand_skip` starts at a random record among
the first `rand_skip`; a second top receives the labels. Raw (`data` bytes), `float_data` and
encoded (JPEG/PNG, decoded by OpenCV) datums are accepted. The database is read as what it is on
disk (nvcaffe_py.datasets); LevelDB needs the optional plyvel (nvcaffe_py.leveldb says how).
"""
import logging

from nvcaffe_py import datasets, db, prefetch, rng
from nvcaffe_py.conformance import Exempt
from nvcaffe_py.datum import parse_datum
from nvcaffe_py.errors import CaffeError
from nvcaffe_py.registry import register_layer

from .base_data import PrefetchingDataLayer

log = logging.getLogger(__name__)


class DatabaseSource:
    def __init__(self, path, rand_skip=0):
        self.path = path
        self.description = f"{datasets.kind(path)} '{path}'"
        self._cursor = datasets.open_cursor(path)
        if rand_skip:
            skip = int(rng.generator().integers(rand_skip))
            log.info("Skipping first %d data points.", skip)
            for _ in range(skip):
                self._cursor.next()
        self._wrapped = self._cursor.wrapped

    def size(self) -> int:
        return datasets.records(self.path)[0]

    def peek(self):
        key, value = self._cursor.peek()
        return db.key_text(key), value

    def next(self):
        key, value = self._cursor.next()
        if self._cursor.wrapped != self._wrapped:
            self._wrapped = self._cursor.wrapped
            prefetch.note(log, "Restarting data prefetching from start.")
        return db.key_text(key), value

    @staticmethod
    def decode(value, transformer):
        datum = parse_datum(value)
        return transformer.datum_image(datum), datum.label


@register_layer("Data")
class DataLayer(PrefetchingDataLayer):
    cases = Exempt("reads an LMDB or LevelDB: tests/test_data_layer.py")

    def batch_size(self) -> int:
        return self.layer_param.data_param.batch_size

    def prefetch_depth(self) -> int:
        return self.layer_param.data_param.prefetch

    def open_source(self):
        p = self.layer_param.data_param
        if not p.source:
            raise CaffeError("data_param.source is not set")
        return DatabaseSource(p.source, p.rand_skip)
