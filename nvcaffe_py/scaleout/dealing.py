"""How a data layer shares its items among the ranks of a data-parallel run (Caffe's
DataLayer::Skip): the items are dealt round-robin by their running offset, so rank r of N keeps
the items whose offset % N == r, the offset counting on across the end of the data. One
iteration's N batches of b are then the N*b items that one process with iter_size N reads.

Only TRAIN-phase layers deal; TEST-phase nets run on rank 0 alone and read everything. Every rank
must see the items in the same order, so shuffling layers draw from a stream seeded alike on every
rank (data_parallel.py agrees on the seed before the nets are built).
"""
from .. import mode
from ..errors import CaffeError
from ..proto import caffe_pb2


def applies(phase) -> bool:
    return phase == caffe_pb2.TRAIN and mode.solver_count() > 1


def check_enough(items, what):
    """Every rank needs an item of its own."""
    ranks = mode.solver_count()
    if items < ranks:
        raise CaffeError(f"{what} holds {items} item(s), fewer than the {ranks} ranks training together; "
                         f"each rank needs at least one (use fewer ranks or more data)")


class DealtSource:
    """A record source (peek, next, decode, description) that yields only this rank's records."""

    def __init__(self, source, items):
        check_enough(items, source.description)
        self._source = source
        self._rank, self._ranks = mode.solver_rank(), mode.solver_count()
        self._offset = 0
        self.description = source.description
        self.decode = source.decode

    def _pass_others(self):
        while self._offset % self._ranks != self._rank:
            self._source.next()
            self._offset += 1

    def peek(self):
        self._pass_others()
        return self._source.peek()

    def next(self):
        self._pass_others()
        self._offset += 1
        return self._source.next()
