"""Caffe's other tools: upgrade_net_proto_text / _binary, upgrade_solver_proto_text,
extract_features (LMDBs of Datums as Caffe's tool writes them), parse_log (the CSVs of Caffe's
parse_log.py) and plot (the chart types of plot_training_log.py)."""
import os

import lmdb
import numpy as np
import pytest

import nvcaffe_py as caffe
from nvcaffe_py import cli, formats
from nvcaffe_py.datum import parse_datum
from nvcaffe_py.proto import caffe_pb2
from nvcaffe_py.tools.parse_log import parse_log
from nvcaffe_py.tools.plot import CHART_TYPES

from test_upgrade import V1_LENET, V1_LENET_UPGRADED


# -- the upgrade tools -------------------------------------------------------------------------
def test_upgrade_net_proto_text_and_binary(tmp_path, caplog):
    old = tmp_path / "v1.prototxt"
    old.write_text(V1_LENET)
    assert cli.main(["upgrade_net_proto_text", str(old), str(tmp_path / "new.prototxt")]) == 0
    expected = formats.net_param_from_text(V1_LENET_UPGRADED)
    assert formats.read_text(tmp_path / "new.prototxt", caffe_pb2.NetParameter()) == expected
    assert "Wrote upgraded NetParameter text proto to" in caplog.text
    binary = tmp_path / "v1.caffemodel"
    binary.write_bytes(formats.parse_text(V1_LENET, caffe_pb2.NetParameter()).SerializeToString())
    assert cli.main(["upgrade_net_proto_binary", str(binary), str(tmp_path / "new.caffemodel")]) == 0
    assert formats.read_binary(tmp_path / "new.caffemodel", caffe_pb2.NetParameter()) == expected
    caplog.clear()
    assert cli.main(["upgrade_net_proto_text", str(tmp_path / "new.prototxt"), str(tmp_path / "again.prototxt")]) == 0
    assert "File already in latest proto format" in caplog.text
    assert (tmp_path / "again.prototxt").read_text() == (tmp_path / "new.prototxt").read_text()


def test_upgrade_solver_proto_text_and_bad_input(tmp_path, capsys):
    old = tmp_path / "solver.prototxt"
    old.write_text('net: "n.prototxt" base_lr: 0.01 solver_type: ADAM')
    assert cli.main(["upgrade_solver_proto_text", str(old), str(tmp_path / "new.prototxt")]) == 0
    new = formats.read_text(tmp_path / "new.prototxt", caffe_pb2.SolverParameter())
    assert new.type == "Adam" and not new.HasField("solver_type")
    old.write_text("base_lr: [")
    assert cli.main(["upgrade_solver_proto_text", str(old), str(tmp_path / "bad.prototxt")]) == 1
    assert f"{old}:1:" in capsys.readouterr().err and not (tmp_path / "bad.prototxt").exists()


# -- extract_features ----------------------------------------------------------------------------
FEATURE_NET = """
name: "features"
layer { name: "data" type: "DummyData" top: "data"
        dummy_data_param { shape { dim: 3 dim: 2 dim: 2 dim: 2 } data_filler { type: "gaussian" } } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
        inner_product_param { num_output: 4 weight_filler { type: "gaussian" } } }
"""


def test_extract_features_writes_caffes_records(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "net.prototxt").write_text(FEATURE_NET)
    net = caffe.Net("net.prototxt", caffe.TEST)
    net.save("w.caffemodel")
    seen = {"data": [], "ip": []}
    original = caffe.Net.forward_from_to

    def remember(self, *args):  # what each pass computed, to compare the records with
        loss = original(self, *args)
        for name in seen:
            seen[name].extend(self.blobs[name].data.copy())
        return loss

    monkeypatch.setattr(caffe.Net, "forward_from_to", remember)
    assert cli.main(["extract_features", "w.caffemodel", "net.prototxt", "ip,data", "ip_db,data_db", "2", "lmdb"]) == 0
    for name, db in (("ip", "ip_db"), ("data", "data_db")):
        env = lmdb.open(db, readonly=True, lock=False)
        with env.begin() as txn:
            items = [(key.decode(), parse_datum(value)) for key, value in txn.cursor()]
        env.close()
        assert [key for key, _ in items] == [f"{i:010d}" for i in range(6)]
        for (_, datum), values in zip(items, seen[name]):
            shape = values.shape + (1,) * (3 - values.ndim)
            assert (datum.channels, datum.height, datum.width) == shape
            np.testing.assert_array_equal(np.array(datum.float_data, np.float32), values.ravel())
    assert cli.main(["extract_features", "w.caffemodel", "net.prototxt", "fc7", "f_db", "1", "lmdb"]) == 1
    assert not os.path.exists("f_db")


