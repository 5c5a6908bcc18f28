"""Solvers: k update steps of every rule against the rule written out here in NumPy; clipping,
L1/L2 regularization, lr_mult/decay_mult, iter_size, fine-tuning, the example MNIST solvers, and
the clear errors for bad solver input."""
import math
import os

import numpy as np
import pytest
from google.protobuf import text_format

import nvcaffe_py as caffe
from nvcaffe_py.errors import CaffeError
from nvcaffe_py.proto import caffe_pb2
from nvcaffe_py.solvers import (AdaDeltaSolver, AdamSolver, NonFiniteError, SGDSolver, get_solver,
                                load_solver_param)

from solver_helpers import classifier_net, mnist_example_dir, write_lmdb

# A quadratic bowl: two learnable blobs pulled towards targets that change every step, so the
# gradient is known in closed form: EuclideanLoss = sum((w - t)^2) / (2 * num), times loss_weight.
BOWL = """
name: "bowl"
layer { name: "targets" type: "Input" top: "ta" top: "tb"
        input_param { shape { dim: 2 dim: 3 } shape { dim: 4 dim: 1 } } }
layer { name: "a" type: "Parameter" top: "a" parameter_param { shape { dim: 2 dim: 3 } } }
layer { name: "b" type: "Parameter" top: "b" parameter_param { shape { dim: 4 dim: 1 } }
        param { lr_mult: 2 decay_mult: 0.5 } }
layer { name: "loss_a" type: "EuclideanLoss" bottom: "a" bottom: "ta" top: "loss_a" }
layer { name: "loss_b" type: "EuclideanLoss" bottom: "b" bottom: "tb" top: "loss_b" loss_weight: 0.5 }
"""
# name -> (num of its Euclidean loss, loss weight, lr_mult, decay_mult)
BOWL_PARAMS = {"a": (2, 1.0, 1.0, 1.0), "b": (4, 0.5, 2.0, 0.5)}
STEPS = 5


def bowl_solver(solver_text, dtype=np.float64, cls=None):
    param = text_format.Parse(solver_text, caffe_pb2.SolverParameter())
    param.net_param.CopyFrom(text_format.Parse(BOWL, caffe_pb2.NetParameter()))
    param.max_iter = 100
    solver = cls(param, dtype=dtype) if cls else get_solver(param, dtype=dtype)
    rng = np.random.default_rng(7)
    for name in BOWL_PARAMS:
        blob = solver.net.params[name][0]
        blob.data[...] = rng.normal(size=blob.shape)
    return solver


def write_solver(tmp_path, text, net=BOWL):
    (tmp_path / "net.prototxt").write_text(net)
    path = tmp_path / "solver.prototxt"
    path.write_text(text)
    return str(path)


def targets(step):
    rng = np.random.default_rng(100 + step)
    return {"ta": rng.normal(size=(2, 3)), "tb": rng.normal(size=(4, 1))}


def run_solver(solver):
    for step in range(STEPS):
        for name, value in targets(step).items():
            solver.net.blobs[name].data[...] = value
        solver.step(1)
    return {name: solver.net.params[name][0].data.astype(np.float64) for name in BOWL_PARAMS}


