"""End to end on real data: MNIST's t10k set (../shared/data/mnist) converted with
convert_mnist_data (first 8,000 images for training, last 2,000 for testing), then models/lenet
trained with SGD on the CPU must reach a test accuracy of at least 0.97."""
import os
import time

import pytest

import nvcaffe_py as caffe
from conftest import shared_path
from nvcaffe_py import formats
from nvcaffe_py.registry import layer_types
from nvcaffe_py.tools import convert_mnist_data

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LENET = os.path.join(REPO, "models", "lenet")
ITERATIONS = 1000


def lenet_solver_param(train_source, test_source, max_iter):
    """models/lenet's solver and net, reading the given LMDBs, testing once at the end."""
    net = formats.read_net_param(os.path.join(LENET, "lenet_train_test.prototxt"))
    for layer in net.layer:
        if layer.type == "Data":
            phase = layer.include[0].phase
            layer.data_param.source = train_source if phase == caffe.TRAIN else test_source
    solver = formats.read_solver_param(os.path.join(LENET, "lenet_solver.prototxt"))
    solver.ClearField("net")
    solver.net_param.CopyFrom(net)
    solver.max_iter = solver.test_interval = max_iter
    solver.snapshot, solver.snapshot_after_train = 0, False
    return solver


@pytest.mark.slow
def test_lenet_learns_real_mnist_to_97_percent(tmp_path):
    images = shared_path("data", "mnist", "t10k-images-idx3-ubyte.gz")
    labels = shared_path("data", "mnist", "t10k-labels-idx1-ubyte.gz")
    solvers = pytest.importorskip("nvcaffe_py.solvers", reason="the solver package is not importable yet")
    missing = {"Convolution", "Pooling", "InnerProduct", "ReLU", "SoftmaxWithLoss", "Accuracy"} - set(layer_types())
    if missing:
        pytest.skip(f"layer types not implemented yet: {', '.join(sorted(missing))}")
    train, test = str(tmp_path / "train_lmdb"), str(tmp_path / "test_lmdb")
    assert convert_mnist_data.main(["--count", "8000", images, labels, train]) == 0
    assert convert_mnist_data.main(["--start", "8000", images, labels, test]) == 0

    solver = solvers.SGDSolver(lenet_solver_param(train, test, ITERATIONS))
    start = time.perf_counter()
    solver.solve()
    wall = time.perf_counter() - start
    outputs = solver.test_nets[0].outputs
    accuracy = solver.test_scores[0][outputs.index("accuracy")]
    print(f"LeNet on MNIST (8,000 train / 2,000 test): {ITERATIONS} iterations in {wall:.0f}s, "
          f"test accuracy {accuracy:.4f}")
    assert accuracy >= 0.97
