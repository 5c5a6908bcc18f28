"""Recurrent layers, as Caffe's RecurrentLayer family: RNN, LSTM, and the LSTMUnit step.

Bottoms: x (T, N, ...) — T timesteps of N independent streams — and cont (T, N), the sequence
continuation indicators: cont[t, n] = 0 starts a new sequence in stream n at step t (the hidden
state from step t-1 is multiplied by cont[t, n] before use). Optionally x_static (N, ...), an
input seen at every step, and with `recurrent_param { expose_hidden: true }` the initial hidden
state as further bottoms (h_0, and c_0 for LSTM, each (1, N, num_output)), whose final values
then come out as further tops. Top: the outputs of all steps, (T, N, num_output).

Without expose_hidden each forward starts from the state the previous forward ended in (zeros
at first), as Caffe's unrolled net does, so a long sequence can be fed T steps at a time with
cont = 0 only where a sequence really starts; gradients do not flow across forwards.

Caffe builds an unrolled net of InnerProduct, Eltwise/Scale, TanH and LSTMUnit layers; this
computes the same thing directly, keeping Caffe's parameter blobs, in Caffe's order and shapes,
so that .caffemodel weights load:
  RNN:  W_xh (H, D), b_h (H), [W_xh_static (H, S)], W_hh (H, H), W_ho (H, H), b_o (H)
        h_t = tanh(W_hh (cont_t h_{t-1}) + W_xh x_t + b_h [+ W_xh_static x_static]),
        o_t = tanh(W_ho h_t + b_o)
  LSTM: W_xc (4H, D), b_c (4H), [W_xc_static (4H, S)], W_hc (4H, H)
        gates_t = W_hc (cont_t h_{t-1}) + W_xc x_t + b_c [+ W_xc_static x_static], then LSTMUnit.
"""
import numpy as np

from nvcaffe_py.conformance import Case, fixed
from nvcaffe_py.layer import Layer
from nvcaffe_py.registry import register_layer

from .neuron import sigmoid


def lstm_unit_forward(c_prev, gates, cont):
    """Caffe's LSTMUnit on (N, H) / (N, 4H) / (N,) arrays: gates in the order i, f, o, g; the
    forget gate is 0 where cont is 0 (not cont * sigmoid, which is NaN for an infinite input).
    Returns (c, h, cache for `lstm_unit_backward`)."""
    hidden = c_prev.shape[1]
    i = sigmoid(gates[:, :hidden])
    f = np.where(cont[:, None] == 0, 0, cont[:, None] * sigmoid(gates[:, hidden:2 * hidden]))
    o = sigmoid(gates[:, 2 * hidden:3 * hidden])
    g = np.tanh(gates[:, 3 * hidden:])
    c = f * c_prev + i * g
    tanh_c = np.tanh(c)
    return c, o * tanh_c, (c_prev, i, f, o, g, tanh_c)


def lstm_unit_backward(c_diff, h_diff, cache):
    """(c_prev diff, gates diff) from the diffs of c and h, as Caffe's LSTMUnit backward (which
    takes the forget gate's derivative as f (1 - f), cont included)."""
    c_prev, i, f, o, g, tanh_c = cache
    c_term = c_diff + h_diff * o * (1 - tanh_c * tanh_c)
    gates_diff = np.concatenate([
        c_term * g * i * (1 - i),
        c_term * c_prev * f * (1 - f),
        h_diff * tanh_c * o * (1 - o),
        c_term * i * (1 - g * g)], axis=1)
    return c_term * f, gates_diff


