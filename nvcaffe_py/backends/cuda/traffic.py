"""Counts of what makes the host wait for the device or move data across the bus: synchronous
uploads and downloads, asynchronous uploads, and synchronisations (a context, stream or event
waited for). `nvcaffe time` reports them per iteration; tests assert that a training iteration
makes none of the synchronous kinds.

    with traffic.counting() as counts:
        ...
    counts["dtoh"], counts["sync"]

Only the thread that opened `counting()` is counted: the prefetch threads' own waits (for a
page-locked buffer's upload to finish before refilling it) do not hold the iteration up.
"""
import collections
import contextlib
import threading

KINDS = ("htod", "dtoh", "htod_async", "sync")
_counting = threading.local()  # .counts: the Counter of the innermost counting() of this thread


def count(kind: str, nbytes: int = 0):
    counts = getattr(_counting, "counts", None)
    if counts is not None:
        counts[kind] += 1
        counts[kind + "_bytes"] += int(nbytes)


@contextlib.contextmanager
def counting():
    saved = getattr(_counting, "counts", None)
    counts = collections.Counter()
    _counting.counts = counts
    try:
        yield counts
    finally:
        _counting.counts = saved
        if saved is not None:
            saved.update(counts)
