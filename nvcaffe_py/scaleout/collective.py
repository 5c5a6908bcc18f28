"""Collective: what data-parallel training asks of a reduction engine, and nothing more.

    rank, size                           this process's place among the ranks
    broadcast(array, root=0)             rank root's host array into everyone's, in place
    start_allreduce_mean(blobs)          begin averaging the gradients (diffs) of a bucket of Blobs
                                         over the ranks; returns a Pending whose wait() finishes it
    allgather(message: bytes)            every rank's short message, in rank order (the checks at start)
    abort()                              end every rank now (after an error on this one)

Every wait has a deadline (NVCAFFE_COLLECTIVE_TIMEOUT_S, default 1800 s): a rank that died or hangs
makes the others stop with CollectiveTimeout instead of waiting forever. Waits include rank 0's
tests and snapshots, which the others sit out, so the deadline must exceed the longest of those.
MPI launchers and `nvcaffe train -gpu` end the other ranks as soon as one dies; the deadline is
what remains where nothing does.
"""
import os

from ..errors import CaffeError

DEFAULT_TIMEOUT_S = 1800.0


class CollectiveTimeout(CaffeError):
    """The other ranks did not take part in a collective operation in time."""


def timeout_seconds() -> float:
    value = os.environ.get("NVCAFFE_COLLECTIVE_TIMEOUT_S")
    if not value:
        return DEFAULT_TIMEOUT_S
    try:
        seconds = float(value)
    except ValueError:
        seconds = 0.0
    if seconds <= 0:
        raise CaffeError(f"NVCAFFE_COLLECTIVE_TIMEOUT_S must be a positive number of seconds, got {value!r}")
    return seconds


def timeout_error(what, seconds) -> CollectiveTimeout:
    return CollectiveTimeout(f"the other ranks did not answer within {seconds:g} s during {what}; "
                             f"a rank has died or hangs (NVCAFFE_COLLECTIVE_TIMEOUT_S sets the limit)")


class Collective:
    """The interface (see the module's docstring); mpi_collective and nccl_collective implement it."""

    rank = 0
    size = 1
    engine = ""  # "MPI" or "NCCL", for the log

    def broadcast(self, array, root=0):
        raise NotImplementedError

    def start_allreduce_mean(self, blobs):
        raise NotImplementedError

    def allgather(self, message: bytes) -> list:
        raise NotImplementedError

    def abort(self):
        raise NotImplementedError
