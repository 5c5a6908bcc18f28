"""RNN, LSTM and LSTMUnit: known values against step-by-step loops written from Caffe's
definitions, sequence resets by cont, the state carried from one forward to the next, static
input and exposed hidden state, gradient checks, Caffe's parameter order and shapes, and
training a small LSTM net."""
import numpy as np
import pytest

import nvcaffe_py as caffe
from nvcaffe_py.errors import CaffeError
from nvcaffe_py.formats import net_param_from_text
from nvcaffe_py.gradient_check import check_layer_gradient, setup_layer

FILLERS = 'weight_filler { type: "uniform" min: -0.5 max: 0.5 } bias_filler { type: "uniform" min: -0.5 max: 0.5 }'
T, N, D, S, H = 4, 3, 5, 2, 3


def layer_text(kind, extra=""):
    return f'type: "{kind}" recurrent_param {{ num_output: {H} {FILLERS} {extra} }}'


def inputs(seed=0, reset_first=True):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((T, N, D))
    cont = np.ones((T, N))
    if reset_first:
        cont[0] = 0
    cont[2, 1] = 0  # stream 1 starts a new sequence at step 2
    return x, cont, rng.standard_normal((N, S))


def sigmoid(v):
    return 1 / (1 + np.exp(-v))


def reference_rnn(params, x, cont, static=None, h=None):
    """Loops over streams and steps, with the formulas of Caffe's unrolled RNN net."""
    w_xh, b_h, *rest = params
    w_static, (w_hh, w_ho, b_o) = (rest[0], rest[1:]) if static is not None else (None, rest)
    out = np.zeros((T, N, H))
    for n in range(N):
        state = np.zeros(H) if h is None else h[n].copy()
        for t in range(T):
            pre = w_xh @ x[t, n] + b_h + w_hh @ (cont[t, n] * state)
            if static is not None:
                pre += w_static @ static[n]
            state = np.tanh(pre)
            out[t, n] = np.tanh(w_ho @ state + b_o)
    return out


def reference_lstm(params, x, cont, static=None, h=None, c=None):
    w_xc, b_c, *rest = params
    w_static, w_hc = (rest[0], rest[1]) if static is not None else (None, rest[0])
    out = np.zeros((T, N, H))
    for n in range(N):
        hs = np.zeros(H) if h is None else h[n].copy()
        cs = np.zeros(H) if c is None else c[n].copy()
        for t in range(T):
            gates = w_xc @ x[t, n] + b_c + w_hc @ (cont[t, n] * hs)
            if static is not None:
                gates += w_static @ static[n]
            i, f, o, g = sigmoid(gates[:H]), sigmoid(gates[H:2 * H]), sigmoid(gates[2 * H:3 * H]), np.tanh(gates[3 * H:])
            cs = cont[t, n] * f * cs + i * g
            hs = o * np.tanh(cs)
            out[t, n] = hs
    return out


@pytest.mark.parametrize("kind,reference", [("RNN", reference_rnn), ("LSTM", reference_lstm)])
@pytest.mark.parametrize("with_static", [False, True])
def test_known_values_with_sequence_resets(kind, reference, with_static):
    x, cont, static = inputs()
    bottoms = [x, cont] + ([static] if with_static else [])
    layer, b, tops = setup_layer(layer_text(kind), bottoms)
    layer.forward_cpu(b, tops)
    params = [p.data for p in layer.blobs]
    np.testing.assert_allclose(tops[0].data, reference(params, x, cont, static if with_static else None), atol=1e-12)


def test_caffe_parameter_order_and_shapes():
    x, cont, static = inputs()
    rnn, _, _ = setup_layer(layer_text("RNN"), [x, cont, static])
    assert [p.shape for p in rnn.blobs] == [(H, D), (H,), (H, S), (H, H), (H, H), (H,)]  # W_xh b_h W_xh_static W_hh W_ho b_o
    lstm, _, _ = setup_layer(layer_text("LSTM"), [x, cont])
    assert [p.shape for p in lstm.blobs] == [(4 * H, D), (4 * H,), (4 * H, H)]  # W_xc b_c W_hc


@pytest.mark.parametrize("kind", ["RNN", "LSTM"])
def test_state_carries_over_from_one_forward_to_the_next(kind):
    # Two forwards of T steps with cont = 1 at the seam equal one forward of 2T steps.
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2 * T, N, D))
    cont = np.ones((2 * T, N))
    cont[0] = 0
    whole, b, tops = setup_layer(layer_text(kind), [x, cont])
    whole.forward_cpu(b, tops)
    expected = tops[0].data.copy()
    halves, b, tops = setup_layer(layer_text(kind), [x[:T], cont[:T]])
    for p, q in zip(halves.blobs, whole.blobs):
        p.data[...] = q.data
    got = []
    for part in (slice(0, T), slice(T, 2 * T)):
        b[0].data[...], b[1].data[...] = x[part], cont[part]
        halves.forward_cpu(b, tops)
        got.append(tops[0].data.copy())
    np.testing.assert_allclose(np.concatenate(got), expected, atol=1e-12)


@pytest.mark.parametrize("kind,states", [("RNN", 1), ("LSTM", 2)])
def test_exposed_hidden_state_in_and_out(kind, states):
    x, cont, _ = inputs(reset_first=False)
    rng = np.random.default_rng(9)
    initial = [rng.standard_normal((1, N, H)) for _ in range(states)]
    layer, b, tops = setup_layer(layer_text(kind, "expose_hidden: true"), [x, cont] + initial, num_tops=1 + states)
    layer.forward_cpu(b, tops)
    params = [p.data for p in layer.blobs]
    reference = reference_rnn if kind == "RNN" else reference_lstm
    expected = reference(params, x, cont, None, *[s[0] for s in initial])
    np.testing.assert_allclose(tops[0].data, expected, atol=1e-12)
    if kind == "LSTM":  # h_T is the last output
        np.testing.assert_allclose(tops[1].data[0], tops[0].data[-1])


