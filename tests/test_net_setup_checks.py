"""Nets that cannot run are refused when they are built, in one line naming the layer: a layer
that cannot run in place given its bottom as top, shapes whose sizes overflow or exceed memory
(at once, before any layer loops over them), zero channels, a 2-D input to Convolution, a negative
dimension, a BlobProto whose values do not fill its shape; and a NaN label is named as such."""
import subprocess
import sys
import time

import numpy as np
import pytest

import nvcaffe_py as caffe
from nvcaffe_py import formats
from nvcaffe_py.blob import Blob
from nvcaffe_py.errors import CaffeError
from nvcaffe_py.proto import caffe_pb2
from nvcaffe_py.solvers import get_solver

from conftest import shared_path
from net_helpers import build


def input_layer(*dims, name="data"):
    shape = " ".join(f"dim: {d}" for d in dims)
    return f'layer {{ name: "{name}" type: "Input" top: "{name}" input_param {{ shape {{ {shape} }} }} }}\n'


def refused(text, message):
    with pytest.raises(CaffeError, match=message) as info:
        build(text)
    assert "\n" not in str(info.value)
    return str(info.value)


# -- in place ----------------------------------------------------------------------------------
def test_a_layer_that_cannot_run_in_place_is_refused_in_place():
    """InnerProduct 3 -> 3 on its own bottom would read its input after overwriting it."""
    text = input_layer(2, 3) + 'layer { name: "ip" type: "InnerProduct" bottom: "data" top: "data" ' \
                               'inner_product_param { num_output: 3 } }'
    refused(text, r"^<net>: layer 'ip' \(InnerProduct\) cannot run in place: its top 'data' is its bottom; "
                  r"give the top another name$")


PASS_THROUGH = """
import caffe


class PassThrough(caffe.Layer):
    def setup(self, bottom, top):
        pass

    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].data.shape)

    def forward(self, bottom, top):
        top[0].data[...] = bottom[0].data

    def backward(self, top, propagate_down, bottom):
        pass
"""


@pytest.mark.parametrize("layer", ['type: "ReLU"', 'type: "Dropout"', 'type: "Sigmoid"', 'type: "Scale"',
                                   'type: "BatchNorm"',
                                   'type: "Python" python_param { module: "pass_through" layer: "PassThrough" }'])
def test_layers_that_run_in_place_still_may(layer, tmp_path, monkeypatch):
    (tmp_path / "pass_through.py").write_text(PASS_THROUGH)
    monkeypatch.syspath_prepend(str(tmp_path))
    net = build(input_layer(2, 3, 4) + f'layer {{ name: "l" bottom: "data" top: "data" {layer} }}')
    net.forward()


def test_the_zoo_nets_in_place_layers_are_allowed():
    path = shared_path("caffe-zoo", "models", "bvlc_reference_caffenet", "deploy.prototxt")
    net = caffe.Net(path, caffe.TEST)
    assert "relu1" in net.layer_dict


# -- sizes ------------------------------------------------------------------------------------
def test_an_element_count_that_overflows_64_bits_is_refused_naming_the_layer():
    refused(input_layer(1 << 32, 1 << 32, 2), r"^<net>: layer 'data' \(Input\): blob shape \(4294967296, "
                                              r"4294967296, 2\) holds 36893488147419103232 values, more than "
                                              r"2\^63 - 1$")


def test_a_huge_input_is_refused_at_setup_naming_the_layer():
    message = refused(input_layer(100000, 100000) + 'layer { name: "relu" type: "ReLU" bottom: "data" top: "r" }',
                      r"^<net>: layer 'data' \(Input\): blob shape \(100000, 100000\) needs 40000000000 bytes, more "
                      r"than this process may use \(\d+\)$")
    assert "relu" not in message


