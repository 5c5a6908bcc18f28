"""ONNX translations of LSTMUnit, and of RNN and LSTM unrolled over their timesteps (static here),
as Caffe unrolls them itself: ONNX's RNN and LSTM operators have no sequence-continuation input
(cont, which cuts the state off mid-sequence) and another gate order. A run starts from zero state,
as the net's first forward does, or with expose_hidden from the h_0 (and c_0) inputs."""
import numpy as np

from nvcaffe_py.onnx_translation import onnx_translation


def _lstm_unit(g, c_prev, gates, cont, gate_sizes, zero):
    """Caffe's LSTMUnit: gates in the order i, f, o, g; the forget gate 0 where cont is 0."""
    i, f, o, candidate = g.op("Split", gates, gate_sizes, outputs=4, axis=-1)
    forget = g.op("Where", g.op("Equal", cont, zero), zero, g.op("Mul", cont, g.op("Sigmoid", f)))
    c = g.op("Add", g.op("Mul", forget, c_prev), g.op("Mul", g.op("Sigmoid", i), g.op("Tanh", candidate)))
    return c, g.op("Mul", g.op("Sigmoid", o), g.op("Tanh", c))


@onnx_translation("LSTMUnit")
def lstm_unit(layer, g):
    c_prev, gates, cont = g.bottoms
    _, num, hidden = g.bottom_shapes[0]
    cont = g.reshape(cont, (1, num, 1), "cont_shape")  # one indicator per stream, over its units
    return list(_lstm_unit(g, c_prev, gates, cont, g.ints([hidden] * 4, "gate_sizes"), g.constant(0, "zero")))


def _transposed(g, layer, k, what):
    return g.constant(layer.blobs[k].data_readonly().T, what)


def _per_step(g, value, timesteps, shape, what):
    """A (T, ...) value as T values of `shape`."""
    steps = g.op("Split", value, g.ints([1] * timesteps, "steps"), outputs=timesteps, axis=0) if timesteps > 1 else [value]
    return [g.reshape(step, shape, what) for step in steps]


def _step_inputs(layer, g, num):
    """Each step's input transform W x_t + b (+ W_static x_static), as (N, rows) values."""
    x = g.reshape(g.bottoms[0], (layer.timesteps, num, -1), "x_shape")
    inputs = g.op("Add", g.op("MatMul", x, _transposed(g, layer, 0, "W_x")), g.constant(layer.blobs[1].data_readonly(), "b"))
    if layer.static_input:
        static = g.reshape(g.bottoms[2], (num, -1), "static_shape")
        inputs = g.op("Add", inputs, g.op("MatMul", static, _transposed(g, layer, 2, "W_static")))
    return _per_step(g, inputs, layer.timesteps, (num, -1), "step_shape")


def _step_conts(layer, g, num):
    """Each step's cont as (N, 1), to scale a stream's whole state."""
    return _per_step(g, g.bottoms[1], layer.timesteps, (num, 1), "step_cont_shape")


def _initial_states(layer, g, num):
    if not layer.expose_hidden:
        return [g.constant(np.zeros((num, layer.hidden)), f"{name}_0") for name in layer.states]
    return [g.reshape(value, (num, layer.hidden), f"{name}_0_shape")
            for name, value in zip(layer.states, g.bottoms[len(g.bottoms) - len(layer.states):])]


def _outputs(layer, g, num, hidden_states, final_states):
    """The steps' h as (T, N, H), then (expose_hidden) the final states as (1, N, H) each."""
    stacked = g.reshape(g.op("Concat", *hidden_states, axis=0) if len(hidden_states) > 1 else hidden_states[0],
                        (layer.timesteps, num, layer.hidden), "outputs_shape")
    finals = [g.reshape(state, (1, num, layer.hidden), "final_shape") for state in final_states]
    return stacked, finals if layer.expose_hidden else []


@onnx_translation("RNN")
def rnn(layer, g):
    num = g.bottom_shapes[0][1]
    # Caffe's blobs: W_xh, b_h, [W_xh_static], W_hh, W_ho, b_o
    w_hh, w_ho = _transposed(g, layer, -3, "W_hh"), _transposed(g, layer, -2, "W_ho")
    (h,) = _initial_states(layer, g, num)
    hidden_states = []
    for step, cont in zip(_step_inputs(layer, g, num), _step_conts(layer, g, num)):
        h = g.op("Tanh", g.op("Add", step, g.op("MatMul", g.op("Mul", cont, h), w_hh)))
        hidden_states.append(h)
    stacked, finals = _outputs(layer, g, num, hidden_states, [h])
    b_o = g.constant(layer.blobs[-1].data_readonly(), "b_o")
    return [g.op("Tanh", g.op("Add", g.op("MatMul", stacked, w_ho), b_o))] + finals


@onnx_translation("LSTM")
def lstm(layer, g):
    num = g.bottom_shapes[0][1]
    w_hc = _transposed(g, layer, -1, "W_hc")  # Caffe's blobs: W_xc, b_c, [W_xc_static], W_hc
    gate_sizes, zero = g.ints([layer.hidden] * 4, "gate_sizes"), g.constant(0, "zero")
    h, c = _initial_states(layer, g, num)
    hidden_states = []
    for step, cont in zip(_step_inputs(layer, g, num), _step_conts(layer, g, num)):
        gates = g.op("Add", step, g.op("MatMul", g.op("Mul", cont, h), w_hc))
        c, h = _lstm_unit(g, c, gates, cont, gate_sizes, zero)
        hidden_states.append(h)
    stacked, finals = _outputs(layer, g, num, hidden_states, [h, c])
    return [stacked] + finals
