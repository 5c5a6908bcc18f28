"""Data-parallel training (Caffe 1.0's multi-GPU design, over MPI and NCCL): N ranks, one process
each, run the same solver; rank 0's weights are broadcast at the start, the data layers deal
items round-robin, gradients are averaged after backward, every rank applies the same update,
and only rank 0 tests, logs and snapshots. docs/DESIGN.md, "Scale-out", has the whole story.

    collective.py        the interface every reduction engine gives (broadcast, allreduce-mean of a
                         gradient bucket, allgather of small messages) and its deadline
    mpi_collective.py    MPI through mpi4py, on host buffers (CPU ranks, processes and machines)
    nccl_library.py      NCCL through ctypes; nccl_collective.py: NCCL on device buffers
    world.py             which rank this process is, from the launcher's environment
    gradient_reducer.py  the after_backward callback that reduces gradients in buckets
    data_parallel.py     joining a run: the checks at start, the broadcast, the agreement on stopping
    launcher.py          `nvcaffe train -gpu 0,1`: one process per GPU, started and watched here
Importing this package imports neither mpi4py nor NCCL; each is loaded where a run needs it.
"""