def test_layers_that_together_exceed_memory_are_refused_at_the_layer_that_does_it(monkeypatch):
    monkeypatch.setattr("nvcaffe_py.host_memory.usable_bytes", lambda: 1000 * 4)
    text = input_layer(20, 20) + 'layer { name: "a" type: "ReLU" bottom: "data" top: "a" }\n' + \
        'layer { name: "b" type: "ReLU" bottom: "a" top: "b" }'
    refused(text, r"^<net>: layer 'b' \(ReLU\): the net's blobs and parameters need 4800 bytes by this layer, "
                  r"more than this process may use \(4000\)$")


def test_a_batch_of_1e13_is_refused_at_once():
    """Convolution used to build a Python list of 1e13 slices (28 s and 6 GB) before failing."""
    text = input_layer(10 ** 13, 1, 5, 5) + 'layer { name: "conv" type: "Convolution" bottom: "data" top: "c" ' \
                                            'convolution_param { num_output: 3 kernel_size: 3 } }'
    start = time.perf_counter()
    refused(text, r"^<net>: layer 'data' \(Input\): blob shape \(10000000000000, 1, 5, 5\) needs")
    assert time.perf_counter() - start < 2


def test_a_huge_parameter_blob_is_refused_before_its_filler_runs():
    # 8 TB of weights: more than any machine running this may use.
    text = input_layer(2, 1000) + 'layer { name: "ip" type: "InnerProduct" bottom: "data" top: "o" ' \
                                  'inner_product_param { num_output: 2000000000 weight_filler { type: "gaussian" } } }'
    refused(text, r"^<net>: layer 'ip' \(InnerProduct\): blob shape \(2000000000, 1000\) needs 8000000000000 bytes")


def test_out_of_memory_while_running_is_one_line(tmp_path):
    """What the setup check cannot foresee (it counts data, not the gradients backward adds) still
    ends in one line: 2 x 180 MB of data pass it under a 600 MB cap, their gradients do not fit."""
    (tmp_path / "net.prototxt").write_text("force_backward: true\n" + input_layer(45, 1024, 1024) +
                                           'layer { name: "r" type: "ReLU" bottom: "data" top: "r" }')
    code = """if True:
        import resource, sys
        from nvcaffe_py import cli
        used = next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith("VmSize"))
        resource.setrlimit(resource.RLIMIT_AS, (used + (600 << 20),) * 2)
        sys.exit(cli.main(["time", "--model", "net.prototxt", "--iterations", "1"]))
    """
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert result.stderr.strip().splitlines()[-1].startswith("nvcaffe: error: out of memory"), result.stderr


def test_blob_shapes_keep_their_counts():
    blob = Blob(2, 3, 4)
    assert blob.count == 24 and blob.count(1) == 12 and Blob().count == 1 and Blob(0, 5).count == 0


# -- shapes a layer cannot take ----------------------------------------------------------------
def test_zero_channels_for_convolution_are_refused_naming_the_layer():
    text = input_layer(2, 0, 5, 5) + 'layer { name: "conv" type: "Convolution" bottom: "data" top: "c" ' \
                                     'convolution_param { num_output: 3 kernel_size: 3 } }'
    refused(text, r"^layer 'conv' \(Convolution\): the input has 0 channels")


def test_zero_inputs_for_inner_product_are_refused_naming_the_layer():
    text = input_layer(2, 0) + 'layer { name: "ip" type: "InnerProduct" bottom: "data" top: "o" ' \
                               'inner_product_param { num_output: 3 weight_filler { type: "xavier" } } }'
    refused(text, r"^layer 'ip' \(InnerProduct\): the input has 0 values per row from axis 1 on")


def test_a_2d_input_to_convolution_is_refused_naming_the_layer():
    text = input_layer(2, 3) + 'layer { name: "conv" type: "Convolution" bottom: "data" top: "c" ' \
                               'convolution_param { num_output: 3 kernel_size: 1 } }'
    refused(text, r"^layer 'conv' \(Convolution\): needs spatial axes after the channel axis 1; the input has "
                  r"shape \(2, 3\)")


def test_a_negative_dimension_names_the_layer():
    refused(input_layer(2, -3), r"^<net>: layer 'data' \(Input\): blob shape \(2, -3\) has a negative dimension$")


