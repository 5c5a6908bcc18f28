"""The update pipeline's array work on the host (NumPy), for Solver.apply_update in CPU mode;
device_update.py does the same on the GPU."""
import numpy as np


def gradient_sumsq(blob) -> float:
    diff = blob.diff_readonly()
    return float(np.vdot(diff, diff))


def scale_gradient(blob, factor):
    blob.diff[...] *= factor


def regularize(blob, decay, regularization_type):
    """diff += decay * data (L2) or decay * sign(data) (L1)."""
    data = blob.data_readonly()
    blob.diff[...] += decay * (data if regularization_type == "L2" else np.sign(data))


def compute_step(rule, blob, histories, rate):
    """The rule turns the gradient into the step, in place, updating its history Blobs."""
    rule.update_cpu(blob.diff, [h.data for h in histories], rate)


def apply_step(blob):
    blob.data[...] -= blob.diff_readonly()