@register_layer("LSTMUnit")
class LSTMUnitLayer(Layer):
    """One LSTM step: bottoms c_prev (1, N, H), gates (1, N, 4H), cont (1, N); tops c, h (1, N, H)."""
    exact_num_bottom = 3
    exact_num_top = 2
    cases = [Case("", [(1, 3, 2), (1, 3, 8), fixed([[1, 0, 1]])], tops=2)]

    def allow_force_backward(self, bottom_index):
        return bottom_index != 2  # no gradient for the sequence indicators

    def reshape(self, bottom, top):
        c_prev, gates, cont = bottom
        num = c_prev.shape[1] if c_prev.num_axes == 3 else None
        for i, (blob, axes) in enumerate(zip(bottom, (3, 3, 2))):
            if blob.num_axes != axes or blob.shape[0] != 1 or blob.shape[1] != num:
                raise self.error(f"bottom[{i}] must be (1, N{', ...' if axes == 3 else ''}) with the N of "
                                 f"bottom[0] {c_prev.shape}, got {blob.shape}")
        if gates.shape[2] != 4 * c_prev.shape[2]:
            raise self.error(f"bottom[1] needs 4 x {c_prev.shape[2]} gate inputs per stream, got {gates.shape[2]}")
        top[0].reshape_like(c_prev)
        top[1].reshape_like(c_prev)

    def forward_cpu(self, bottom, top):
        c_prev, gates, cont = (blob.data_readonly()[0] for blob in bottom)
        c, h, self._cache = lstm_unit_forward(c_prev, gates, cont)
        top[0].data[0] = c
        top[1].data[0] = h

    def backward_cpu(self, top, propagate_down, bottom):
        if propagate_down[2]:
            raise self.error("cannot backpropagate to the sequence indicators (bottom[2])")
        c_prev_diff, gates_diff = lstm_unit_backward(top[0].diff_readonly()[0], top[1].diff_readonly()[0],
                                                     self._cache)
        if propagate_down[0]:
            bottom[0].diff[0] = c_prev_diff
        if propagate_down[1]:
            bottom[1].diff[0] = gates_diff


def recurrent_cases(num_states):
    """The conformance cases of RNN (one state) and LSTM (two): with and without the static
    input, and with expose_hidden. Without it, every stream starts a sequence at step 0: the
    state one forward carries over would otherwise differ between the checks' forwards."""
    uniform = 'type: "uniform" min: -0.5 max: 0.5'
    fillers = f"weight_filler {{ {uniform} }} bias_filler {{ {uniform} }}"
    carried = f"recurrent_param {{ num_output: 3 {fillers} }}"
    exposed = f"recurrent_param {{ num_output: 3 expose_hidden: true {fillers} }}"
    starting = fixed([[0, 0], [1, 1], [1, 0]])  # stream 1 starts a second sequence at step 2
    continuing = fixed([[1, 0], [1, 1], [0, 1]])  # stream 0 goes on from h_0 (and c_0); stream 1 does not
    x, static, initial = (3, 2, 4), (2, 2, 1), [(1, 2, 3)] * num_states
    return [Case(carried, [x, starting]),
            Case(carried, [(3, 2, 2, 2), starting, static]),
            Case(exposed, [x, continuing, *initial], tops=1 + num_states),
            Case(exposed, [x, continuing, static, *initial], tops=1 + num_states)]


