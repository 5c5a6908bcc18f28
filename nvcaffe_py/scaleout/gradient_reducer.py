"""GradientReducer: averages the parameter gradients over the ranks, as Caffe's NCCL class does.

A Solver callback (on_start, on_gradients_ready) and, with the solver's `layer_wise_reduce`
(Caffe's field, default true), a Net after_backward callback: a parameter's gradient is final once
the backward of the lowest layer holding it is done (a parameter shared by several layers waits
for all of them), so its bucket's allreduce starts right there and overlaps the backward of the
layers below. Small parameters travel together in buckets of at least `bucket_bytes` (a bias
alone would cost a whole round trip): NVCAFFE_BUCKET_KB, 256 KiB by default, which splits even
CIFAR10-quick's 0.6 MB of gradients for overlap. Every bucket costs 2(N-1) ring steps, so at
hundreds of ranks far larger buckets pay (benchmarks/results/*-allreduce-model.md: 25 MB). With iter_size > 1 only the last pass's backward reduces:
the gradients summed over the passes are averaged once. on_gradients_ready waits for every bucket;
where no after_backward started them (layer_wise_reduce: false), it reduces them all there. The
solver's update then runs on the mean.
"""
import os
import time

from ..errors import CaffeError

DEFAULT_BUCKET_KB = 256


def bucket_bytes_setting() -> int:
    value = os.environ.get("NVCAFFE_BUCKET_KB", str(DEFAULT_BUCKET_KB))
    try:
        kilobytes = float(value)
    except ValueError:
        kilobytes = -1
    if kilobytes < 0:
        raise CaffeError(f"NVCAFFE_BUCKET_KB must be a number of kilobytes (0: one bucket per layer), got {value!r}")
    return int(kilobytes * 1024)


def bucket_plan(net, bucket_bytes):
    """{layer index: [buckets (lists of Blobs) whose gradients are final after that layer's backward]}."""
    params = net.learnable_params
    ready_at = {}
    for index, layer in enumerate(net.layers):
        for blob in layer.blobs:
            for k, spec in enumerate(params):
                if k not in ready_at and (blob is spec.blob or blob.shares_data_with(spec.blob)):
                    ready_at[k] = index
    plan, bucket, size = {}, [], 0
    lowest = min(ready_at.values(), default=0)  # where the last bucket closes, however small
    for index in reversed(range(lowest, len(net.layers))):
        for k in reversed(range(len(params))):
            if ready_at.get(k) == index:
                bucket.append(params[k].blob)
                size += params[k].blob.count() * params[k].blob.dtype.itemsize
        if bucket and (size >= bucket_bytes or index == lowest):
            plan.setdefault(index, []).append(bucket)
            bucket, size = [], 0
    return plan


class GradientReducer:
    def __init__(self, net, collective, iter_size=1):
        self._collective = collective
        self._iter_size = iter_size
        self._plan = bucket_plan(net, bucket_bytes_setting())
        self._pending = []
        self._passes = 0
        self.wait_seconds = 0.0  # spent in on_gradients_ready, waiting for the reduction to finish

    def on_start(self):
        self._passes = 0

    def __call__(self, layer_index):
        """after_backward: start the buckets this layer completes (on the last of iter_size passes)."""
        if self._passes == self._iter_size - 1:
            for bucket in self._plan.get(layer_index, ()):
                self._pending.append(self._collective.start_allreduce_mean(bucket))
        if layer_index == 0:
            self._passes += 1

    def on_gradients_ready(self):
        started = time.perf_counter()
        if not self._pending:
            for index in sorted(self._plan, reverse=True):
                for bucket in self._plan[index]:
                    self._pending.append(self._collective.start_allreduce_mean(bucket))
        pending, self._pending = self._pending, []
        for reduction in pending:
            reduction.wait()
        self.wait_seconds += time.perf_counter() - started
