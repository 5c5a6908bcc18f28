"""CPU/GPU parity of our GEMM and device primitives, of one update step per solver, of a few
device-resident training steps per solver (with snapshot and resume), and of a short LeNet
training run. (Every layer's parity is tests/test_conformance.py's, on the cases declared beside it.)

Each check runs on a real GPU (the `gpu` cases, marked `cuda`, skipped with the backend's reason
where no GPU is usable) and, where there is no GPU, on the CPU emulator of tests/cuda_emulator.py
(the `emulator` cases: the same kernels and Python code, executed by std::threads). float32 GPU
results must match the NumPy reference to 1e-4 relative.
"""
import numpy as np
import pytest

import nvcaffe_py
from nvcaffe_py.conformance import assert_close
from nvcaffe_py.proto import caffe_pb2
from nvcaffe_py.solvers import solver_class, solver_types


def rand(*shape, seed=0):
    return np.random.default_rng(seed + sum(shape)).standard_normal(shape).astype(np.float32)


def labels(n, classes, seed=3):
    return np.random.default_rng(seed).integers(0, classes, n).astype(np.float32)


# -- GEMM, GEMV and the vector primitives ---------------------------------------------------------
GEMM_SIZES = [(1, 1, 1), (5, 7, 9), (128, 128, 8), (130, 70, 33), (127, 129, 65), (64, 200, 3)]


@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
@pytest.mark.parametrize("M,N,K", GEMM_SIZES)
def test_gemm(device, trans_a, trans_b, M, N, K):
    from nvcaffe_py.backends.cuda import memory
    from nvcaffe_py.backends.cuda.sgemm import gemm

    nvcaffe_py.set_mode_gpu()
    a = rand(*((K, M) if trans_a else (M, K)), seed=1)
    b = rand(*((N, K) if trans_b else (K, N)), seed=2)
    c = rand(M, N, seed=3)
    expected = 1.5 * ((a.T if trans_a else a).astype(np.float64) @ (b.T if trans_b else b)) - 0.5 * c
    out = memory.to_device(c)
    gemm(trans_a, trans_b, M, N, K, 1.5, memory.to_device(a), memory.to_device(b), -0.5, out)
    assert_close(memory.to_host(out), expected, f"gemm {trans_a} {trans_b} {M}x{N}x{K}")
    # beta = 0 never reads C: NaNs there must not leak into the result.
    out = memory.to_device(np.full((M, N), np.nan, np.float32))
    gemm(trans_a, trans_b, M, N, K, 1.0, memory.to_device(a), memory.to_device(b), 0.0, out)
    assert_close(memory.to_host(out), (expected + 0.5 * c) / 1.5, "gemm with beta 0")


def test_gemm_offsets_strides_and_batches(device):
    """Unaligned offsets (scalar-load path), padded row strides, and a batch that reuses A."""
    from nvcaffe_py.backends.cuda import memory
    from nvcaffe_py.backends.cuda.sgemm import gemm

    nvcaffe_py.set_mode_gpu()
    M, N, K, batch = 33, 20, 17, 3
    a = rand(1 + M * 19, seed=4)  # offset 1, lda 19 > K
    b = rand(batch, K, N, seed=5)
    out = memory.to_device(np.zeros((batch, M, N), np.float32))
    gemm(False, False, M, N, K, 1.0, memory.to_device(a), memory.to_device(b), 0.0, out, offset_a=1, lda=19,
         batch=batch, stride_a=0, stride_b=K * N, stride_c=M * N)
    a_matrix = a[1:].reshape(M, 19)[:, :K].astype(np.float64)
    assert_close(memory.to_host(out), np.stack([a_matrix @ b[i] for i in range(batch)]), "batched gemm")


@pytest.mark.parametrize("trans", [False, True])
def test_gemv(device, trans):
    from nvcaffe_py.backends.cuda import memory
    from nvcaffe_py.backends.cuda.sgemm import gemv

    nvcaffe_py.set_mode_gpu()
    M, N = 37, 70
    a = rand(M, N, seed=6)
    x = rand(M if trans else N, seed=7)
    y = rand(N if trans else M, seed=8)
    out = memory.to_device(y)
    gemv(trans, M, N, 2.0, memory.to_device(a), memory.to_device(x), 0.5, out)
    assert_close(memory.to_host(out), 2.0 * ((a.T if trans else a).astype(np.float64) @ x) + 0.5 * y, "gemv")


