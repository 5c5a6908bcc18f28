"""What the solver, snapshot and CLI tests share: small LMDBs of Datum records, a tiny classifier
net, a snapshot working directory with its solvers, and a copy of Caffe's MNIST examples laid
out as in the Caffe tree, with generated data."""
import os
import re

import lmdb
import pytest
import numpy as np
from google.protobuf import text_format

from conftest import shared_path
from nvcaffe_py.proto import caffe_pb2


def write_lmdb(path, images, labels):
    """An LMDB of raw uint8 Datum records (N, C, H, W), keyed in order as Caffe's converters do."""
    env = lmdb.open(str(path), map_size=1 << 26)
    with env.begin(write=True) as txn:
        for i, (image, label) in enumerate(zip(images, labels)):
            c, h, w = image.shape
            datum = caffe_pb2.Datum(channels=c, height=h, width=w, data=image.astype(np.uint8).tobytes(),
                                    label=int(label))
            txn.put(f"{i:08d}".encode(), datum.SerializeToString())
    env.close()


def classifier_text(source, batch_size, num_output=3):
    """Data -> ip1 (5) -> ReLU -> ip2 (num_output) -> SoftmaxWithLoss, plus Accuracy in TEST."""
    return f"""
name: "tiny"
layer {{ name: "data" type: "Data" top: "data" top: "label"
        transform_param {{ scale: 0.00390625 }}
        data_param {{ source: "{source}" batch_size: {batch_size} backend: LMDB }} }}
layer {{ name: "ip1" type: "InnerProduct" bottom: "data" top: "ip1"
        inner_product_param {{ num_output: 5 weight_filler {{ type: "xavier" }}
                               bias_filler {{ type: "constant" value: 0.1 }} }} }}
layer {{ name: "relu1" type: "ReLU" bottom: "ip1" top: "ip1" }}
layer {{ name: "ip2" type: "InnerProduct" bottom: "ip1" top: "ip2" param {{ lr_mult: 1 }} param {{ lr_mult: 2 }}
        inner_product_param {{ num_output: {num_output} weight_filler {{ type: "gaussian" std: 0.1 }} }} }}
layer {{ name: "accuracy" type: "Accuracy" bottom: "ip2" bottom: "label" top: "accuracy"
        include {{ phase: TEST }} }}
layer {{ name: "loss" type: "SoftmaxWithLoss" bottom: "ip2" bottom: "label" top: "loss" }}
"""


def classifier_net(source, batch_size, num_output=3):
    return text_format.Parse(classifier_text(source, batch_size, num_output), caffe_pb2.NetParameter())


def random_digits(n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, 1, 28, 28), dtype=np.uint8), rng.integers(0, 10, size=n)


def mnist_example_dir(tmp_path, batch_size=4, records=8):
    """tmp_path/caffe laid out like the Caffe root for examples/mnist: the example prototxts
    (batch sizes cut to `batch_size`), MNIST-shaped LMDBs, and the nets that the LeNet notebook
    would have written for lenet_auto_solver (mnist/lenet_auto_{train,test}.prototxt)."""
    source_dir = shared_path("caffe-zoo", "examples", "mnist")
    root = tmp_path / "caffe"
    target = root / "examples" / "mnist"
    target.mkdir(parents=True)
    for name in os.listdir(source_dir):
        if name.endswith(".prototxt"):
            text = open(os.path.join(source_dir, name)).read()
            (target / name).write_text(re.sub(r"batch_size:\s*\d+", f"batch_size: {batch_size}", text))
    for split, seed in (("train", 1), ("test", 2)):
        write_lmdb(target / f"mnist_{split}_lmdb", *random_digits(records, seed))
    lenet = text_format.Parse((target / "lenet_train_test.prototxt").read_text(), caffe_pb2.NetParameter())
    for phase, split in ((caffe_pb2.TRAIN, "train"), (caffe_pb2.TEST, "test")):
        net = caffe_pb2.NetParameter(name="LeNet")
        for layer in lenet.layer:
            if all(rule.phase == phase for rule in layer.include) and layer.type != "Accuracy":
                added = net.layer.add()
                added.CopyFrom(layer)
                del added.include[:]
                if layer.type == "Data":  # the notebook runs in examples/
                    added.data_param.source = f"mnist/mnist_{split}_lmdb"
        (target / f"lenet_auto_{split}.prototxt").write_text(text_format.MessageToString(net))
    return root


# -- snapshot and resume runs (test_snapshot_resume.py, test_hdf5_snapshots.py) ----------
RECORDS, BATCH = 80, 16  # 10 iterations read the LMDB exactly twice: a resumed run sees the same batches


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    images = np.random.default_rng(5).integers(0, 256, size=(RECORDS, 1, 4, 4), dtype=np.uint8)
    write_lmdb(tmp_path / "train_lmdb", images, np.arange(RECORDS) % 3)
    (tmp_path / "net.prototxt").write_text(classifier_text("train_lmdb", BATCH))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write_solver(directory, name, rule, max_iter, snapshot=10, extra=""):
    path = directory / name
    path.write_text(f'net: "net.prototxt" base_lr: 0.05 lr_policy: "multistep" gamma: 0.5 stepvalue: 3 '
                    f'stepvalue: 8 weight_decay: 0.004 max_iter: {max_iter} snapshot: {snapshot} display: 0 '
                    f'random_seed: 11 {rule} {extra}')
    return str(path)


def weights(solver):
    return [p.blob.data.copy() for p in solver.net.learnable_params]


RULES = {"SGD": 'type: "SGD" momentum: 0.9', "Adam": 'type: "Adam" momentum: 0.9',
         "AdaDelta": 'type: "AdaDelta" momentum: 0.9 delta: 1e-6'}
