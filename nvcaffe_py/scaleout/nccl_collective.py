"""NCCLCollective: the Collective over NCCL, on device buffers, for ranks that train on GPUs (one
GPU each): `nvcaffe train -gpu 0,1` (launcher.py) or `mpiexec` with -gpu, where MPI only carries
NCCL's id.

As Caffe's NCCL class: the reductions run on a stream of their own, non-blocking with respect to
the default stream the layers' kernels use; before a bucket starts, the default stream is waited
for (its gradients are done), and its allreduce (ncclAvg, in place on each Blob's device diff, the
bucket's Blobs grouped into one NCCL launch) then overlaps the backward kernels of the layers
below. wait() waits for the stream, polling so that the deadline of collective.py holds and an
error on another rank (ncclCommGetAsyncError) ends the wait; then the communicator is aborted.
Broadcasts and the messages at start pass through small device buffers.
"""
import ctypes
import time

import numpy as np

from ..backends.cuda import context, memory
from .collective import Collective, timeout_error, timeout_seconds
from .nccl_library import AVERAGE, DATA_TYPES, UNIQUE_ID_BYTES, UniqueId, check, library, version

_MESSAGE_BYTES = 4096  # the checks at start: "ok:<hash>" or "error:<one line>", cut to fit
_POLL_S = 0.0005


class _PendingAllreduce:
    def __init__(self, collective):
        self._collective = collective

    def wait(self):
        self._collective._synchronize("a gradient allreduce")


class NCCLCollective(Collective):
    engine = "NCCL"

    def __init__(self, rank, size, unique_id: bytes, device_id):
        from pycuda import driver

        self.rank, self.size = rank, size
        self._timeout = timeout_seconds()
        context.activate(device_id)
        self._stream = driver.Stream(flags=1)  # CU_STREAM_NON_BLOCKING: no implicit sync with the default stream
        uid = UniqueId.from_buffer_copy(unique_id[:UNIQUE_ID_BYTES])
        self._comm = ctypes.c_void_p()
        check(library().ncclCommInitRank(ctypes.byref(self._comm), size, uid, rank), "ncclCommInitRank")
        self.engine = f"NCCL {version()}"

    def _synchronize(self, what):
        started = time.monotonic()
        while not self._stream.is_done():
            state = ctypes.c_int()
            check(library().ncclCommGetAsyncError(self._comm, ctypes.byref(state)), "ncclCommGetAsyncError")
            check(state.value, what)
            if time.monotonic() - started > self._timeout:
                raise timeout_error(what, self._timeout)
            time.sleep(_POLL_S)

    def _broadcast_device(self, device_array, root):
        count, kind = device_array.size, DATA_TYPES[device_array.dtype.name]
        pointer = memory.pointer(device_array)
        check(library().ncclBroadcast(pointer, pointer, count, kind, root, self._comm, self._stream.handle),
              "ncclBroadcast")
        self._synchronize("a broadcast")

    def broadcast(self, array, root=0):
        device_array = memory.to_device(np.ascontiguousarray(array).ravel())
        self._broadcast_device(device_array, root)
        array[...] = memory.to_host(device_array).reshape(array.shape)

    def start_allreduce_mean(self, blobs):
        context.synchronize()  # the layers' kernels that wrote these gradients are done
        lib = library()
        check(lib.ncclGroupStart(), "ncclGroupStart")
        for blob in blobs:
            diff = blob.gpu_diff
            pointer = memory.pointer(diff)
            check(lib.ncclAllReduce(pointer, pointer, diff.size, DATA_TYPES[diff.dtype.name], AVERAGE,
                                    self._comm, self._stream.handle), "ncclAllReduce")
        check(lib.ncclGroupEnd(), "ncclGroupEnd")
        return _PendingAllreduce(self)

    def allgather(self, message: bytes) -> list:
        body = message[:_MESSAGE_BYTES - 4]
        padded = np.zeros(_MESSAGE_BYTES, np.uint8)
        padded[:4] = np.frombuffer(np.uint32(len(body)).tobytes(), np.uint8)
        padded[4:4 + len(body)] = np.frombuffer(body, np.uint8)
        send = memory.to_device(padded)
        gathered = memory.empty(_MESSAGE_BYTES * self.size, np.uint8)
        check(library().ncclAllGather(memory.pointer(send), memory.pointer(gathered), _MESSAGE_BYTES,
                                      DATA_TYPES["uint8"], self._comm, self._stream.handle), "ncclAllGather")
        self._synchronize("the checks at start")
        rows = memory.to_host(gathered).reshape(self.size, _MESSAGE_BYTES)
        return [row[4:4 + int(row[:4].view(np.uint32)[0])].tobytes() for row in rows]

    def abort(self):
        library().ncclCommAbort(self._comm)
        raise SystemExit(1)