# -- parse_log ---------------------------------------------------------------------------------------
# A log as Caffe writes it (running into a new year, with lines parse_log.py skips).
CAFFE_LOG = """\
Log file created at: 2016/12/31 23:58:00
Running on machine: host
I1231 23:58:01.200000  7754 solver.cpp:48] Initializing solver from parameters:
test_iter: 100
I1231 23:58:03.000000  7754 solver.cpp:279] Solving LeNet
I1231 23:58:03.100000  7754 solver.cpp:337] Iteration 0, Testing net (#0)
I1231 23:58:04.250000  7754 solver.cpp:404]     Test net output #0: accuracy = 0.0993
I1231 23:58:04.250100  7754 solver.cpp:404]     Test net output #1: loss = 2.40144 (* 1 = 2.40144 loss)
I1231 23:58:04.260000  7754 solver.cpp:228] Iteration 0, loss = 2.36911
I1231 23:58:04.260100  7754 solver.cpp:244]     Train net output #0: loss = 2.36911 (* 1 = 2.36911 loss)
I1231 23:58:04.260200  7754 sgd_solver.cpp:106] Iteration 0, lr = 0.01
I1231 23:59:30.000000  7754 solver.cpp:228] Iteration 100, loss = 0.216457
I1231 23:59:30.000100  7754 solver.cpp:244]     Train net output #0: loss = 0.216457 (* 1 = 0.216457 loss)
I1231 23:59:30.000200  7754 sgd_solver.cpp:106] Iteration 100, lr = 0.00992565
I0101 00:00:10.500000  7754 solver.cpp:337] Iteration 200, Testing net (#0)
I0101 00:00:10.600000  7774 data_layer.cpp:73] Restarting data prefetching from start.
I0101 00:00:11.750000  7754 solver.cpp:404]     Test net output #0: accuracy = 0.9748
I0101 00:00:11.750100  7754 solver.cpp:404]     Test net output #1: loss = 0.0811 (* 1 = 0.0811 loss)
I0101 00:00:11.800000  7754 solver.cpp:228] Iteration 200, loss = 0.1401
I0101 00:00:11.800100  7754 solver.cpp:244]     Train net output #0: loss = 0.1401 (* 1 = 0.1401 loss)
I0101 00:00:11.800200  7754 sgd_solver.cpp:106] Iteration 200, lr = 0.00985258

Traceback (most recent call last): not a log line
I0101 00:00:40.000000  7754 solver.cpp:228] Iteration 300, loss = 1.5e-05
I0101 00:00:40.000100  7754 solver.cpp:244]     Train net output #0: loss = 1.5e-05 (* 1 = 1.5e-05 loss)
I0101 00:00:40.000200  7754 sgd_solver.cpp:106] Iteration 300, lr = 9.8e-3
I0101 00:01:00.000000  7754 solver.cpp:337] Iteration 400, Testing net (#0)
I0101 00:01:01.000000  7754 solver.cpp:404]     Test net output #0: accuracy = 0.9812
I0101 00:01:01.000100  7754 solver.cpp:404]     Test net output #1: loss = 0.0611 (* 1 = 0.0611 loss)
I0101 00:01:01.500000  7754 solver.cpp:317] Optimization Done.
"""
# What Caffe's tools/extra/parse_log.py (run under Python 2.7) writes for CAFFE_LOG.
CAFFE_TRAIN_CSV = ("NumIters,Seconds,LearningRate,loss\r\n0.0,1.2601,0.01,2.36911\r\n100.0,87.0001,0.01,0.216457\r\n"
                   "200.0,128.8001,0.00992565,0.1401\r\n300.0,157.0001,0.00985258,1.5e-05\r\n")
