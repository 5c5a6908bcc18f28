"""caffe.draw (pycaffe's draw.py on pydot) and `nvcaffe draw_net` (Caffe's draw_net.py)."""
import shutil

import pytest

import nvcaffe_py as caffe
from nvcaffe_py import cli, draw
from nvcaffe_py.formats import net_param_from_text

pydot = pytest.importorskip("pydot", reason="pydot is the [draw] extra: pip install -e '.[draw]'")

NET = net_param_from_text("""
name: "drawn"
layer { name: "data" type: "Data" top: "data" top: "label" data_param { source: "x" batch_size: 64 }
        include { phase: TRAIN } }
layer { name: "test_data" type: "Data" top: "data" top: "label" data_param { source: "y" batch_size: 100 }
        include { phase: TEST } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1" param { lr_mult: 1 } param { lr_mult: 2 }
        convolution_param { num_output: 20 kernel_size: 5 stride: 1 } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1"
        pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "ip" type: "InnerProduct" bottom: "pool1" top: "ip" inner_product_param { num_output: 10 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
""")


def nodes_and_edges(graph):
    names = {n.get_name().strip('"'): n for n in graph.get_nodes()}
    edges = {(e.get_source().strip('"'), e.get_destination().strip('"')): e.get_label() for e in graph.get_edges()}
    return names, edges


def test_the_graph_has_layers_blobs_labels_and_styles():
    graph = draw.get_pydot_graph(NET, "LR", display_lrm=True)
    nodes, edges = nodes_and_edges(graph)
    conv = r"conv1\n(Convolution)\nkernel size: 5\nstride: 1\npad: 0\nlr mult: 1.0, 2.0"
    pool = r"pool1\n(Pooling MAX)\nkernel size: 2\nstride: 2\npad: 0"
    assert conv in nodes and pool in nodes
    assert nodes[conv].get("fillcolor") == "#FF5050" and nodes[pool].get("fillcolor") == "#FF9900"
    assert nodes[r"relu1\n(ReLU)"].get("fillcolor") == "#90EE90"  # in place: a neuron layer
    assert nodes["data"].get("shape") == "octagon"
    assert edges[(r"data\n(Data)", "data")] == "Batch 64" and edges[(conv, "conv1")] == "20"
    assert edges[("data", conv)] == '""'
    vertical = draw.get_pydot_graph(NET, "TB")
    assert "conv1 (Convolution) kernel size: 5 stride: 1 pad: 0" in nodes_and_edges(vertical)[0]


def test_the_phase_filter():
    everything = nodes_and_edges(draw.get_pydot_graph(NET, "LR"))[0]
    train = nodes_and_edges(draw.get_pydot_graph(NET, "LR", phase=caffe.TRAIN))[0]
    assert r"test_data\n(Data)" in everything and r"test_data\n(Data)" not in train
    assert r"data\n(Data)" in train


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed (apt install graphviz)")
def test_draw_net_to_file_and_the_command(tmp_path):
    png = tmp_path / "net.png"
    draw.draw_net_to_file(NET, str(png), "TB", caffe.TEST)
    assert png.read_bytes().startswith(b"\x89PNG")
    prototxt = tmp_path / "net.prototxt"
    prototxt.write_text(str(NET))
    svg = tmp_path / "net.svg"
    assert cli.main(["draw_net", str(prototxt), str(svg), "--rankdir", "BT", "--phase", "TRAIN"]) == 0
    text = svg.read_text()
    assert "<svg" in text and "test_data" not in text and "conv1" in text
