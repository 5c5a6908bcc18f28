"""Prefetcher: a background thread that keeps the next few batches ready, so that the solver does
not wait on disk reads or image decoding (Caffe's BasePrefetchingDataLayer and its queues).

`produce()` runs in the thread and returns one batch; `next()` hands batches to the caller in
order (`take()` too, with the batch's notes to log when the caller uses it: a GPU data layer
takes the batch after the current one to upload it ahead). An exception in `produce()` stops the
thread and is raised by the `next()` call that would have received that batch (and by every
later call), so a bad record is an error in the main thread, never a hang. `close()` stops the
thread; a thread blocked on a full queue notices within a fraction of a second.

`note(logger, message)` from inside `produce()` logs the message when the consumer uses the batch
being produced (takes it with `next()`, or calls the function `take()` gave with it), not when the
thread reaches it: the thread runs batches ahead, and a log read by people and parsers should
follow the iterations that use the data (never "Restarting data prefetching from start." after
"Optimization Done.").
"""
import queue
import threading
import time

from .errors import CaffeError

_POLL_SECONDS = 0.1


_producing = threading.local()  # .notes: what the batch this thread is producing will log


def note(logger, message):
    """Log `message` with the batch being produced (immediately outside a prefetch thread)."""
    notes = getattr(_producing, "notes", None)
    if notes is None:
        logger.info(message)
    else:
        notes.append((logger, message))


class _Failure:
    def __init__(self, exc):
        self.exc = exc


class Prefetcher:
    def __init__(self, produce, depth=4, name="prefetch"):
        self.name = name
        self.wait_seconds = 0.0  # time next() spent waiting for the thread: input-bound time
        self._produce = produce
        self._queue = queue.Queue(maxsize=max(1, int(depth)))
        self._stop = threading.Event()
        self._thread = None
        self._failure = None

    def start(self):
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            _producing.notes = []
            try:
                item = self._produce()
            except BaseException as exc:  # handed to the consumer, who decides what it means
                item = _Failure(exc)
            notes = _producing.notes
            while not self._stop.is_set():
                try:
                    self._queue.put((item, notes), timeout=_POLL_SECONDS)
                    break
                except queue.Full:
                    continue
            if isinstance(item, _Failure):
                return

    def next(self):
        item, log_notes = self.take()
        log_notes()
        return item

    def take(self):
        """(the next batch, a function that logs its notes): call it when the batch is used."""
        if self._failure is not None:
            raise self._failure
        if self._stop.is_set():
            raise CaffeError(f"{self.name}: the prefetcher is closed")
        self.start()
        started = time.perf_counter()
        while True:
            try:
                item, notes = self._queue.get(timeout=_POLL_SECONDS)
                break
            except queue.Empty:
                if not self._thread.is_alive() and self._queue.empty():
                    raise CaffeError(f"{self.name}: the prefetch thread stopped without a batch") from None
        self.wait_seconds += time.perf_counter() - started

        def log_notes():
            for logger, message in notes:
                logger.info(message)

        if isinstance(item, _Failure):
            log_notes()
            self._failure = item.exc
            raise item.exc
        return item, log_notes

    def close(self):
        self._stop.set()
        while True:  # unblock a producer waiting on a full queue
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5.0)
