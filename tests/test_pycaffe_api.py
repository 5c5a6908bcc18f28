"""pycaffe's module-level API and Net helpers beyond the basics: layer_type_list, the solver
bookkeeping, Timer, init_log/log, Net.forward_all / forward_backward_all, exceptions from Python
layers keeping their type, and caffe.io's ValueErrors."""
import os
import subprocess
import sys
import time

import numpy as np
import pytest

import nvcaffe_py as caffe
from nvcaffe_py.formats import net_param_from_text
from nvcaffe_py.proto import caffe_pb2

import raising_layers


def test_layer_type_list_names_the_registered_types():
    types = caffe.layer_type_list()
    assert {"Data", "Convolution", "InnerProduct", "Python"} <= set(types)
    assert "NoSuchType" not in types


def test_solver_bookkeeping_round_trips():
    assert (caffe.solver_count(), caffe.solver_rank()) == (1, 0)
    try:
        caffe.set_solver_count(4)
        caffe.set_solver_rank(3)
        caffe.set_multiprocess(True)
        assert (caffe.solver_count(), caffe.solver_rank()) == (4, 3)
    finally:
        caffe.set_solver_count(1)
        caffe.set_solver_rank(0)
        caffe.set_multiprocess(False)


def test_timer_measures_from_start_to_stop(caplog):
    timer = caffe.Timer()
    assert timer.ms == 0.0 and "never been run" in caplog.text
    before = time.perf_counter()
    timer.start()
    time.sleep(0.05)
    timer.stop()
    outer_ms = (time.perf_counter() - before) * 1e3
    time.sleep(0.05)  # after stop: not counted
    assert 50 <= timer.ms <= outer_ms
    before = time.perf_counter()
    timer.start()
    time.sleep(0.02)
    assert 20 <= timer.ms <= (time.perf_counter() - before) * 1e3  # reading a running timer stops it


def test_init_log_to_a_file_and_log(tmp_path):
    """init_log(level, stderr=False): glog's files (GLOG_log_dir), only errors on stderr."""
    code = ("import caffe; caffe.init_log(0, False); caffe.log('hello from pycaffe'); "
            "import nvcaffe_py.log as l; l.error('an error')")
    env = dict(os.environ, GLOG_log_dir=str(tmp_path))
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "hello from pycaffe" not in result.stderr and "an error" in result.stderr
    link = tmp_path / "python.INFO"  # glog names files after the program
    assert link.is_symlink()
    text = link.read_text()
    assert text.startswith("Log file created at: ")
    assert "] hello from pycaffe" in text and "] an error" in text


BATCHED = """
name: "batched"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 4 dim: 3 } } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
        inner_product_param { num_output: 2 weight_filler { type: "gaussian" std: 1 } } }
layer { name: "prob" type: "Softmax" bottom: "ip" top: "prob" }
force_backward: true
"""


def test_forward_all_runs_every_item_and_drops_the_padding():
    net = caffe.Net(net_param_from_text(BATCHED), caffe.TEST)
    items = np.random.default_rng(0).standard_normal((10, 3)).astype(np.float32)
    out = net.forward_all(blobs=["ip"], data=items)
    assert set(out) == {"prob", "ip"} and out["prob"].shape == (10, 2)
    weights = net.params["ip"][0].data
    np.testing.assert_allclose(out["ip"], items @ weights.T, rtol=1e-5, atol=1e-6)
    logits = items @ weights.T
    expected = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    np.testing.assert_allclose(out["prob"], expected, rtol=1e-5)


def test_forward_backward_all_feeds_inputs_forward_and_output_diffs_backward():
    net = caffe.Net(net_param_from_text(BATCHED), caffe.TEST)
    rng = np.random.default_rng(1)
    items = rng.standard_normal((6, 3)).astype(np.float32)
    top_diffs = rng.standard_normal((6, 2)).astype(np.float32)
    outs, diffs = net.forward_backward_all(data=items, prob=top_diffs)
    assert outs["prob"].shape == (6, 2) and diffs["data"].shape == (6, 3)
    for i in range(6):  # each item against a single forward and backward of its batch position
        batch = np.zeros((4, 3), np.float32)
        batch[0] = items[i]
        net.forward(data=batch)
        diff = np.zeros((4, 2), np.float32)
        diff[0] = top_diffs[i]
        np.testing.assert_allclose(diffs["data"][i], net.backward(prob=diff)["data"][0], rtol=1e-5, atol=1e-6)


def test_forward_all_needs_inputs():
    net = caffe.Net(net_param_from_text(BATCHED), caffe.TEST)
    with pytest.raises(caffe.CaffeError, match="forward_all needs the input arrays.*data"):
        net.forward_all()
    with pytest.raises(caffe.CaffeError, match="no blob named 'images'"):
        net.forward_all(images=np.zeros((4, 3)))


def raising_net(stage):
    return net_param_from_text(f"""
        force_backward: true
        input: "data" input_shape {{ dim: 2 dim: 3 }}
        layer {{ name: "raiser" type: "Python" bottom: "data" top: "out"
                python_param {{ module: "raising_layers" layer: "RaisingLayer" param_str: "{stage}" }} }}""")


@pytest.mark.parametrize("stage", ["setup", "reshape", "forward", "backward"])
def test_an_exception_inside_a_python_layer_keeps_its_type(stage):
    with pytest.raises(raising_layers.LayerFailure, match=f"failed in {stage}") as raised:
        net = caffe.Net(raising_net(stage), caffe.TRAIN)
        net.forward()
        net.backward()
    notes = getattr(raised.value, "__notes__", [])
    assert any("layer 'raiser' (Python)" in note for note in notes), notes


def test_io_raises_value_errors_where_pycaffe_does():
    proto = caffe_pb2.BlobProto(data=[0.0] * 100)
    with pytest.raises(ValueError):
        caffe.io.blobproto_to_array(proto)  # no shape: 100 values do not fit a scalar
    assert caffe.io.blobproto_to_array(caffe_pb2.BlobProto(data=[123.0])) == 123
    transformer = caffe.io.Transformer({"data": (1, 3, 4, 4)})
    with pytest.raises(ValueError):
        transformer.set_mean("data", np.zeros(2))
