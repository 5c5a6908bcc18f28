"""PendingLosses: the losses of training iterations, kept where they were computed until someone
reads them, so that a GPU iteration does not wait for the device to learn a number nobody looks at.

During a forward pass the Net hands each loss top, with its loss weight, to `add_top` as the layer
that wrote it finishes, then calls `end_pass`. A top whose values are on the host is summed at once
(`loss_term`: weight x the top's float64 sum, what Net.run_forward adds up); a top whose values are
on the device is copied, on the compute stream, into a device buffer. `read()` downloads those
buffers once and sums the same float32 values in the same order, so every loss is the number the
host would have computed in its iteration. The solver reads on display iterations (and before a
snapshot, and when `smoothed_loss` is asked for).

    losses = PendingLosses()
    net.forward_backward(losses=losses)      # iter_size times
    losses.end_iteration(iteration, iter_size)
    for iteration, loss in losses.read(): ...
"""
import numpy as np

from . import synced_array
from .backends.cuda import memory

_CHUNK = 1024  # values per device buffer; another is added when one is full (never a wait)


def loss_term(weight, values) -> float:
    """A loss top's share of the loss: its weight times the float64 sum of its values."""
    return weight * float(values.sum(dtype=np.float64))


class PendingLosses:
    def __init__(self):
        self._terms = []  # this pass's terms: a float, or (weight, device buffer, offset, count, shape)
        self._passes = []  # this iteration's passes
        self._iterations = []  # (iteration, iter_size, passes) not read yet
        self._chunks = []  # device buffers, filled in order
        self._used = 0  # values written into the chunks

    def add_top(self, top, weight):
        if top.data_storage.head != synced_array.AT_DEVICE:
            self._terms.append(loss_term(weight, top.data_readonly()))
            return
        values = top.gpu_data_readonly()
        buffer, offset = self._room(values.size, values.dtype)
        memory.copy(buffer, values, dst_offset=offset)
        self._terms.append((weight, buffer, offset, values.size, top.shape))

    def end_pass(self):
        self._passes.append(self._terms)
        self._terms = []

    def _room(self, count, dtype):
        """(device buffer, offset) for `count` values: the chunks in order, or a buffer of its own
        for a top larger than a chunk."""
        if count > _CHUNK or any(chunk.dtype != dtype for chunk in self._chunks):
            return memory.empty(count, dtype), 0
        index, offset = divmod(self._used, _CHUNK)
        if offset + count > _CHUNK:
            index, offset = index + 1, 0
        if index == len(self._chunks):
            self._chunks.append(memory.empty(_CHUNK, dtype))
        self._used = index * _CHUNK + offset + count
        return self._chunks[index], offset

    def end_iteration(self, iteration, iter_size):
        self._iterations.append((iteration, iter_size, self._passes))
        self._passes = []

    def on_host(self) -> bool:
        """Whether read() needs nothing from the device."""
        return all(isinstance(term, float) for _, _, passes in self._iterations for terms in passes
                   for term in terms)

    def read(self):
        """[(iteration, loss)] of the iterations ended since the last read, in order."""
        ends = {}  # device buffer -> (buffer, values used): each is downloaded once, as far as used
        for _, _, passes in self._iterations:
            for term in (t for terms in passes for t in terms if not isinstance(t, float)):
                _, buffer, offset, count, _ = term
                ends[id(buffer)] = (buffer, max(ends.get(id(buffer), (None, 0))[1], offset + count))
        hosts = {key: memory.to_host(memory.region(buffer, 0, end)) for key, (buffer, end) in ends.items()}

        def term_value(term):
            if isinstance(term, float):
                return term
            weight, buffer, offset, count, shape = term
            return loss_term(weight, hosts[id(buffer)][offset:offset + count].reshape(shape))

        out = []
        for iteration, iter_size, passes in self._iterations:
            losses = []
            for terms in passes:
                loss = 0.0
                for term in terms:
                    loss += term_value(term)
                losses.append(loss)
            out.append((iteration, sum(losses) / iter_size))
        self._iterations = []
        self._used = 0
        return out