# -- blob protos ---------------------------------------------------------------------------------
def test_a_caffemodel_blob_whose_values_do_not_fill_its_shape_names_the_file_and_layer(tmp_path):
    net = build()
    weights = net.to_proto()
    ip1 = next(layer for layer in weights.layer if layer.name == "ip1")
    del ip1.blobs[0].data[3:]
    path = tmp_path / "short.caffemodel"
    formats.write_binary(path, weights)
    with pytest.raises(CaffeError, match=rf"^{path}: layer 'ip1' param 0 holds 3 values but its shape \(5, 3\) "
                                         r"needs 15$"):
        build().copy_from(str(path))


def test_a_prototxt_blob_whose_values_do_not_fill_its_shape_names_the_layer():
    text = input_layer(2, 3) + 'layer { name: "ip" type: "InnerProduct" bottom: "data" top: "o" ' \
                               'inner_product_param { num_output: 4 } blobs { shape { dim: 4 dim: 3 } data: 1 } ' \
                               'blobs { shape { dim: 4 } data: [1, 2, 3, 4] } }'
    refused(text, r"layer 'ip' \(InnerProduct\) param 0 holds 1 values but its shape \(4, 3\) needs 12$")


def test_a_solverstate_history_blob_that_does_not_fill_its_shape_names_the_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "net.prototxt").write_text(input_layer(2, 3) + 'layer { name: "ip" type: "InnerProduct" '
                                           'bottom: "data" top: "o" inner_product_param { num_output: 1 } }')
    (tmp_path / "s.prototxt").write_text('net: "net.prototxt" base_lr: 0.1 lr_policy: "fixed" max_iter: 1')
    state = caffe_pb2.SolverState(iter=1)
    for shape, values in (((1, 3), [1.0, 2.0]), ((1,), [0.5])):
        proto = state.history.add()
        proto.shape.dim.extend(shape)
        proto.data.extend(values)
    formats.write_binary("s.solverstate", state)
    with pytest.raises(CaffeError, match=r"^s.solverstate: history blob 0 holds 2 values but its shape \(1, 3\) "
                                         r"needs 3$"):
        get_solver("s.prototxt").restore("s.solverstate")


# -- labels ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("layer", ["SoftmaxWithLoss", "Accuracy"])
def test_a_nan_label_is_named_as_nan(layer):
    text = 'layer { name: "d" type: "Input" top: "d" top: "l" input_param { shape { dim: 2 dim: 3 } ' \
           'shape { dim: 2 } } }\n' + f'layer {{ name: "x" type: "{layer}" bottom: "d" bottom: "l" top: "o" }}'
    net = build(text)
    net.blobs["l"].data[...] = [1, np.nan]
    with pytest.raises(CaffeError, match=rf"^layer 'x' \({layer}\): label nan is outside the 3 classes \[0, 3\)$"):
        net.forward()


@pytest.mark.parametrize("layer", ["SoftmaxWithLoss", "Accuracy"])
def test_a_nan_label_on_the_device_counts_as_no_class(layer, device):
    """The GPU kernels cast labels to int, which makes a NaN class 0 on a GPU: a NaN loss (which
    the solver reports) or an uncounted position instead."""
    text = 'layer { name: "d" type: "Input" top: "d" top: "l" input_param { shape { dim: 2 dim: 3 } ' \
           'shape { dim: 2 } } }\n' + f'layer {{ name: "x" type: "{layer}" bottom: "d" bottom: "l" top: "o" }}'
    net = build(text)
    net.blobs["d"].data[...] = [[9, 0, 0], [9, 0, 0]]  # class 0 wins by far
    net.blobs["l"].data[...] = [0, np.nan]
    caffe.set_mode_gpu()
    net.forward()
    value = float(net.blobs["o"].data_readonly()[()])
    if layer == "Accuracy":
        assert value == 1.0  # one counted position, right; the NaN one is not counted as class 0
    else:
        assert np.isnan(value)