CAFFE_TEST_CSV = ("NumIters,Seconds,LearningRate,accuracy,loss\r\n0.0,1.25,0.00992565,0.0993,2.40144\r\n"
                  "200.0,128.75,0.00992565,0.9748,0.0811\r\n400.0,178.0,0.0098,0.9812,0.0611\r\n")


def test_parse_log_writes_caffes_csv_files(tmp_path, capsys):
    log = tmp_path / "caffe.log"
    log.write_text(CAFFE_LOG)
    out = tmp_path / "out"
    out.mkdir()
    assert cli.main(["parse_log", str(log), str(out), "--verbose"]) == 0
    assert (out / "caffe.log.train").read_bytes().decode() == CAFFE_TRAIN_CSV
    assert (out / "caffe.log.test").read_bytes().decode() == CAFFE_TEST_CSV
    assert f"Wrote {out / 'caffe.log.test'}" in capsys.readouterr().out
    assert cli.main(["parse_log", str(log), str(out), "-delimiter", ";"]) == 0
    assert (out / "caffe.log.test").read_text().startswith("NumIters;Seconds;LearningRate;accuracy;loss")


def test_parse_log_reads_our_training_log(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "net.prototxt").write_text("""
        layer { name: "t" type: "DummyData" top: "t" dummy_data_param { shape { dim: 2 dim: 3 } } }
        layer { name: "w" type: "Parameter" top: "w" parameter_param { shape { dim: 2 dim: 3 } } }
        layer { name: "loss" type: "EuclideanLoss" bottom: "w" bottom: "t" top: "loss" }""")
    (tmp_path / "solver.prototxt").write_text(
        'net: "net.prototxt" test_iter: 1 test_interval: 2 base_lr: 0.1 lr_policy: "step" gamma: 0.5 stepsize: 2 '
        'display: 1 max_iter: 6 solver_mode: CPU snapshot_after_train: false')
    assert cli.main(["-log_dir", str(tmp_path), "train", "-solver", "solver.prototxt"]) == 0
    train, test = parse_log(str(tmp_path / "nvcaffe.INFO"))
    assert [row["NumIters"] for row in train] == [0, 1, 2, 3, 4, 5]  # no train outputs after the last step
    # A row takes the rate logged last, which is the previous iteration's (as for Caffe's logs).
    assert [row["LearningRate"] for row in train] == [0.1, 0.1, 0.1, 0.05, 0.05, 0.025]
    assert list(train[0]) == ["NumIters", "Seconds", "LearningRate", "loss"]
    assert [row["NumIters"] for row in test] == [0, 2, 4, 6] and list(test[0])[3:] == ["loss"]
    seconds = [row["Seconds"] for row in train]
    assert seconds == sorted(seconds) and seconds[0] >= 0


# -- plot ----------------------------------------------------------------------------------------------
def test_plot_chart_types_and_a_png(tmp_path, capsys):
    pytest.importorskip("matplotlib", reason="matplotlib is the [plot] extra: pip install -e '.[plot]'")
    assert CHART_TYPES[0] == "Test accuracy  vs. Iters" and CHART_TYPES[7] == "Train loss  vs. Seconds"
    log = tmp_path / "caffe.log"
    log.write_text(CAFFE_LOG)
    for chart in (0, 5, 7):
        png = tmp_path / f"chart{chart}.png"
        assert cli.main(["plot", str(chart), str(png), str(log), str(log)]) == 0
        assert png.read_bytes().startswith(b"\x89PNG")
    assert cli.main(["plot", "8", str(tmp_path / "x.png"), str(log)]) == 1
    assert "8 is not a chart type" in capsys.readouterr().err
    assert cli.main(["plot", "0", str(tmp_path / "x.jpg"), str(log)]) == 1
    assert "ending in .png" in capsys.readouterr().err