# -- the rules, written out independently -------------------------------------------------------
def reference(p, rule, initial):
    """Weights after STEPS updates of `rule` on the bowl, from the SolverParameter's constants."""
    w = {n: v.copy() for n, v in initial.items()}
    state = {n: {} for n in w}
    for it in range(STEPS):
        t = targets(it)
        grads = {n: p.iter_size * weight * (w[n] - t["t" + n]) / num
                 for n, (num, weight, _, _) in BOWL_PARAMS.items()}
        norm = math.sqrt(sum(float((g ** 2).sum()) for g in grads.values()))
        if 0 <= p.clip_gradients < norm:  # Caffe clips the summed gradient, before averaging
            grads = {n: g * p.clip_gradients / norm for n, g in grads.items()}
        rate = p.base_lr * p.gamma ** (it // p.stepsize)
        for n, (_, _, lr_mult, decay_mult) in BOWL_PARAMS.items():
            g = grads[n] / p.iter_size
            g = g + p.weight_decay * decay_mult * (np.sign(w[n]) if p.regularization_type == "L1" else w[n])
            w[n] = w[n] - rule(state[n], g, rate * lr_mult, p, it + 1)
    return w


def sgd(s, g, lr, p, t):
    s["v"] = p.momentum * s.get("v", 0) + lr * g
    return s["v"]


def nesterov(s, g, lr, p, t):
    v_old = s.get("v", 0)
    s["v"] = p.momentum * v_old + lr * g
    return (1 + p.momentum) * s["v"] - p.momentum * v_old


def adagrad(s, g, lr, p, t):
    s["G"] = s.get("G", 0) + g * g
    return lr * g / (np.sqrt(s["G"]) + p.delta)


def rmsprop(s, g, lr, p, t):
    s["E"] = p.rms_decay * s.get("E", 0) + (1 - p.rms_decay) * g * g
    return lr * g / (np.sqrt(s["E"]) + p.delta)


def adadelta(s, g, lr, p, t):
    rho, eps = p.momentum, p.delta
    s["Eg"] = rho * s.get("Eg", 0) + (1 - rho) * g * g
    dx = np.sqrt((s.get("Edx", 0) + eps) / (s["Eg"] + eps)) * g
    s["Edx"] = rho * s.get("Edx", 0) + (1 - rho) * dx * dx
    return lr * dx


def adam(s, g, lr, p, t):
    b1, b2 = p.momentum, p.momentum2
    s["m"] = b1 * s.get("m", 0) + (1 - b1) * g
    s["v"] = b2 * s.get("v", 0) + (1 - b2) * g * g
    m_hat, v_hat = s["m"] / (1 - b1 ** t), s["v"] / (1 - b2 ** t)
    # Caffe's form: eps is added to sqrt(v) before the bias correction is applied to it.
    return lr * m_hat / (np.sqrt(v_hat) + p.delta / math.sqrt(1 - b2 ** t))


COMMON = 'base_lr: 0.05 lr_policy: "step" gamma: 0.5 stepsize: 2 weight_decay: 0.01 '
CASES = {
    "SGD": (COMMON + 'type: "SGD" momentum: 0.9', sgd),
    "Nesterov": (COMMON + 'type: "Nesterov" momentum: 0.9', nesterov),
    "AdaGrad": (COMMON + 'type: "AdaGrad"', adagrad),
    "RMSProp": (COMMON + 'type: "RMSProp" rms_decay: 0.9', rmsprop),
    "AdaDelta": ('base_lr: 1.0 lr_policy: "step" gamma: 0.5 stepsize: 2 weight_decay: 0.01 '
                 'type: "AdaDelta" momentum: 0.95 delta: 1e-6', adadelta),
    "Adam": (COMMON + 'type: "Adam" momentum: 0.9 momentum2: 0.999', adam),
    "SGD-L1": (COMMON + 'type: "SGD" momentum: 0.5 regularization_type: "L1"', sgd),
    "SGD-clip": (COMMON + 'type: "SGD" clip_gradients: 0.3', sgd),
    "Adam-clip-iter_size": (COMMON + 'type: "Adam" clip_gradients: 0.5 iter_size: 3', adam),
}


@pytest.mark.parametrize("case", list(CASES))
def test_update_rule_matches_numpy(case):
    text, rule = CASES[case]
    solver = bowl_solver(text)
    initial = {n: solver.net.params[n][0].data.copy() for n in BOWL_PARAMS}
    got = run_solver(solver)
    want = reference(solver.param, rule, initial)
    assert solver.iter == STEPS
    for name in BOWL_PARAMS:
        assert not np.allclose(got[name], initial[name], rtol=1e-3)  # the weights did move
        np.testing.assert_allclose(got[name], want[name], rtol=1e-6, atol=1e-12, err_msg=f"{case}: blob {name}")


def test_float32_nets_follow_the_same_rule():
    text, rule = CASES["Adam"]
    solver = bowl_solver(text, dtype=np.float32)
    initial = {n: solver.net.params[n][0].data.astype(np.float64) for n in BOWL_PARAMS}
    got = run_solver(solver)
    assert solver.net.params["a"][0].data.dtype == np.float32
    want = reference(solver.param, rule, initial)
    for name in BOWL_PARAMS:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-4, atol=1e-6)


def test_history_layout_is_caffes():
    """One history blob per parameter; AdaDelta and Adam keep two: all first ones, then all second."""
    assert [h.shape for h in bowl_solver(CASES["SGD"][0]).history] == [(2, 3), (4, 1)]
    for name in ("AdaDelta", "Adam"):
        assert [h.shape for h in bowl_solver(CASES[name][0]).history] == [(2, 3), (4, 1), (2, 3), (4, 1)]


