"""No waits for the device in a GPU training iteration but where a number is asked for: the loss
stays on the device until a display iteration reads it (the average_loss window included),
BatchNorm's statistics never leave it, the input arrives asynchronously. On the CUDA emulator (or a
GPU): the counted copies and synchronisations of each iteration, and the displayed smoothed loss,
BatchNorm's statistics and the test scores against reading every iteration and against the CPU."""
import lmdb
import numpy as np
import pytest

import nvcaffe_py as caffe
from nvcaffe_py import formats
from nvcaffe_py.backends.cuda import traffic
from nvcaffe_py.datum import array_to_datum
from nvcaffe_py.proto import caffe_pb2

ITERATIONS = 6
NET = """
layer {{ name: "d" type: "Data" top: "data" top: "label" transform_param {{ scale: 0.01 }}
         data_param {{ source: "{db}" backend: LMDB batch_size: 2 }} }}
layer {{ name: "conv" type: "Convolution" bottom: "data" top: "conv"
         convolution_param {{ num_output: 4 kernel_size: 3 weight_filler {{ type: "xavier" }} }} }}
layer {{ name: "bn" type: "BatchNorm" bottom: "conv" top: "conv" }}
layer {{ name: "scale" type: "Scale" bottom: "conv" top: "conv" scale_param {{ bias_term: true }} }}
layer {{ name: "relu" type: "ReLU" bottom: "conv" top: "conv" }}
layer {{ name: "ip" type: "InnerProduct" bottom: "conv" top: "ip"
         inner_product_param {{ num_output: 3 weight_filler {{ type: "xavier" }} }} }}
layer {{ name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }}
"""


@pytest.fixture(scope="module")
def database(tmp_path_factory):
    path = tmp_path_factory.mktemp("gpu_iteration") / "db"
    rng = np.random.default_rng(5)
    env = lmdb.open(str(path), map_size=1 << 24)
    with env.begin(write=True) as txn:
        for i in range(5):
            txn.put(f"{i:03d}".encode(), array_to_datum(rng.integers(0, 256, (3, 6, 6), dtype=np.uint8),
                                                        i % 3).SerializeToString())
    env.close()
    return str(path)


class _CountPerIteration:
    """A solver callback: the traffic of each iteration, from one on_start to the next."""

    def __init__(self):
        self.counts, self._open = [], None

    def on_start(self):
        self.close()
        self._open = traffic.counting()
        self.counts.append(self._open.__enter__())

    def on_gradients_ready(self):
        pass

    def close(self):
        if self._open is not None:
            self._open.__exit__(None, None, None)
            self._open = None


def _train(database, gpu, display):
    """(smoothed loss at each display, test scores, BatchNorm's blobs, traffic per iteration)."""
    param = caffe_pb2.SolverParameter(base_lr=0.05, momentum=0.9, lr_policy="fixed", max_iter=100, display=display,
                                      average_loss=3, random_seed=5, test_iter=[1], test_interval=4,
                                      test_initialization=False, snapshot_after_train=False, type="SGD")
    param.net_param.CopyFrom(formats.net_param_from_text(NET.format(db=database)))
    (caffe.set_mode_gpu if gpu else caffe.set_mode_cpu)()
    solver = caffe.get_solver(param)
    shown = []
    log_outputs = solver._log_outputs

    def on_display(net, kind, values):
        if kind == "Train":
            shown.append((solver.iter, solver._smoothed_loss))
        log_outputs(net, kind, values)

    solver._log_outputs = on_display
    counter = _CountPerIteration()
    solver.add_callback(counter)
    solver.step(ITERATIONS)
    counter.close()
    scores = [list(s) for s in solver.test_scores]
    statistics = [b.data_readonly().copy() for b in solver.net.params["bn"]]
    for net in [solver.net] + solver.test_nets:
        net.layers[0].close()
    caffe.set_mode_cpu()
    return shown, scores, statistics, counter.counts