class RecurrentLayer(Layer):
    """What RNN and LSTM share: the bottoms and tops, the input transforms, the carried state.

    A subclass names its recurrent states (`states`), lists its parameter blobs after the input
    ones (`recurrent_params`), and runs the steps: `steps(inputs, cont, state)` returns the
    outputs (T, N, H), the final state and a cache; `steps_backward(output_diff, final_diff,
    cont, cache)` returns the diff of each step's input (T, N, gates) and of the initial state,
    accumulating its own parameter diffs."""
    min_bottom = 2
    min_top = 1
    states = ()
    gate_multiple = 1  # rows of the input transform per output (LSTM: 4 gates)

    def allow_force_backward(self, bottom_index):
        return bottom_index != 1

    def setup(self, bottom, top):
        param = self.layer_param.recurrent_param
        self.hidden = param.num_output
        if self.hidden <= 0:
            raise self.error("recurrent_param.num_output must be positive")
        self.expose_hidden = param.expose_hidden
        exposed = len(self.states) if self.expose_hidden else 0
        if len(bottom) not in (2 + exposed, 3 + exposed):
            wanted = f"x, cont, [x_static]{''.join(', ' + s + '_0' for s in self.states) if exposed else ''}"
            raise self.error(f"takes the bottoms {wanted}; got {len(bottom)}")
        if len(top) != 1 + exposed:
            raise self.error(f"has {1 + exposed} tops (outputs{', final states' if exposed else ''}), got {len(top)}")
        self.static_input = len(bottom) == 3 + exposed
        if bottom[0].num_axes < 2:
            raise self.error(f"bottom[0] must be (timesteps, streams, ...), got {bottom[0].shape}")
        self.timesteps = bottom[0].shape[0]
        inputs = bottom[0].count(2)
        rows = self.gate_multiple * self.hidden
        weight, bias = param.weight_filler, param.bias_filler
        specs = [("input weights", (rows, inputs), weight), ("input bias", (rows,), bias)]
        if self.static_input:
            specs.append(("static input weights", (rows, bottom[2].count(1)), weight))
        self.init_param_blobs(specs + self.recurrent_params(weight, bias))
        self.state = None

    def recurrent_params(self, weight_filler, bias_filler):
        raise NotImplementedError

    def multiply_adds(self, bottom, top):
        # Every weight matrix is applied at every step to every stream, but for the static input's,
        # which is applied once per stream.
        matrices = [blob.count() for blob in self.blobs if blob.num_axes == 2]
        static = matrices.pop(1) if self.static_input else 0
        return bottom[0].shape[1] * (self.timesteps * sum(matrices) + static)

    def reshape(self, bottom, top):
        x, cont = bottom[0], bottom[1]
        if x.num_axes < 2 or x.shape[0] != self.timesteps:
            raise self.error(f"bottom[0] must keep {self.timesteps} timesteps (timesteps, streams, ...), got {x.shape}")
        num = x.shape[1]
        if cont.shape != (self.timesteps, num):
            raise self.error(f"bottom[1] (cont) must be (timesteps, streams) = {(self.timesteps, num)}, got {cont.shape}")
        if self.static_input and (bottom[2].num_axes < 1 or bottom[2].shape[0] != num):
            raise self.error(f"bottom[2] (x_static) must have {num} streams first, got {bottom[2].shape}")
        for name, blob in zip(self.states, bottom[len(bottom) - len(self.states):] if self.expose_hidden else ()):
            if blob.shape != (1, num, self.hidden):
                raise self.error(f"{name}_0 must be (1, {num}, {self.hidden}), got {blob.shape}")
        top[0].reshape(self.timesteps, num, self.hidden)
        for blob in top[1:]:
            blob.reshape(1, num, self.hidden)

    def _inputs(self, bottom):
        """Each step's input transform, W x_t + b (+ W_static x_static): (T, N, rows)."""
        x = bottom[0].data_readonly().reshape(self.timesteps, bottom[0].shape[1], -1)
        inputs = x @ self.blobs[0].data_readonly().T + self.blobs[1].data_readonly()
        if self.static_input:
            static = bottom[2].data_readonly().reshape(bottom[2].shape[0], -1)
            inputs += static @ self.blobs[2].data_readonly().T
        return inputs

    def _initial_state(self, bottom, num):
        if self.expose_hidden:
            return [b.data_readonly()[0] for b in bottom[len(bottom) - len(self.states):]]
        if self.state is None or self.state[0].shape != (num, self.hidden):
            self.state = [np.zeros((num, self.hidden), self.dtype) for _ in self.states]
        return self.state

    def forward_cpu(self, bottom, top):
        num = bottom[0].shape[1]
        outputs, final, self._cache = self.steps(self._inputs(bottom), bottom[1].data_readonly(),
                                                 self._initial_state(bottom, num))
        top[0].data[...] = outputs
        if self.expose_hidden:
            for blob, value in zip(top[1:], final):
                blob.data[0] = value
        else:
            self.state = [value.copy() for value in final]

    def backward_cpu(self, top, propagate_down, bottom):
        if propagate_down[1]:
            raise self.error("cannot backpropagate to the sequence indicators (bottom[1])")
        num = bottom[0].shape[1]
        final_diff = ([blob.diff_readonly()[0] for blob in top[1:]] if self.expose_hidden
                      else [np.zeros((num, self.hidden), self.dtype) for _ in self.states])
        input_diff, initial_diff = self.steps_backward(top[0].diff_readonly(), final_diff, bottom[1].data_readonly(),
                                                       self._cache)
        x = bottom[0].data_readonly().reshape(self.timesteps, num, -1)
        flat_diff = input_diff.reshape(-1, input_diff.shape[2])
        if self.param_gradient_wanted(0):
            self.blobs[0].diff[...] += flat_diff.T @ x.reshape(-1, x.shape[2])
        if self.param_gradient_wanted(1):
            self.blobs[1].diff[...] += flat_diff.sum(axis=0)
        if propagate_down[0]:
            bottom[0].diff[...] = (input_diff @ self.blobs[0].data_readonly()).reshape(bottom[0].shape)
        if self.static_input:
            static = bottom[2].data_readonly().reshape(num, -1)
            step_sum = input_diff.sum(axis=0)
            if self.param_gradient_wanted(2):
                self.blobs[2].diff[...] += step_sum.T @ static
            if propagate_down[2]:
                bottom[2].diff[...] = (step_sum @ self.blobs[2].data_readonly()).reshape(bottom[2].shape)
        if self.expose_hidden:
            first = len(bottom) - len(self.states)
            for i, diff in enumerate(initial_diff):
                if propagate_down[first + i]:
                    bottom[first + i].diff[0] = diff

    @property
    def _first_recurrent_param(self) -> int:
        """The index of the first blob after the input transform's (2, or 3 with a static input)."""
        return 3 if self.static_input else 2

    @property
    def _recurrent_blobs(self):
        return self.blobs[self._first_recurrent_param:]

    def _recurrent_values(self):
        return [blob.data_readonly() for blob in self._recurrent_blobs]

    def _recurrent_gradient_wanted(self, k) -> bool:
        return self.param_gradient_wanted(self._first_recurrent_param + k)

    def steps(self, inputs, cont, state):
        raise NotImplementedError

    def steps_backward(self, output_diff, final_diff, cont, cache):
        raise NotImplementedError