def test_type_and_legacy_solver_type_pick_the_rule():
    assert isinstance(bowl_solver('type: "Adam" base_lr: 0.1 lr_policy: "fixed"'), AdamSolver)
    assert isinstance(bowl_solver('solver_type: ADADELTA base_lr: 0.1 lr_policy: "fixed"'), AdaDeltaSolver)
    # pycaffe's classes build their own rule whatever the file says.
    assert type(bowl_solver('type: "Adam" base_lr: 0.1 lr_policy: "fixed"', cls=SGDSolver)) is SGDSolver


def test_lr_mult_zero_freezes_a_blob():
    solver = bowl_solver(CASES["SGD"][0])
    solver.param.weight_decay = 0
    solver.net.learnable_params[1].lr_mult = 0.0  # blob b
    before = solver.net.params["b"][0].data.copy()
    run_solver(solver)
    np.testing.assert_array_equal(solver.net.params["b"][0].data, before)


def test_average_loss_smooths_the_displayed_loss():
    """The displayed loss is the mean of the last `average_loss` losses (Caffe's smoothed_loss_)."""
    solver = bowl_solver(CASES["SGD"][0] + " average_loss: 3")
    for name, value in targets(0).items():
        solver.net.blobs[name].data[...] = value
    raw, seen = [], []
    net = solver.net

    def record_loss(i):  # each iteration's loss, summed as the Net sums it, after its last layer
        if i == len(net.layers) - 1:
            raw.append(0.0)
            for k, layer in enumerate(net.layers):
                for top, weight in zip(net.top_vecs[k], layer.loss_weights):
                    raw[-1] += weight * float(top.data_readonly().sum(dtype=np.float64)) if weight else 0.0

    net.after_forward(record_loss)
    solver.set_action_function(lambda: seen.append(solver.smoothed_loss) or "none")  # polled per iteration
    solver.step(5)
    assert len(set(raw)) == 5  # the loss changes every iteration
    for k in range(5):
        window = raw[max(0, k - 2):k + 1]
        assert seen[k] == pytest.approx(sum(window) / len(window), rel=1e-12)


def test_pycaffe_solver_api(tmp_path, monkeypatch):
    """What pycaffe scripts do: caffe.SGDSolver(file), solver.net / test_nets / step / iter /
    snapshot / restore."""
    monkeypatch.chdir(tmp_path)
    path = write_solver(tmp_path, 'net: "net.prototxt" test_iter: 1 test_interval: 100 test_initialization: false '
                                  'base_lr: 0.1 lr_policy: "fixed" momentum: 0.9')
    solver = caffe.SGDSolver(path)
    assert isinstance(solver, SGDSolver) and len(solver.test_nets) == 1
    for name, value in targets(0).items():
        solver.net.blobs[name].data[...] = value
    solver.step(2)
    assert solver.iter == 2
    model, state = solver.snapshot()
    after_two = solver.net.params["a"][0].data.copy()
    solver.step(1)
    solver.restore(state)
    assert solver.iter == 2
    np.testing.assert_array_equal(solver.net.params["a"][0].data, after_two)
    solver.test_nets[0].share_with(solver.net)
    np.testing.assert_array_equal(solver.test_nets[0].params["a"][0].data, after_two)
    assert isinstance(caffe.get_solver(path), SGDSolver)


def test_a_weight_shape_clash_between_train_and_test_nets_names_both(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "train.prototxt").write_text(BOWL)
    (tmp_path / "test.prototxt").write_text(BOWL.replace("shape { dim: 2 dim: 3 }", "shape { dim: 3 dim: 2 }"))
    (tmp_path / "solver.prototxt").write_text('train_net: "train.prototxt" test_net: "test.prototxt" test_iter: 1 '
                                              'test_interval: 10 base_lr: 0.1 lr_policy: "fixed"')
    with pytest.raises(CaffeError, match=r"cannot share the weights of layer 'a': param 0 has shape \(3, 2\) in "
                                         r"the TEST net of test.prototxt but \(2, 3\) in the TRAIN net of train.prototxt"):
        caffe.SGDSolver("solver.prototxt")


@pytest.mark.parametrize("solver_type", ["SGD", "Nesterov", "AdaGrad", "RMSProp", "AdaDelta", "Adam"])
def test_lr_is_the_rate_of_the_next_step(solver_type):
    """pycaffe's solver.lr: the policy at the current iteration, before the first step too."""
    momentum = "momentum: 0.9" if solver_type in ("SGD", "Nesterov", "AdaDelta", "Adam") else ""
    solver = bowl_solver(f'type: "{solver_type}" base_lr: 0.1 lr_policy: "multistep" gamma: 0.5 '
                         f'stepvalue: 2 stepvalue: 3 {momentum}')
    rates = [solver.lr]
    for _ in range(4):
        solver.step(1)
        rates.append(solver.lr)
    assert rates == pytest.approx([0.1, 0.1, 0.05, 0.025, 0.025])


