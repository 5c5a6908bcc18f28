"""pycaffe's caffe.NCCL, as BVLC's python/train.py drives it from one process per GPU:

    caffe.set_device(gpus[rank]); caffe.set_solver_count(len(gpus)); caffe.set_solver_rank(rank)
    solver = caffe.SGDSolver(proto)
    nccl = caffe.NCCL(solver, uid)         # uid = caffe.NCCL.new_uid(), made once by the parent
    nccl.bcast()                           # rank 0's weights to every rank
    solver.add_callback(nccl)              # averages the gradients before each update
    if solver.param.layer_wise_reduce:
        solver.net.after_backward(nccl)    # ... layer by layer, overlapped with the backward
    solver.step(solver.param.max_iter)

The same NCCLCollective and GradientReducer as `nvcaffe train -gpu` (data_parallel.py).
"""
from .. import backends, mode
from .gradient_reducer import GradientReducer
from .nccl_library import new_unique_id


class NCCL:
    new_uid = staticmethod(new_unique_id)

    def __init__(self, solver, uid):
        from .nccl_collective import NCCLCollective

        backends.set_mode_gpu()
        self._solver = solver
        self._collective = NCCLCollective(mode.solver_rank(), mode.solver_count(), bytes(uid), mode.device_id())
        self._reducer = GradientReducer(solver.net, self._collective, solver.param.iter_size)

    def bcast(self):
        """Rank 0's weights to every rank (Caffe's NCCL::Broadcast)."""
        for param in self._solver.net.learnable_params:
            self._collective.broadcast(param.blob.data)

    def on_start(self):
        self._reducer.on_start()

    def on_gradients_ready(self):
        self._reducer.on_gradients_ready()

    def __call__(self, layer_index):
        self._reducer(layer_index)