def test_losses_stay_on_the_device_until_displayed(device, database):
    every, _, _, _ = _train(database, gpu=True, display=1)
    shown, scores, statistics, counts = _train(database, gpu=True, display=3)
    cpu_shown, cpu_scores, cpu_statistics, cpu_counts = _train(database, gpu=False, display=3)
    # Read at display iterations only, the smoothed loss is the one read every iteration, bit for bit.
    assert [i for i, _ in shown] == [0, 3] and shown == [(i, v) for i, v in every if i in (0, 3)]
    assert [i for i, _ in cpu_shown] == [0, 3]
    np.testing.assert_allclose([v for _, v in shown], [v for _, v in cpu_shown], rtol=1e-4)
    np.testing.assert_allclose(scores, cpu_scores, rtol=1e-4)  # BatchNorm in the TEST phase: stored statistics
    for gpu_blob, cpu_blob in zip(statistics, cpu_statistics):
        np.testing.assert_allclose(gpu_blob, cpu_blob, rtol=1e-4, atol=1e-6)
    assert len(counts) == ITERATIONS
    for k, count in enumerate(counts):
        if k in (1, 2, 4, 5):  # no display, no test: nothing waits
            assert count["htod"] == count["dtoh"] == count["sync"] == 0, (k, dict(count))
            assert count["htod_async"] == 2  # the next batch
    assert counts[3]["dtoh"] >= 1  # the display reads the losses of iterations 1 to 3 at once
    assert all(not count for count in cpu_counts)  # the CPU path moves nothing


def test_time_reports_the_traffic_of_an_iteration(device, database, tmp_path, caplog):
    from nvcaffe_py import cli

    (tmp_path / "net.prototxt").write_text(NET.format(db=database))
    with caplog.at_level("INFO", logger="nvcaffe_py"):
        assert cli.main(["time", "-model", str(tmp_path / "net.prototxt"), "-gpu", "0", "-iterations", "1"]) == 0
    caffe.set_mode_cpu()
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Host<->device per iteration")]
    assert len(lines) == 1
    assert "0 synchronous uploads (0 bytes), 0 downloads (0 bytes), 2 asynchronous uploads" in lines[0]
    assert lines[0].endswith("0 synchronizations."), lines[0]


def test_a_nan_loss_is_found_at_the_next_display_naming_its_iteration(device, tmp_path):
    """Record 3 holds a NaN: iteration 1 (records 2 and 3) has a NaN loss; on the GPU the display
    of iteration 3 reads it; on the CPU iteration 1 stops at once."""
    from nvcaffe_py.solvers.solver import NonFiniteError

    values = np.ones((5, 1, 2, 2), np.float32)
    values[3, 0, 1, 1] = np.nan
    env = lmdb.open(str(tmp_path / "db"), map_size=1 << 22)
    with env.begin(write=True) as txn:
        for i in range(5):
            txn.put(f"{i:03d}".encode(), array_to_datum(values[i], i % 2).SerializeToString())
    env.close()
    net = (f'layer {{ name: "d" type: "Data" top: "data" top: "label" data_param {{ source: "{tmp_path}/db" '
           f'backend: LMDB batch_size: 2 }} }} '
           f'layer {{ name: "ip" type: "InnerProduct" bottom: "data" top: "ip" '
           f'inner_product_param {{ num_output: 2 weight_filler {{ type: "xavier" }} }} }} '
           f'layer {{ name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }}')
    messages = {}
    for gpu in (False, True):
        param = caffe_pb2.SolverParameter(base_lr=0.1, lr_policy="fixed", max_iter=100, display=3, random_seed=5,
                                          snapshot_after_train=False, type="SGD")
        param.net_param.CopyFrom(formats.net_param_from_text(net))
        (caffe.set_mode_gpu if gpu else caffe.set_mode_cpu)()
        solver = caffe.get_solver(param)
        with pytest.raises(NonFiniteError) as caught:
            solver.step(6)
        messages[gpu] = (solver.iter, str(caught.value))
        solver.net.layers[0].close()
        caffe.set_mode_cpu()
    assert messages[False][0] == 1 and messages[False][1].startswith("iteration 1: loss is nan; layer 'd' (Data)")
    assert messages[True][0] == 3
    assert messages[True][1].startswith("iteration 1: loss is nan (read at iteration 3: in GPU mode losses are read "
                                        "on display iterations); layer 'ip' (InnerProduct)"), messages[True][1]