# -- iter_size with real data ---------------------------------------------------------------------
def test_iter_size_4_at_batch_16_equals_iter_size_1_at_batch_64(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, size=(64, 1, 4, 4), dtype=np.uint8)
    labels = np.arange(64) % 3
    write_lmdb(tmp_path / "data_lmdb", images, labels)
    weights = {}
    for batch, iter_size in ((16, 4), (64, 1)):
        net = classifier_net(tmp_path / "data_lmdb", batch, num_output=3)
        param = text_format.Parse(f'base_lr: 0.1 lr_policy: "fixed" momentum: 0.9 weight_decay: 0.001 '
                                  f'iter_size: {iter_size} max_iter: 10 random_seed: 3', caffe_pb2.SolverParameter())
        param.net_param.CopyFrom(net)
        solver = get_solver(param, dtype=np.float64)
        solver.step(3)
        weights[batch] = {n: [b.data.copy() for b in blobs] for n, blobs in solver.net.params.items()}
    for name, blobs in weights[64].items():
        for k, blob in enumerate(blobs):
            np.testing.assert_allclose(weights[16][name][k], blob, rtol=1e-10, atol=1e-13, err_msg=name)


# -- fine-tuning -------------------------------------------------------------------------------------
def test_weights_copy_layers_by_name_and_leave_new_layers_to_their_fillers(tmp_path):
    write_lmdb(tmp_path / "lmdb", np.zeros((8, 1, 4, 4), np.uint8), np.zeros(8, int))
    base = classifier_net(tmp_path / "lmdb", 8, num_output=3)
    param = text_format.Parse('base_lr: 0.5 lr_policy: "fixed" max_iter: 3', caffe_pb2.SolverParameter())
    param.net_param.CopyFrom(base)
    trained = get_solver(param)
    trained.step(3)
    model = str(tmp_path / "trained.caffemodel")
    trained.net.save(model)

    tuned_net = classifier_net(tmp_path / "lmdb", 8, num_output=3)
    tuned_net.layer[1].name = "ip_new"  # the inner product layer is renamed: learned from scratch
    tuned_net.layer[1].inner_product_param.weight_filler.type = "constant"
    tuned_net.layer[1].inner_product_param.weight_filler.value = 0.25
    param.net_param.CopyFrom(tuned_net)
    param.weights.append(model)
    tuned = get_solver(param)
    np.testing.assert_array_equal(tuned.net.params["ip_new"][0].data, 0.25)
    np.testing.assert_array_equal(tuned.net.params["ip2"][0].data, trained.net.params["ip2"][0].data)
    np.testing.assert_array_equal(tuned.net.params["ip2"][1].data, trained.net.params["ip2"][1].data)


# -- the example solvers -------------------------------------------------------------------------------
EXAMPLES = ["lenet_solver.prototxt", "lenet_solver_adam.prototxt", "lenet_solver_rmsprop.prototxt",
            "lenet_adadelta_solver.prototxt", "lenet_multistep_solver.prototxt",
            "lenet_consolidated_solver.prototxt", "lenet_auto_solver.prototxt",
            "mnist_autoencoder_solver.prototxt", "mnist_autoencoder_solver_adadelta.prototxt",
            "mnist_autoencoder_solver_adagrad.prototxt", "mnist_autoencoder_solver_nesterov.prototxt"]


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_mnist_solver_runs(name, tmp_path, monkeypatch):
    """Each example solver loads as written (paths relative to the Caffe root) and trains a few
    iterations on small generated MNIST-shaped LMDBs, with batches cut to 4 to stay quick."""
    root = mnist_example_dir(tmp_path, batch_size=4)
    # The LeNet notebook (lenet_auto_solver) runs in examples/; the others in the Caffe root.
    auto = name == "lenet_auto_solver.prototxt"
    monkeypatch.chdir(root / "examples" if auto else root)
    param, source = load_solver_param(f"{'' if auto else 'examples/'}mnist/{name}")
    assert param.snapshot_prefix.startswith("examples/mnist/" if not auto else "mnist/")
    param.max_iter, param.display, param.snapshot = 2, 1, 0
    param.test_interval = 2
    param.test_iter[:] = [1] * len(param.test_iter)
    param.snapshot_after_train = False  # snapshots are tested elsewhere; the autoencoder's are large
    solver = get_solver(param, source=source)
    assert solver.type_name == (param.type or "SGD")
    initial = [p.blob.data.copy() for p in solver.net.learnable_params]
    solver.solve()
    assert solver.iter == 2
    assert any(not np.array_equal(a, p.blob.data) for a, p in zip(initial, solver.net.learnable_params))
    assert len(solver.test_scores) == len(param.test_iter)
    assert all(np.isfinite(s).all() and len(s) for s in solver.test_scores)


