"""The update pipeline's array work on the GPU (device primitives and updates.cu), for
Solver.apply_update in GPU mode, so that weights, gradients and history stay on the device;
host_update.py does the same on the host. The rules launch their kernels through `launch`."""
from nvcaffe_py.backends.cuda import kernels
from nvcaffe_py.backends.cuda import math_functions as mf

_kernels = kernels.Source(__file__, "updates.cu")


def launch(name, diff, *args):
    """Run kernel `name` of updates.cu over every element of `diff`, its first array."""
    n = diff.size
    _kernels.get(name, diff.dtype).launch(n, n, diff, *args)


def gradient_sumsq(blob) -> float:
    return mf.sumsq(blob.gpu_diff_readonly())


def scale_gradient(blob, factor):
    mf.scale(factor, blob.gpu_diff)


def regularize(blob, decay, regularization_type):
    """diff += decay * data (L2) or decay * sign(data) (L1)."""
    data = blob.gpu_data_readonly()
    if regularization_type == "L2":
        mf.axpy(decay, data, blob.gpu_diff)
    else:
        launch("l1_regularize", blob.gpu_diff, data, decay)


def compute_step(rule, blob, histories, rate):
    """The rule turns the gradient into the step, in place, updating its history Blobs."""
    rule.update_gpu(blob.gpu_diff, [h.gpu_data for h in histories], rate)


def apply_step(blob):
    mf.axpy(-1.0, blob.gpu_diff_readonly(), blob.gpu_data)