def test_vector_primitives(device):
    from nvcaffe_py.backends.cuda import math_functions as mf
    from nvcaffe_py.backends.cuda import memory

    nvcaffe_py.set_mode_gpu()
    x, y = rand(1001, seed=9), rand(1001, seed=10)
    dx, dy = memory.to_device(x), memory.to_device(y)
    assert mf.dot(dx, dy) == pytest.approx(float(np.dot(x.astype(np.float64), y)), rel=1e-5)
    assert mf.asum(dx) == pytest.approx(float(np.abs(x).sum(dtype=np.float64)), rel=1e-6)
    assert mf.sumsq(dx) == pytest.approx(float(np.square(x, dtype=np.float64).sum()), rel=1e-6)
    mf.axpby(2.0, dx, -1.0, dy)
    assert_close(memory.to_host(dy), 2 * x - y, "axpby")
    mf.axpy(0.5, dx, dy)
    mf.scale(3.0, dy)
    assert_close(memory.to_host(dy), 3 * (2.5 * x - y), "axpy + scale")
    mf.set_value(dy, 0.25)
    assert (memory.to_host(dy) == 0.25).all()
    grid = rand(3, 4, 5, seed=11)
    sums = memory.to_device(np.ones(4, np.float32))
    mf.channel_reduce(memory.to_device(grid), 3, 4, 5, sums, beta=1.0)
    assert_close(memory.to_host(sums), 1 + grid.sum(axis=(0, 2), dtype=np.float64), "channel_reduce")


def test_device_rng_matches_host_philox(device):
    from nvcaffe_py.backends.cuda import memory, rng

    nvcaffe_py.set_mode_gpu()
    out = memory.empty(1003, np.uint32)
    seed, stream = rng.bits(out, seed=(7 << 32) + 11, stream=(3 << 32) + 5)
    np.testing.assert_array_equal(memory.to_host(out), rng.host_bits(1003, seed, stream))


# -- solvers --------------------------------------------------------------------------------------
@pytest.mark.parametrize("solver_type", solver_types())
def test_solver_update_step(device, solver_type):
    """One step of every registered rule: its update_gpu on device arrays equals its update_cpu."""
    from nvcaffe_py.backends.cuda import memory

    cls = solver_class(solver_type)
    solver = cls.__new__(cls)  # the rule alone, without a net; it reads only param and iter
    solver.param = caffe_pb2.SolverParameter(momentum=0.9, momentum2=0.999, delta=1e-6, rms_decay=0.95)
    solver.iter = 4
    histories = [np.abs(rand(3, 17, seed=20 + k)) for k in range(cls.history_per_param)]
    grad = rand(3, 17, seed=30)
    host_diff, host_histories = grad.copy(), [h.copy() for h in histories]
    solver.update_cpu(host_diff, host_histories, 0.01)

    nvcaffe_py.set_mode_gpu()
    diff = memory.to_device(grad)
    device_histories = [memory.to_device(h) for h in histories]
    solver.update_gpu(diff, device_histories, 0.01)
    assert_close(memory.to_host(diff), host_diff, f"{solver_type} step")
    for k, (d, h) in enumerate(zip(device_histories, host_histories)):
        assert_close(memory.to_host(d), h, f"{solver_type} history {k}")


# A two-layer classifier whose every layer but the input has GPU code, so in GPU mode weights,
# gradients and history never need the host; ip2's lr_mult and decay_mult differ from 1.
TRAIN_NET = """
layer { name: "input" type: "Input" top: "data" top: "label"
        input_param { shape { dim: 6 dim: 5 } shape { dim: 6 } } }
layer { name: "ip1" type: "InnerProduct" bottom: "data" top: "ip1"
        inner_product_param { num_output: 4 weight_filler { type: "gaussian" std: 0.5 }
                              bias_filler { type: "gaussian" std: 0.5 } } }
layer { name: "relu" type: "ReLU" bottom: "ip1" top: "ip1" }
layer { name: "ip2" type: "InnerProduct" bottom: "ip1" top: "ip2" param { lr_mult: 2 decay_mult: 0.5 }
        param { lr_mult: 1 decay_mult: 0 }
        inner_product_param { num_output: 3 weight_filler { type: "gaussian" std: 0.5 } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip2" bottom: "label" top: "loss" }
"""
TRAIN_COMMON = 'base_lr: 0.1 lr_policy: "step" gamma: 0.5 stepsize: 2 weight_decay: 0.01 display: 0 '
TRAIN_CASES = {
    "SGD": 'type: "SGD" momentum: 0.9',
    "Nesterov": 'type: "Nesterov" momentum: 0.9',
    "AdaGrad": 'type: "AdaGrad"',
    "RMSProp": 'type: "RMSProp" rms_decay: 0.9',
    "AdaDelta": 'type: "AdaDelta" momentum: 0.95 delta: 1e-6 base_lr: 1.0',
    "Adam": 'type: "Adam" momentum: 0.9 momentum2: 0.999',
    "SGD-L1": 'type: "SGD" momentum: 0.5 regularization_type: "L1"',
    "SGD-clip": 'type: "SGD" momentum: 0.9 clip_gradients: 0.05',
    "Adam-clip-iter_size": 'type: "Adam" clip_gradients: 0.05 iter_size: 2',
    "RMSProp-L1-iter_size": 'type: "RMSProp" rms_decay: 0.9 regularization_type: "L1" iter_size: 2',
}