# -- bad solver input ---------------------------------------------------------------------------------
@pytest.mark.parametrize("text,message", [
    ('net: "net.prototxt" type: "Adamm" base_lr: 0.1 lr_policy: "fixed"',
     r"unknown solver type 'Adamm' \(known: AdaDelta, AdaGrad, Adam, Nesterov, RMSProp, SGD\); did you mean 'Adam'"),
    ('net: "net.prototxt" base_lr: 0.1 lr_policy: "cyclic"', "unknown lr_policy 'cyclic'"),
    ('net: "net.prototxt" base_lr: 0.1 lr_policy: "step" gamma: 0.1', "lr_policy 'step' needs a positive stepsize"),
    ('train_net: "net.prototxt" test_iter: 10 test_interval: 5 base_lr: 0.1 lr_policy: "fixed"',
     "test_iter is given but there is no test net"),
    ('net: "net.prototxt" test_iter: 10 base_lr: 0.1 lr_policy: "fixed"', "test_interval is 0"),
    ('train_net: "net.prototxt" test_net: "net.prototxt" test_net: "net.prototxt" test_iter: 1 test_interval: 1 '
     'base_lr: 0.1 lr_policy: "fixed"', "test_iter is given 1 time.* for 2 test net"),
    ('base_lr: 0.1 lr_policy: "fixed"', "no train net; give exactly one of net, net_param, train_net"),
    ('net: "net.prototxt" train_net: "net.prototxt" base_lr: 0.1 lr_policy: "fixed"', "more than one train net"),
    ('net: "missing.prototxt" base_lr: 0.1 lr_policy: "fixed"', "cannot read net: missing.prototxt: no such file"),
    ('net: "net.prototxt" type: "AdaGrad" momentum: 0.9 base_lr: 0.1 lr_policy: "fixed"',
     "momentum cannot be used with AdaGrad"),
    ('net: "net.prototxt" regularization_type: "L3" base_lr: 0.1 lr_policy: "fixed"',
     "unknown regularization_type 'L3'"),
    ('net: "net.prototxt" snapshot: 10 snapshot_prefix: "no/such/dir/x" base_lr: 0.1 lr_policy: "fixed"',
     "directory 'no/such/dir' does not exist"),
])
def test_bad_solver_input_is_one_clear_line(tmp_path, monkeypatch, text, message):
    monkeypatch.chdir(tmp_path)
    path = write_solver(tmp_path, text)
    with pytest.raises(CaffeError, match=message) as info:
        get_solver(path)
    assert str(info.value).startswith(path + ": ") and "\n" not in str(info.value)


