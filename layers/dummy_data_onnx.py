"""ONNX translation of DummyData: constant-filled tops as constants (other fillers draw anew
every forward, which a deterministic graph cannot)."""
import numpy as np

from nvcaffe_py.onnx_translation import onnx_translation


@onnx_translation("DummyData")
def dummy_data(layer, g):
    if any(layer.refill):
        raise g.refuse("a filler other than constant draws new values every forward")
    return [g.constant(np.full(shape, filler.value), f"top{j}")
            for j, (shape, filler) in enumerate(zip(g.top_shapes, layer.fillers))]
