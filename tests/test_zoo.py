"""Every net definition in ../shared/caffe-zoo builds and runs forward (and backward in TRAIN)
at batch 2, with its data-reading layers replaced by Input layers of the shapes they would
produce (the datasets themselves are not here)."""
import glob
import os

import numpy as np
import pytest

import nvcaffe_py as caffe
from nvcaffe_py import formats
from nvcaffe_py.net_surgery import data_layers_to_inputs

from conftest import SHARED

ZOO = os.path.join(SHARED, "caffe-zoo")
BATCH = 2


def zoo_nets():
    paths = glob.glob(os.path.join(ZOO, "**", "*.prototxt"), recursive=True)
    return sorted(os.path.relpath(p, ZOO) for p in paths if "solver" not in os.path.basename(p))


def item_shape(layer, net_path):
    """The per-item shape a data layer would produce, from its dataset and transform."""
    source = (layer.data_param.source or layer.image_data_param.source or layer.hdf5_data_param.source
              or layer.window_data_param.source)
    if "siamese" in net_path:
        return (2, 28, 28)  # image pairs stacked as channels
    if "mnist" in source:
        return (1, 28, 28)
    if "cifar" in source:
        return (3, 32, 32)
    if layer.type == "HDF5Data":
        return (4,)  # the hdf5_classification example's four features
    if layer.type == "MemoryData":
        p = layer.memory_data_param
        return (p.channels, p.height, p.width)
    crop = layer.transform_param.crop_size or layer.window_data_param.crop_size or 227
    return (3, crop, crop)


def stages_named_for_test(net_param):
    """Stages named by TEST-phase include rules (the net is built with the first one)."""
    stages = [s for layer in net_param.layer for rule in layer.include if rule.phase == caffe.TEST for s in rule.stage]
    return stages[:1]


CASES = [(path, phase) for path in zoo_nets() for phase in ("TRAIN", "TEST")] if os.path.isdir(ZOO) else []


def test_zoo_is_complete():
    if not os.path.isdir(ZOO):
        pytest.skip(f"shared test material not found: {ZOO}")
    assert len(zoo_nets()) == 29, zoo_nets()


@pytest.mark.parametrize("path,phase", CASES, ids=[f"{p}:{ph}" for p, ph in CASES])
def test_zoo_net_runs(path, phase):
    full = os.path.join(ZOO, path)
    param = data_layers_to_inputs(formats.read_net_param(full), lambda layer: item_shape(layer, path), BATCH)
    phase_value = caffe.TRAIN if phase == "TRAIN" else caffe.TEST
    stages = stages_named_for_test(param) if phase == "TEST" else []
    net = caffe.Net(param, phase=phase_value, stages=stages)
    rng = np.random.default_rng(0)
    for layer, tops in zip(net.layers, net.top_vecs):
        if layer.type == "Input":
            tops[0].data[...] = rng.standard_normal(tops[0].shape)
            for label in tops[1:]:
                label.data[...] = rng.integers(0, 2, label.shape)
    outputs = net.forward()  # may be empty: a loss layer without a named top has no output
    for layer, tops in zip(net.layers, net.top_vecs):
        for top in tops:
            assert np.all(np.isfinite(top.data)), f"{path} {phase}: layer '{layer.name}' output is not finite"
    for name, value in outputs.items():
        assert np.all(np.isfinite(value)), f"{path} {phase}: output '{name}' is not finite"
    if phase == "TRAIN":
        net.backward()
        for name, params in net.params.items():
            for blob in params:
                assert np.all(np.isfinite(blob.diff)), f"{path}: gradient of '{name}' is not finite"
