"""DataParallel: one rank's part in a data-parallel run, from joining to the end of training.

    training = DataParallel(collective, local_ranks)  # the rank state (mode.solver_rank & co.), threads, log
    solver = training.build(make_solver, resume)      # every rank builds; the checks; rank 0's state to all
    solver.solve()

`build` agrees on a random seed first (for a solver without one: every rank's data layers must
shuffle alike), builds the solver on every rank and restores `resume` on rank 0, then checks at one meeting point that every
rank built (an error on any rank is rank 0's one-line error; the others exit quietly) and that
every rank's solver and net hash alike. Rank 0's weights, solver history, iteration and lr step
are then broadcast, so a run resumes from any snapshot with any number of ranks. Each rank then
reseeds with seed + rank (as Caffe's workers), so that Dropout differs between ranks.

Two solver callbacks keep the ranks together: a GradientReducer (gradient_reducer.py; also on
after_backward with layer_wise_reduce) and the stop agreement, which at the start of every
iteration broadcasts whether rank 0 was asked to stop (it alone hears signals; see Solver).
"""
import hashlib
import logging
import os
import time

import numpy as np

from .. import backends, log, mode, rng
from ..backends.cpu import threads
from ..errors import CaffeError
from .gradient_reducer import GradientReducer

_FORWARD_ERROR_S = 0.5  # before MPI_Abort: time for the launcher to forward our error line

_active = []  # the DataParallel of this process, while it trains


class QuietExit(Exception):
    """This rank stops with status 1 and says nothing: rank 0 reports the error for every rank."""


def active():
    """The DataParallel of this process, or None outside a data-parallel run."""
    return _active[0] if _active else None


def fingerprint(solver) -> str:
    """What must be alike on every rank: the solver's parameters and the train net as built."""
    digest = hashlib.sha256()
    digest.update(solver.param.SerializeToString(deterministic=True))
    digest.update(solver.net.param.SerializeToString(deterministic=True))
    for p in solver.net.learnable_params:
        digest.update(repr(p.blob.shape).encode())
    return digest.hexdigest()


class _StopAgreement:
    """Solver callback: at the start of each iteration every rank takes rank 0's requested_early_exit."""

    def __init__(self, solver, collective):
        self._solver, self._collective = solver, collective

    def on_start(self):
        flag = np.array([self._solver.requested_early_exit], np.int8)
        self._collective.broadcast(flag)
        self._solver.requested_early_exit = bool(flag[0])

    def on_gradients_ready(self):
        pass


