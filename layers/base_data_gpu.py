"""The GPU half of the prefetching data layers (Data, ImageData, WindowData): a double-buffered
device copy of each top, filled by the upload stream while the net computes.

The prefetch thread builds each batch in page-locked host arrays (PinnedArrays). A forward makes
the batch uploaded during the previous iteration the tops' device memory (no copy: the buffers
swap), makes the compute stream wait for that upload's event, and queues the next batch's upload
into the other buffer on the upload stream, after an event that follows the work already queued
on the compute stream (the previous iteration's, the last to read that buffer). Nothing in it
waits on the host: the iteration's only waits are the events between the two streams.
"""
from typing import NamedTuple

from nvcaffe_py.backends.cuda import memory, streams
from nvcaffe_py.backends.cuda.gpu_half import GPUHalf


class _Upload(NamedTuple):
    arrays: tuple  # the batch's host arrays, one per top
    log_notes: object  # logs the batch's prefetch notes (when it is used)
    devices: list  # the device buffer each array goes to
    uploaded: object  # event after the uploads


class PrefetchedBatchGPU(GPUHalf):
    def __init__(self, *, take, pinned):
        self._take = take  # () -> (host arrays, log_notes): the next batch from the prefetch thread
        self._pinned = pinned  # PinnedArrays the host arrays go back to after their upload
        self._buffers = ([], [])  # the two device buffers of each top
        self._next_buffer = 0
        self._ahead = None  # the _Upload of the batch after the current one

    def forward(self, bottom, top):
        batch = self._ahead or self._upload(top, released=None)
        compute = streams.compute()
        compute.wait_for_event(batch.uploaded)
        batch.log_notes()
        for blob, host, device in zip(top, batch.arrays, batch.devices):
            blob.reshape(host.shape)
            blob.set_gpu_data(device)
        self._pinned.give_back(batch.arrays, batch.uploaded)
        self._ahead = None
        self._ahead = self._upload(top, released=streams.record(compute))

    def take_ahead(self):
        """The batch taken for the next forward, as (host arrays, log_notes), or None: when the
        layer runs its CPU code after a GPU forward, it starts there (no batch is skipped)."""
        batch, self._ahead = self._ahead, None
        return None if batch is None else (batch.arrays, batch.log_notes)

    def _upload(self, top, released):
        arrays, log_notes = self._take()
        buffers = self._buffers[self._next_buffer]
        self._next_buffer ^= 1
        upload = streams.upload()
        if released is not None:  # the compute stream's last reads of this buffer come first
            upload.wait_for_event(released)
        for k, (host, blob) in enumerate(zip(arrays, top)):
            size = max(host.size, blob.capacity)
            if len(buffers) <= k:
                buffers.append(None)
            if buffers[k] is None or buffers[k].size < size:
                buffers[k] = memory.empty(size, blob.dtype, stream=upload)
                memory.use_on(buffers[k], streams.compute())
            memory.upload_async(buffers[k], host.reshape(-1), upload)
        return _Upload(tuple(arrays), log_notes, list(buffers[:len(arrays)]), streams.record(upload))
