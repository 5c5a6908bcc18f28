"""The prefetch thread: batches in order, its errors raised in the consumer, its notes logged with
the batch that reached them."""
import logging
import time

import pytest

from nvcaffe_py import prefetch
from nvcaffe_py.errors import CaffeError
from nvcaffe_py.prefetch import Prefetcher

log = logging.getLogger("test_prefetch")


def test_batches_come_in_order_and_a_failure_is_raised_by_the_consumer():
    counter = iter(range(3))

    def produce():
        value = next(counter, None)
        if value is None:
            raise CaffeError("out of records")
        return value

    fetcher = Prefetcher(produce, depth=2)
    fetcher.start()
    assert [fetcher.next() for _ in range(3)] == [0, 1, 2]
    with pytest.raises(CaffeError, match="out of records"):
        fetcher.next()
    with pytest.raises(CaffeError, match="out of records"):
        fetcher.next()  # and every later call
    fetcher.close()


def test_a_note_is_logged_when_its_batch_is_taken_not_when_the_thread_reaches_it(caplog):
    produced = []

    def produce():
        produced.append(len(produced))
        if produced[-1] == 2:
            prefetch.note(log, "batch 2 wrapped around")
        return produced[-1]

    caplog.set_level(logging.INFO, logger="test_prefetch")
    fetcher = Prefetcher(produce, depth=4)
    fetcher.start()
    assert fetcher.next() == 0
    deadline = time.monotonic() + 10
    while len(produced) < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(produced) >= 4  # the thread has produced batch 2 ...
    assert "batch 2 wrapped around" not in caplog.text  # ... but nobody has used it yet
    assert fetcher.next() == 1
    assert "batch 2 wrapped around" not in caplog.text
    assert fetcher.next() == 2
    assert caplog.text.count("batch 2 wrapped around") == 1
    fetcher.close()


def test_a_note_outside_a_prefetch_thread_is_logged_at_once(caplog):
    caplog.set_level(logging.INFO, logger="test_prefetch")
    prefetch.note(log, "said now")
    assert "said now" in caplog.text