def train_solver(text, gpu, prefix="", net=TRAIN_NET):
    """The solver of `text` on `net` in CPU or GPU mode, with the same weights every time."""
    from google.protobuf import text_format

    from nvcaffe_py.solvers import get_solver

    param = text_format.Merge(TRAIN_COMMON + text, caffe_pb2.SolverParameter(snapshot_prefix=prefix))  # later wins
    param.net_param.CopyFrom(text_format.Parse(net, caffe_pb2.NetParameter()))
    (nvcaffe_py.set_mode_gpu if gpu else nvcaffe_py.set_mode_cpu)()
    solver = get_solver(param)
    for k, p in enumerate(solver.net.learnable_params):
        p.blob.data[...] = rand(*p.blob.shape, seed=40 + k) * 0.5
    return solver


def train_steps(solver, first, count):
    """`count` iterations from iteration `first`, each on its own batch."""
    for it in range(first, first + count):
        solver.net.blobs["data"].data[...] = rand(6, 5, seed=50 + it)
        solver.net.blobs["label"].data[...] = labels(6, 3, seed=it)
        solver.step(1)


def train_state(solver):
    """Copies of the weights and the history (read back from wherever they live)."""
    return [p.blob.data.copy() for p in solver.net.learnable_params], [h.data.copy() for h in solver.history]


def assert_on_device(solver):
    from nvcaffe_py.synced_array import AT_DEVICE

    for p in solver.net.learnable_params:
        assert p.blob._data.head == AT_DEVICE and p.blob._diff.head == AT_DEVICE, f"{p.layer_name} left the device"
    assert all(h._data.head == AT_DEVICE for h in solver.history), "the history left the device"


@pytest.mark.parametrize("case", list(TRAIN_CASES))
def test_solver_steps_on_device_match_cpu(device, case):
    """Three iterations with the whole update on the device equal the host solver's to 1e-5,
    and the weights, gradients and history stay on the device throughout."""
    cpu = train_solver(TRAIN_CASES[case], gpu=False)
    initial = [p.blob.data.copy() for p in cpu.net.learnable_params]
    train_steps(cpu, 0, 3)
    cpu_weights, cpu_history = train_state(cpu)
    gpu = train_solver(TRAIN_CASES[case], gpu=True)
    train_steps(gpu, 0, 3)
    assert_on_device(gpu)
    gpu_weights, gpu_history = train_state(gpu)
    nvcaffe_py.set_mode_cpu()
    for k, (g, c, w0) in enumerate(zip(gpu_weights, cpu_weights, initial)):
        assert not np.allclose(c, w0, rtol=1e-3), f"{case}: param {k} did not move"
        assert_close(g, c, f"{case} param {k}", rtol=1e-5)
    for k, (g, c) in enumerate(zip(gpu_history, cpu_history)):
        assert_close(g, c, f"{case} history {k}", rtol=1e-5)


@pytest.mark.parametrize("case", ["Adam", "AdaDelta"])
def test_snapshot_and_resume_from_device_history(device, case, tmp_path):
    """A snapshot taken while the history lives on the device holds it; a GPU solver resumed
    from it continues exactly as an uninterrupted GPU run."""
    from nvcaffe_py import formats

    straight = train_solver(TRAIN_CASES[case], gpu=True)
    train_steps(straight, 0, 4)
    expected = train_state(straight)

    first = train_solver(TRAIN_CASES[case], gpu=True, prefix=str(tmp_path / "gpu"))
    train_steps(first, 0, 2)
    assert_on_device(first)
    _, state_file = first.snapshot()
    state = formats.read_binary(state_file, caffe_pb2.SolverState())
    for k, h in enumerate(first.history):
        np.testing.assert_array_equal(formats.array_from_blob_proto(state.history[k]).reshape(h.shape), h.data)
        assert np.abs(h.data).max() > 0, "the history was never updated"

    resumed = train_solver(TRAIN_CASES[case], gpu=True)
    resumed.restore(state_file)
    train_steps(resumed, 2, 2)
    assert_on_device(resumed)
    got = train_state(resumed)
    nvcaffe_py.set_mode_cpu()
    assert resumed.iter == 4
    for kind, got_arrays, want_arrays in zip(("param", "history"), got, expected):
        for k, (g, w) in enumerate(zip(got_arrays, want_arrays)):
            np.testing.assert_array_equal(g, w, err_msg=f"{case} {kind} {k}")