NAN_NET = """
name: "diverges"
layer { name: "t" type: "Input" top: "t" input_param { shape { dim: 1 dim: 2 } } }
layer { name: "w" type: "Parameter" top: "w" parameter_param { shape { dim: 1 dim: 2 } } }
layer { name: "log" type: "Log" bottom: "w" top: "y" }
layer { name: "loss" type: "EuclideanLoss" bottom: "y" bottom: "t" top: "loss" }
"""


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_nan_loss_stops_naming_iteration_and_layer_and_keeps_last_snapshot(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = write_solver(tmp_path, 'net: "net.prototxt" base_lr: 10 lr_policy: "fixed" max_iter: 10 snapshot: 1',
                        NAN_NET)
    solver = get_solver(path)
    solver.net.params["w"][0].data[...] = 1.0  # log(1) = 0; the target -1 pulls w below zero
    solver.net.blobs["t"].data[...] = -1.0
    forwarded = []
    solver.net.before_forward(forwarded.append)
    with pytest.raises(NonFiniteError) as info:
        solver.solve()
    message = str(info.value)
    assert message.startswith("iteration 1: loss is nan")
    assert "layer 'log' (Log) is the first whose output ('y') is not finite" in message
    # The diagnosis is a pass of the net (its callbacks run) from the first layer with bottoms,
    # ending at the culprit.
    assert forwarded == [0, 1, 2, 3] * 2 + [2]
    assert message.endswith(f"last good snapshot: {tmp_path / 'solver'}_iter_1.solverstate")
    assert sorted(os.listdir(tmp_path)) == ["net.prototxt", "solver.prototxt", "solver_iter_1.caffemodel",
                                            "solver_iter_1.solverstate"]
    assert solver.iter == 1


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_a_non_finite_batch_is_blamed_on_its_data_layer_without_rerunning_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    solver = get_solver(write_solver(tmp_path, 'net: "net.prototxt" base_lr: 1 lr_policy: "fixed" max_iter: 10',
                                     NAN_NET))
    solver.net.params["w"][0].data[...] = 1.0
    solver.net.blobs["t"].data[...] = np.nan
    forwarded = []
    solver.net.before_forward(forwarded.append)
    with pytest.raises(NonFiniteError, match=r"iteration 0: loss is nan; layer 't' \(Input\) is the first whose "
                                             r"output \('t'\) is not finite"):
        solver.step(1)
    assert forwarded == [0, 1, 2, 3]  # the training pass only: no layer ran again


@pytest.mark.parametrize("text,message", [
    ('test_iter: 0 test_interval: 5', r"test_iter #0 is 0; each test net needs a positive number of iterations"),
    ('test_iter: 2 test_iter: -3 test_interval: 5', r"test_iter #1 is -3; each test net needs"),
    ('base_lr: nan', r"base_lr must be a finite number >= 0 \(got nan\)"),
    ('base_lr: -0.1', r"base_lr must be a finite number >= 0 \(got -0.1\)"),
    ('weight_decay: inf', r"weight_decay must be a finite number >= 0 \(got inf\)"),
    ('momentum: -0.5', r"momentum must be a finite number >= 0 \(got -0.5\)"),
    ('clip_gradients: nan', r"clip_gradients must be a finite number \(got nan\)"),
    ('max_iter: -1', r"max_iter must be >= 0 \(got -1\)"),
    ('snapshot: -5', r"snapshot must be >= 0 \(got -5\)"),
    ('type: "Adam" momentum2: 1', r"momentum2 must be in \[0, 1\) \(got 1\)"),
    ('type: "Adam" momentum: 1', r"momentum must be in \[0, 1\) \(got 1\)"),
    ('type: "Adam" delta: 0', r"delta must be a finite number > 0 \(got 0\)"),
    ('type: "AdaDelta" delta: 0', r"delta must be a finite number > 0 \(got 0\)"),
    ('type: "AdaDelta" momentum: 1.5', r"momentum must be in \[0, 1\] \(got 1.5\)"),
    ('type: "AdaGrad" delta: -1', r"delta must be a finite number > 0 \(got -1\)"),
    ('type: "RMSProp" delta: nan', r"delta must be a finite number > 0 \(got nan\)"),
    ('type: "RMSProp" rms_decay: 2', r"rms_decay must be in \[0, 1\] \(got 2\)"),
])
def test_out_of_domain_values_are_one_line_naming_the_field(tmp_path, monkeypatch, text, message):
    monkeypatch.chdir(tmp_path)
    defaults = " ".join(field for field in ("base_lr: 0.1", "max_iter: 2") if field.split(":")[0] not in text)
    path = write_solver(tmp_path, f'net: "net.prototxt" lr_policy: "fixed" {defaults} {text}')
    with pytest.raises(CaffeError, match=message) as info:
        get_solver(path)
    assert str(info.value).startswith(path + ": ") and "\n" not in str(info.value)


@pytest.mark.parametrize("policy", ['lr_policy: "exp" gamma: 2', 'lr_policy: "step" gamma: 10 stepsize: 1',
                                    'lr_policy: "multistep" gamma: 1e38 ' +
                                    "".join(f"stepvalue: {v} " for v in range(1, 10)),
                                    'lr_policy: "inv" gamma: 1 power: -1e3'])
def test_a_policy_whose_rate_overflows_within_max_iter_is_refused_before_training(tmp_path, monkeypatch, policy):
    monkeypatch.chdir(tmp_path)
    path = write_solver(tmp_path, f'net: "net.prototxt" base_lr: 0.1 max_iter: 5000 {policy}')
    with pytest.raises(CaffeError, match=r"lr_policy '\w+' gives a learning rate of inf at iteration \d+.*"
                                         r"\(before max_iter 5000\)$"):
        get_solver(path)