class DataParallel:
    def __init__(self, collective, local_ranks):
        self.collective = collective
        self.rank, self.size = collective.rank, collective.size
        mode.set_solver_count(self.size)
        mode.set_solver_rank(self.rank)
        mode.set_multiprocess(True)
        if "NVCAFFE_CPU_THREADS" not in os.environ:  # the ranks on one machine share its cores
            os.environ["NVCAFFE_CPU_THREADS"] = str(max(1, threads.thread_count() // local_ranks))
        threads.limit_blas_threads(threads.thread_count())  # BLAS too, also where our threads are off
        if self.rank != 0:  # as Caffe's LOG_IF(INFO, Caffe::root_solver())
            log.logger.setLevel(max(log.logger.level, logging.WARNING))
        self.reducer = None
        _active[:] = [self]
        log.info(f"Training with {self.size} ranks, gradients averaged by {collective.engine}")

    def build(self, make_solver, resume=None):
        """make_solver(seed) on every rank, `resume` restored on rank 0, the checks, rank 0's state
        broadcast; returns the solver, ready to solve(). `seed` is rank 0's pick, for a solver
        without random_seed: every rank's data layers must shuffle alike."""
        seed = np.array([rng.generator().integers(2 ** 31)], np.int64)
        self.collective.broadcast(seed)
        solver, error = None, None
        try:
            solver = make_solver(int(seed[0]))
            if resume and self.rank == 0:
                solver.restore(resume)
        except CaffeError as exc:
            error = exc
        self._check(solver, error)
        rng.set_random_seed(int(solver.param.random_seed) + self.rank)
        self._broadcast_state(solver)
        self.reducer = GradientReducer(solver.net, self.collective, solver.param.iter_size)
        solver.add_callback(_StopAgreement(solver, self.collective))
        solver.add_callback(self.reducer)
        if solver.param.layer_wise_reduce:
            solver.net.after_backward(self.reducer)
        return solver

    def _check(self, solver, error):
        message = f"error:{' '.join(str(error).split())}" if error else f"ok:{fingerprint(solver)}"
        replies = [reply.decode("utf-8", "replace") for reply in self.collective.allgather(message.encode())]
        failed = [(rank, reply[len("error:"):]) for rank, reply in enumerate(replies) if reply.startswith("error:")]
        if failed:
            rank, text = failed[0]
            if self.rank == 0:
                raise CaffeError(text if rank == 0 else f"rank {rank}: {text}")
            raise QuietExit()
        differing = [rank for rank, reply in enumerate(replies) if reply != replies[0]]
        if differing:
            if self.rank == 0:
                raise CaffeError(f"the ranks' solvers or nets differ: rank {differing[0]}'s hash "
                                 f"{replies[differing[0]][3:15]}... is not rank 0's {replies[0][3:15]}...; every "
                                 f"rank must read the same solver, net and -weights (a file differing between machines?)")
            raise QuietExit()

    def _broadcast_state(self, solver):
        """Rank 0's weights, history, iteration and lr step to every rank (Caffe's NCCL::Broadcast)."""
        for param in solver.net.learnable_params:
            self.collective.broadcast(param.blob.data)
        for history in solver.history:
            self.collective.broadcast(history.data)
        counters = np.array([solver.iter, solver.current_step], np.int64)
        self.collective.broadcast(counters)
        solver.iter, solver.current_step = int(counters[0]), int(counters[1])

    def abort(self):
        """End every rank now: this one failed (its error is already printed). MPI_Abort makes the
        launcher tear every rank down at once; its output forwarding may then drop the error line
        still in the pipe (seen once under heavy load), so the launcher is given a moment first."""
        time.sleep(_FORWARD_ERROR_S)
        self.collective.abort()


def join(world, gpu_ids=None):
    """This process's DataParallel in `world` (world.from_environment()): over MPI on the CPU, over
    NCCL with `gpu_ids` (rank r's GPU: NVCAFFE_GPU from the launcher, else its place on its machine);
    under mpiexec with GPUs, MPI only carries NCCL's id."""
    mpi = None
    if world.launched_by_mpi:
        from .mpi_collective import MPICollective
        try:
            mpi = MPICollective()
        except ImportError as exc:
            if world.rank != 0:
                raise QuietExit() from None
            raise CaffeError(f"started by an MPI launcher as one of {world.size} ranks, but MPI for Python cannot be "
                             f"loaded ({exc}); install it with pip install -e '.[mpi]'") from None
        local_rank, local_ranks = mpi.local_place()
    else:
        local_rank, local_ranks = world.rank, world.size
    if not gpu_ids:
        return DataParallel(mpi, local_ranks)
    from .nccl_collective import NCCLCollective
    from .nccl_library import UNIQUE_ID_BYTES, new_unique_id
    if mpi is None:
        device, unique_id = int(os.environ["NVCAFFE_GPU"]), bytes.fromhex(os.environ["NVCAFFE_NCCL_ID"])
    else:
        device = gpu_ids[local_rank % len(gpu_ids)]
        shared = np.frombuffer(new_unique_id() if world.rank == 0 else bytes(UNIQUE_ID_BYTES), np.uint8).copy()
        mpi.broadcast(shared)
        unique_id = shared.tobytes()
    mode.set_device(device)
    backends.set_mode_gpu()
    return DataParallel(NCCLCollective(world.rank, world.size, unique_id, device), local_ranks)