def test_display_and_snapshot_leave_the_device_copies_valid(device, tmp_path):
    """Showing the outputs and writing a snapshot read blobs on the host without making their
    device copies stale (so the next iteration uploads nothing back)."""
    from nvcaffe_py.synced_array import AT_HOST

    # A second output, from a layer whose GPU half writes it on the device.
    net = TRAIN_NET + """
layer { name: "image" type: "Input" top: "image" input_param { shape { dim: 2 dim: 1 dim: 4 dim: 4 } } }
layer { name: "pool" type: "Pooling" bottom: "image" top: "pool"
        pooling_param { pool: MAX kernel_size: 2 stride: 2 } }"""
    at_host = {}  # blobs whose device copy is stale, without and with the display
    for display in (0, 1):
        solver = train_solver(TRAIN_CASES["Adam"] + f" display: {display}", gpu=True, prefix=str(tmp_path / "gpu"),
                              net=net)
        train_steps(solver, 0, 1)
        at_host[display] = {name for name, blob in solver.net.blobs.items() if blob._data.head == AT_HOST}
    solver.snapshot()
    stale = [f"param {k}" for k, p in enumerate(solver.net.learnable_params) if p.blob._data.head == AT_HOST]
    stale += [f"history {k}" for k, h in enumerate(solver.history) if h._data.head == AT_HOST]
    nvcaffe_py.set_mode_cpu()
    assert at_host[1] == at_host[0], "showing the outputs made device copies stale"
    assert not stale, f"the snapshot made device copies stale: {stale}"


# -- end to end -----------------------------------------------------------------------------------
def lenet_losses(gpu, iterations):
    """models/lenet trained with its solver on synthetic digits fed through an Input layer; the
    loss of every iteration."""
    import os

    from nvcaffe_py import formats
    from nvcaffe_py.solvers import SGDSolver

    models = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "models", "lenet")
    net = formats.read_net_param(os.path.join(models, "lenet_train_test.prototxt"))
    layers = [layer for layer in net.layer if layer.type != "Data"]
    del net.layer[:]
    data = net.layer.add(name="digits", type="Input", top=["data", "label"])
    data.input_param.shape.add(dim=[64, 1, 28, 28])
    data.input_param.shape.add(dim=[64])
    net.layer.extend(layers)
    solver_param = formats.read_solver_param(os.path.join(models, "lenet_solver.prototxt"))
    solver_param.ClearField("net")
    solver_param.ClearField("test_iter")
    solver_param.net_param.CopyFrom(net)
    solver_param.test_interval = solver_param.display = solver_param.snapshot = 0
    solver_param.max_iter = iterations
    (nvcaffe_py.set_mode_gpu if gpu else nvcaffe_py.set_mode_cpu)()
    solver = SGDSolver(solver_param)
    picker = np.random.default_rng(5)
    losses = []
    for _ in range(iterations):
        digit = picker.integers(0, 10, 64)
        image = picker.random((64, 1, 28, 28), dtype=np.float32) * 0.3
        for k in range(64):  # a bright bar whose position is the class
            image[k, 0, 2 + 2 * digit[k]:4 + 2 * digit[k], 4:24] += 0.7
        # A third of the labels are random, so the loss stays near 1 (never tiny, where float32
        # rounding alone would exceed the 1e-3 relative tolerance).
        noisy = picker.random(64) < 1 / 3
        label = np.where(noisy, picker.integers(0, 10, 64), digit)
        solver.net.blobs["data"].data[...] = image
        solver.net.blobs["label"].data[...] = label
        solver.step(1)
        losses.append(float(solver.net.blobs["loss"].data))
    nvcaffe_py.set_mode_cpu()
    return np.array(losses)


@pytest.mark.cuda
def test_lenet_500_iterations_gpu_matches_cpu(device):
    if device != "gpu":
        pytest.skip("500 LeNet iterations are too slow for the emulator")
    cpu = lenet_losses(False, 500)
    gpu = lenet_losses(True, 500)
    assert cpu[-20:].mean() < 0.7 * cpu[0]  # it learns
    worst = np.max(np.abs(gpu - cpu) / np.abs(cpu))
    assert worst <= 1e-3, f"loss curves differ by {worst:.2e} relative (first at iteration {np.argmax(np.abs(gpu - cpu) / np.abs(cpu) > 1e-3)})"
