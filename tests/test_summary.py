"""`nvcaffe summary` and nvcaffe_py.summary: parameters, multiply-adds and activation memory per
layer, against hand counts and AlexNet's published figures; the table and the command."""
import os
import subprocess
import sys

import numpy as np

import nvcaffe_py as caffe
from nvcaffe_py import formats, summary
from nvcaffe_py.net_surgery import data_layers_to_inputs

from conftest import shared_path

FILLER = 'weight_filler { type: "gaussian" } bias_filler { type: "gaussian" }'
NET = f'''
layer {{ name: "data" type: "Input" top: "data" input_param {{ shape {{ dim: 2 dim: 4 dim: 9 dim: 9 }} }} }}
layer {{ name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param {{ num_output: 6 group: 2 kernel_size: 3 {FILLER} }} }}
layer {{ name: "relu" type: "ReLU" bottom: "conv" top: "conv" }}
layer {{ name: "up" type: "Deconvolution" bottom: "conv" top: "up"
        convolution_param {{ num_output: 2 kernel_size: 2 stride: 2 bias_term: false {FILLER} }} }}
layer {{ name: "flat" type: "Flatten" bottom: "up" top: "flat" }}
layer {{ name: "fc_a" type: "InnerProduct" bottom: "flat" top: "a" param {{ name: "shared" }}
        inner_product_param {{ num_output: 5 bias_term: false {FILLER} }} }}
layer {{ name: "fc_b" type: "InnerProduct" bottom: "flat" top: "b" param {{ name: "shared" }}
        inner_product_param {{ num_output: 5 bias_term: false {FILLER} }} }}
layer {{ name: "sum" type: "Eltwise" bottom: "a" bottom: "b" top: "sum" }}
'''


def rows_by_name(net):
    return {row.name: row for row in summary.summarize(net)}


def test_counts_by_hand():
    net = caffe.Net(formats.net_param_from_text(NET), caffe.TEST)
    rows = rows_by_name(net)
    # conv: 6 filters of 4/2 channels x 3x3, plus 6 biases; each of 2x6x7x7 outputs meets 2x3x3 weights.
    assert rows["conv"].params == 6 * 2 * 9 + 6
    assert rows["conv"].multiply_adds == 2 * 6 * 7 * 7 * (2 * 9)
    assert rows["conv"].activation_bytes == 2 * 6 * 7 * 7 * 4
    assert rows["conv"].top_shapes == ((2, 6, 7, 7),)
    # In place, and a view of its bottom: no memory of their own.
    assert rows["relu"].activation_bytes == 0 and rows["flat"].activation_bytes == 0
    # deconvolution: each of the 2x6x7x7 inputs meets 2 outputs x 2x2 weights.
    assert rows["up"].params == 6 * 2 * 4
    assert rows["up"].multiply_adds == 2 * 6 * 7 * 7 * (2 * 4)
    assert rows["up"].top_shapes == ((2, 2, 14, 14),)
    # inner products on 392 inputs; the second shares the first's weights, counted once.
    assert rows["fc_a"].params == 5 * 392 and rows["fc_b"].params == 0
    assert rows["fc_a"].multiply_adds == rows["fc_b"].multiply_adds == 2 * 5 * 392
    # Element-wise work and data layers count no multiply-adds; the Split the net inserted for
    # `flat` (read twice) takes no memory.
    assert rows["sum"].multiply_adds == 0 and rows["data"].activation_bytes == 2 * 4 * 9 * 9 * 4
    split = next(row for row in rows.values() if row.type == "Split")
    assert split.activation_bytes == 0 and len(split.top_shapes) == 2


def test_activation_bytes_follow_the_nets_dtype():
    net = caffe.Net(formats.net_param_from_text(NET), caffe.TEST, dtype=np.float64)
    assert rows_by_name(net)["conv"].activation_bytes == 2 * 6 * 7 * 7 * 8


def test_recurrent_multiply_adds():
    text = '''
    layer { name: "x" type: "Input" top: "x" top: "cont" top: "static"
            input_param { shape { dim: 5 dim: 2 dim: 3 } shape { dim: 5 dim: 2 } shape { dim: 2 dim: 4 } } }
    layer { name: "lstm" type: "LSTM" bottom: "x" bottom: "cont" bottom: "static" top: "h"
            recurrent_param { num_output: 7 } }'''
    row = rows_by_name(caffe.Net(formats.net_param_from_text(text), caffe.TEST))["lstm"]
    # Per step and stream: the input (4x7 by 3) and hidden (4x7 by 7) transforms; the static input's
    # (4x7 by 4) once per stream.
    assert row.multiply_adds == 2 * (5 * (28 * 3 + 28 * 7) + 28 * 4)
    assert row.params == 28 * 3 + 28 + 28 * 4 + 28 * 7


def test_alexnet_has_its_published_parameter_and_multiply_add_counts():
    path = shared_path("caffe-zoo", "models", "bvlc_alexnet", "deploy.prototxt")
    net = caffe.Net(data_layers_to_inputs(formats.read_net_param(path), None, batch_size=1), caffe.TEST)
    rows = summary.summarize(net)
    assert sum(r.params for r in rows) == 60_965_224
    # conv1 105,415,200 + conv2 223,948,800 + conv3 149,520,384 + conv4 112,140,288 + conv5 74,760,192
    # + fc6 37,748,736 + fc7 16,777,216 + fc8 4,096,000 (conv2, 4 and 5 in two groups)
    assert sum(r.multiply_adds for r in rows) == 724_406_816


def test_the_table_lists_every_layer_and_the_totals():
    net = caffe.Net(formats.net_param_from_text(NET), caffe.TEST)
    rows = summary.summarize(net)
    lines = summary.format_table(rows).splitlines()
    assert lines[0].split() == ["layer", "type", "top", "shapes", "params", "multiply-adds", "activations"]
    assert [line.split()[0] for line in lines[2:-2]] == [row.name for row in rows]
    assert lines[2 + [r.name for r in rows].index("conv")].split()[2] == "2x6x7x7"
    total = lines[-1].split()
    assert total[0] == "total"
    assert total[1] == f"{sum(r.params for r in rows) / 1000:.2f}k"


def test_the_command_prints_the_table_with_weights_loaded_at_a_batch_size(tmp_path):
    (tmp_path / "net.prototxt").write_text(NET)
    net = caffe.Net(str(tmp_path / "net.prototxt"), caffe.TEST)
    net.save(str(tmp_path / "net.caffemodel"))
    command = [sys.executable, "-m", "nvcaffe_py", "summary", "--model", "net.prototxt"]
    result = subprocess.run(command + ["--weights", "net.caffemodel", "--batch", "3"], capture_output=True, text=True,
                            timeout=120, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    net.blobs["data"].reshape(3, 4, 9, 9)
    net.reshape()
    assert result.stdout == summary.format_table(summary.summarize(net)) + "\n"
    assert "3x6x7x7" in result.stdout
    os.remove(tmp_path / "net.prototxt")
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 1 and "net.prototxt" in result.stderr
