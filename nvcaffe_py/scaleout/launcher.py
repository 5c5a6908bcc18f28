"""`nvcaffe train -gpu 0,1` / `-gpu all`: one training process per GPU, started and watched here
(no mpiexec), reducing with NCCL; NVCAFFE_FORCE_NCCL=1 takes this path with one GPU too, so that a
one-GPU machine runs real NCCL calls on a one-rank communicator.

This process checks the ids, makes NCCL's unique id (as BVLC's python/train.py does in its parent)
and starts `python -m nvcaffe_py <the same arguments>` once per GPU, each with NVCAFFE_RANK,
NVCAFFE_RANKS, NVCAFFE_GPU and NVCAFFE_NCCL_ID (world.py), in a session of its own so that the
terminal's Ctrl-C reaches only this process, which passes SIGINT and SIGHUP to rank 0 (it acts
for all). When a rank ends with an error, the others are ended too, and the run reports which.
"""
import os
import signal
import subprocess
import sys
import time

from .. import log
from ..errors import CaffeError
from .nccl_library import new_unique_id

_GRACE_S = 5.0


def check_device_ids(ids, count):
    """CaffeError naming the ids that do not exist among `count` GPUs (or repeat)."""
    missing = [i for i in ids if not 0 <= i < count]
    if missing:
        raise CaffeError(f"-gpu names GPU {', '.join(map(str, missing))}, but this machine has {count} GPU(s) "
                         f"(ids 0 to {count - 1})" if count else "-gpu names GPUs, but this machine has none")
    if len(set(ids)) != len(ids):
        raise CaffeError(f"-gpu names a GPU twice ({','.join(map(str, ids))}); one rank per GPU")


def train_on_gpus(ids, argv):
    """Run `nvcaffe <argv>` once per GPU in `ids`; the exit status: 0, or 1 after a rank failed."""
    unique_id = new_unique_id().hex()
    log.info(f"Training on GPUs {', '.join(map(str, ids))}: {len(ids)} ranks, gradients averaged by NCCL")
    ranks = []
    for rank, gpu in enumerate(ids):
        env = dict(os.environ, NVCAFFE_RANK=str(rank), NVCAFFE_RANKS=str(len(ids)), NVCAFFE_GPU=str(gpu),
                   NVCAFFE_NCCL_ID=unique_id)
        ranks.append(subprocess.Popen([sys.executable, "-m", "nvcaffe_py", *argv], env=env, start_new_session=True))
    forwarded = {signum: signal.signal(signum, lambda signum, frame: ranks[0].send_signal(signum))
                 for signum in (signal.SIGINT, signal.SIGHUP)}
    try:
        return _watch(ranks, ids)
    finally:
        for signum, handler in forwarded.items():
            signal.signal(signum, handler)


def _watch(ranks, ids):
    while True:
        statuses = [process.poll() for process in ranks]
        failed = [rank for rank, status in enumerate(statuses) if status not in (None, 0)]
        if failed:
            _end(ranks)
            if ranks[0].returncode == 1:
                return 1  # rank 0 has reported the error for every rank (the checks at start)
            rank = failed[0]
            raise CaffeError(f"rank {rank} (GPU {ids[rank]}) ended with status {statuses[rank]}; "
                             f"the other ranks were stopped")
        if all(status == 0 for status in statuses):
            return 0
        time.sleep(0.1)


def _end(ranks):
    """Give the other ranks a moment to end by themselves (after the checks at start every rank
    does), then terminate, then kill what is left."""
    for stop in (None, subprocess.Popen.terminate, subprocess.Popen.kill):
        deadline = time.monotonic() + _GRACE_S
        for process in ranks:
            if stop and process.poll() is None:
                stop(process)
        for process in ranks:
            try:
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        if all(process.poll() is not None for process in ranks):
            return
