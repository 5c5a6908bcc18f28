"""Timer: pycaffe's `caffe.Timer` (Caffe's Timer): start(), stop(), and `ms`, the milliseconds
between them. In GPU mode the queued GPU work is waited for at both ends, as Caffe's CUDA events
measure it, so that the time includes the kernels started in between.

    timer = caffe.Timer()
    timer.start(); net.forward(); timer.stop()
    print(timer.ms)
"""
import time

from . import backends, log


class Timer:
    def __init__(self):
        self._running = False
        self._has_run = False
        self._started = 0.0
        self._elapsed = 0.0

    def start(self):
        if not self._running:
            backends.synchronize()
            self._started = time.perf_counter()
            self._running, self._has_run = True, True

    def stop(self):
        if self._running:
            backends.synchronize()
            self._elapsed = time.perf_counter() - self._started
            self._running = False

    @property
    def ms(self) -> float:
        """Milliseconds from the last start() to its stop() (stopping a running timer first)."""
        if not self._has_run:
            log.warning("Timer has never been run before reading time.")
            return 0.0
        self.stop()
        return self._elapsed * 1e3