@pytest.mark.parametrize("kind", ["RNN", "LSTM"])
def test_gradients(kind):
    x, cont, static = inputs()
    check_layer_gradient(layer_text(kind), [x, cont], check_bottoms=[0])
    check_layer_gradient(layer_text(kind), [x, cont, static], check_bottoms=[0, 2])


@pytest.mark.parametrize("kind,states", [("RNN", 1), ("LSTM", 2)])
def test_gradients_with_exposed_hidden_state(kind, states):
    x, cont, _ = inputs(reset_first=False)
    rng = np.random.default_rng(4)
    initial = [rng.standard_normal((1, N, H)) for _ in range(states)]
    check_layer_gradient(layer_text(kind, "expose_hidden: true"), [x, cont] + initial, num_tops=1 + states,
                         check_bottoms=[0] + [2 + i for i in range(states)])


def test_lstm_unit_known_values_and_gradient():
    rng = np.random.default_rng(2)
    c_prev, gates, cont = rng.standard_normal((1, N, H)), rng.standard_normal((1, N, 4 * H)), np.array([[1.0, 0.0, 1.0]])
    layer, b, tops = setup_layer('type: "LSTMUnit"', [c_prev, gates, cont], num_tops=2)
    layer.forward_cpu(b, tops)
    g = gates[0]
    i, f, o, gg = sigmoid(g[:, :H]), sigmoid(g[:, H:2 * H]), sigmoid(g[:, 2 * H:3 * H]), np.tanh(g[:, 3 * H:])
    c = cont[0][:, None] * f * c_prev[0] + i * gg
    np.testing.assert_allclose(tops[0].data[0], c, atol=1e-12)
    np.testing.assert_allclose(tops[1].data[0], o * np.tanh(c), atol=1e-12)
    check_layer_gradient('type: "LSTMUnit"', [c_prev, gates, cont], num_tops=2, check_bottoms=[0, 1])


def test_errors_name_the_layer():
    x, cont, _ = inputs()
    with pytest.raises(CaffeError, match=r"bottom\[1\] \(cont\) must be \(timesteps, streams\)"):
        setup_layer(layer_text("LSTM"), [x, cont[:, :2]])
    layer, b, tops = setup_layer(layer_text("RNN"), [x, cont])
    b[0].reshape(T + 1, N, D)
    with pytest.raises(CaffeError, match="must keep 4 timesteps"):
        layer.reshape(b, tops)
    layer, b, tops = setup_layer(layer_text("RNN"), [x, cont])
    layer.forward_cpu(b, tops)
    with pytest.raises(CaffeError, match="cannot backpropagate to the sequence indicators"):
        layer.backward_cpu(tops, [True, True], b)
    with pytest.raises(CaffeError, match="num_output must be positive"):
        setup_layer('type: "LSTM" recurrent_param { }', [x, cont])
    with pytest.raises(CaffeError, match="takes the bottoms x, cont, \\[x_static\\], h_0, c_0"):
        setup_layer(layer_text("LSTM", "expose_hidden: true"), [x, cont], num_tops=3)


def test_a_small_lstm_net_learns_to_remember_the_first_input():
    # Each sequence shows a sign at step 0 and noise after; the label at the last step is the sign.
    steps, streams = 5, 16
    text = f"""
    layer {{ name: "x" type: "Input" top: "x" top: "cont" top: "label"
            input_param {{ shape {{ dim: {steps} dim: {streams} dim: 1 }} shape {{ dim: {steps} dim: {streams} }}
                          shape {{ dim: {streams} }} }} }}
    layer {{ name: "lstm" type: "LSTM" bottom: "x" bottom: "cont" top: "h"
            recurrent_param {{ num_output: 8 weight_filler {{ type: "uniform" min: -0.3 max: 0.3 }} }} }}
    layer {{ name: "last" type: "Slice" bottom: "h" top: "early" top: "last" slice_param {{ axis: 0 slice_point: {steps - 1} }} }}
    layer {{ name: "silence" type: "Silence" bottom: "early" }}
    layer {{ name: "ip" type: "InnerProduct" bottom: "last" top: "score"
            inner_product_param {{ num_output: 2 axis: 2 weight_filler {{ type: "xavier" }} }} }}
    layer {{ name: "flat" type: "Reshape" bottom: "score" top: "flat" reshape_param {{ shape {{ dim: -1 dim: 2 }} }} }}
    layer {{ name: "loss" type: "SoftmaxWithLoss" bottom: "flat" bottom: "label" top: "loss" }}
    """
    caffe.set_random_seed(7)
    net = caffe.Net(net_param_from_text(text), caffe.TRAIN)
    rng = np.random.default_rng(0)
    losses = []
    for step in range(150):
        labels = rng.integers(0, 2, streams)
        x = rng.normal(0, 0.2, (steps, streams, 1))
        x[0, :, 0] = 2.0 * labels - 1
        net.blobs["x"].data[...] = x
        net.blobs["cont"].data[...] = np.r_[np.zeros((1, streams)), np.ones((steps - 1, streams))]
        net.blobs["label"].data[...] = labels
        net.clear_param_diffs()
        losses.append(net.forward_backward())
        for p in net.learnable_params:
            p.blob.data[...] -= 0.5 * p.blob.diff
    assert np.mean(losses[:10]) > 0.6 and np.mean(losses[-10:]) < 0.2
