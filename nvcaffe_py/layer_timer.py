"""LayerTimer: how long each layer of a Net takes in forward and in backward, as Caffe's `time`
measures it: by callbacks around each layer of the Net's own passes. The queued GPU work is waited
for before and after each layer (a no-op on the CPU), so that each layer is charged its own work.

    with LayerTimer(net) as timer:
        for _ in range(runs):
            net.forward_backward()
    forward_ms, backward_ms = timer.milliseconds(runs)
"""
import time

from . import backends


class LayerTimer:
    def __init__(self, net):
        self._net = net
        self.forward_seconds = [0.0] * len(net.layers)
        self.backward_seconds = [0.0] * len(net.layers)
        self._started = 0.0
        self._callbacks = []

    def __enter__(self):
        net = self._net
        self._callbacks = [net.before_forward(self._start), net.after_forward(self._stop(self.forward_seconds)),
                           net.before_backward(self._start), net.after_backward(self._stop(self.backward_seconds))]
        return self

    def __exit__(self, *exc):
        for callback in self._callbacks:
            callback.remove()
        self._callbacks = []

    def _start(self, layer_index):
        backends.synchronize()
        self._started = time.perf_counter()

    def _stop(self, totals):
        def record(layer_index):
            backends.synchronize()
            totals[layer_index] += time.perf_counter() - self._started
        return record

    def milliseconds(self, runs):
        """(forward, backward): per layer, the milliseconds of one pass, averaged over `runs`."""
        runs = max(runs, 1)
        return ([seconds * 1e3 / runs for seconds in self.forward_seconds],
                [seconds * 1e3 / runs for seconds in self.backward_seconds])