@register_layer("RNN")
class RNNLayer(RecurrentLayer):
    states = ("h",)
    cases = recurrent_cases(len(states))

    def recurrent_params(self, weight_filler, bias_filler):
        h = self.hidden
        return [("W_hh", (h, h), weight_filler), ("W_ho", (h, h), weight_filler), ("b_o", (h,), bias_filler)]

    def steps(self, inputs, cont, state):
        w_hh, w_ho, b_o = self._recurrent_values()
        (h,) = state
        conted, hidden = [], []
        for t in range(self.timesteps):
            conted.append(cont[t][:, None] * h)
            h = np.tanh(inputs[t] + conted[-1] @ w_hh.T)
            hidden.append(h)
        hidden = np.stack(hidden)
        outputs = np.tanh(hidden @ w_ho.T + b_o)
        return outputs, [h], (np.stack(conted), hidden, outputs)

    def steps_backward(self, output_diff, final_diff, cont, cache):
        conted, hidden, outputs = cache
        w_hh, w_ho, _ = self._recurrent_values()
        w_hh_blob, w_ho_blob, b_o_blob = self._recurrent_blobs
        pre_output = output_diff * (1 - outputs * outputs)
        if self._recurrent_gradient_wanted(1):
            w_ho_blob.diff[...] += pre_output.reshape(-1, self.hidden).T @ hidden.reshape(-1, self.hidden)
        if self._recurrent_gradient_wanted(2):
            b_o_blob.diff[...] += pre_output.reshape(-1, self.hidden).sum(axis=0)
        hidden_diff = pre_output @ w_ho
        hidden_diff[-1] += final_diff[0]
        input_diff = np.empty_like(hidden)
        for t in reversed(range(self.timesteps)):
            input_diff[t] = hidden_diff[t] * (1 - hidden[t] * hidden[t])
            conted_diff = input_diff[t] @ w_hh
            if t > 0:
                hidden_diff[t - 1] += cont[t][:, None] * conted_diff
            else:
                initial = cont[0][:, None] * conted_diff
        if self._recurrent_gradient_wanted(0):
            w_hh_blob.diff[...] += input_diff.reshape(-1, self.hidden).T @ conted.reshape(-1, self.hidden)
        return input_diff, [initial]


@register_layer("LSTM")
class LSTMLayer(RecurrentLayer):
    states = ("h", "c")
    gate_multiple = 4
    cases = recurrent_cases(len(states))

    def recurrent_params(self, weight_filler, bias_filler):
        return [("W_hc", (4 * self.hidden, self.hidden), weight_filler)]

    def steps(self, inputs, cont, state):
        (w_hc,) = self._recurrent_values()
        h, c = state
        conted, units, hidden = [], [], []
        for t in range(self.timesteps):
            conted.append(cont[t][:, None] * h)
            c, h, unit = lstm_unit_forward(c, inputs[t] + conted[-1] @ w_hc.T, cont[t])
            units.append(unit)
            hidden.append(h)
        return np.stack(hidden), [h, c], (np.stack(conted), units)

    def steps_backward(self, output_diff, final_diff, cont, cache):
        conted, units = cache
        (w_hc,) = self._recurrent_values()
        h_diff, c_diff = final_diff[0].copy(), final_diff[1].copy()
        gates_diff = np.empty((self.timesteps,) + conted.shape[1:2] + (4 * self.hidden,), conted.dtype)
        for t in reversed(range(self.timesteps)):
            c_diff, gates_diff[t] = lstm_unit_backward(c_diff, h_diff + output_diff[t], units[t])
            h_diff = cont[t][:, None] * (gates_diff[t] @ w_hc)
        if self._recurrent_gradient_wanted(0):
            self._recurrent_blobs[0].diff[...] += (gates_diff.reshape(-1, 4 * self.hidden).T
                                                   @ conted.reshape(-1, self.hidden))
        return gates_diff, [h_diff, c_diff]
