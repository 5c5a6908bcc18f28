"""Which rank this process is and how many train together, read from the launcher's environment
before anything else starts, so that a single process never needs MPI:

- `mpiexec` / `mpirun` / `srun`: MPICH, Intel MPI and Slurm's PMI set PMI_RANK and PMI_SIZE, Open
  MPI sets OMPI_COMM_WORLD_RANK and OMPI_COMM_WORLD_SIZE;
- `nvcaffe train -gpu 0,1` (launcher.py) gives its processes NVCAFFE_RANK, NVCAFFE_RANKS,
  NVCAFFE_NCCL_ID and NVCAFFE_GPU.
"""
import os
from dataclasses import dataclass

_MPI_VARIABLES = (("PMI_RANK", "PMI_SIZE"), ("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"))
LAUNCHER_VARIABLES = ("NVCAFFE_RANK", "NVCAFFE_RANKS")


@dataclass(frozen=True)
class World:
    rank: int
    size: int
    launched_by_mpi: bool  # else by `nvcaffe train -gpu`, which passes NCCL's id itself


def from_environment():
    """The World this process belongs to, or None for a single process (no launcher, or one rank)."""
    for rank_name, size_name, by_mpi in [(*LAUNCHER_VARIABLES, False)] + [(*names, True) for names in _MPI_VARIABLES]:
        if rank_name in os.environ and size_name in os.environ:
            world = World(int(os.environ[rank_name]), int(os.environ[size_name]), by_mpi)
            return world if world.size > 1 or not by_mpi else None
    return None
