"""InnerProduct (fully connected), as Caffe's InnerProductLayer.

The bottom is read as a matrix (M, K): M = the count of the axes before `axis`, K = the count of
`axis` and after. The weights are (N, K), or (K, N) with `transpose`; top = bottom W^T + bias, of
shape bottom.shape[:axis] + (N,).

Each product is split among the CPU threads (nvcaffe_py/backends/cpu/threads.py) along an axis
of the weights (output units for forward and the weight gradient, inputs for the data gradient),
so that each thread reads only its share of the weights. The GPU half is inner_product_gpu.py.
"""
import numpy as np

from nvcaffe_py.backends.cpu import onednn, threads
from nvcaffe_py.backends.cpu.tuning import GRADIENT_BLOCK_BYTES, MIN_PART_MULTIPLY_ADDS
from nvcaffe_py.conformance import Case
from nvcaffe_py.layer import Layer
from nvcaffe_py.registry import register_layer

from .inner_product_gpu import InnerProductGPU

FILLERS = 'weight_filler { type: "gaussian" std: 0.3 } bias_filler { type: "gaussian" std: 0.3 }'


@register_layer("InnerProduct")
class InnerProductLayer(Layer):
    exact_num_bottom = 1
    exact_num_top = 1
    cases = [
        Case(f"inner_product_param {{ num_output: 7 {FILLERS} }}", [(5, 3, 2, 3)]),
        Case(f"inner_product_param {{ num_output: 3 transpose: true axis: 2 {FILLERS} }}", [(2, 3, 4, 5)]),
        Case(f"inner_product_param {{ num_output: 4 axis: -1 {FILLERS} }}", [(2, 3, 5)]),
        Case(f"inner_product_param {{ num_output: 5 axis: 0 bias_term: false {FILLERS} }}", [(2, 3, 2)]),
        Case(f"inner_product_param {{ num_output: 4 transpose: true bias_term: false {FILLERS} }}", [(6, 5)]),
    ]

    def setup(self, bottom, top):
        param = self.layer_param.inner_product_param
        self.num_output = param.num_output
        if self.num_output <= 0:
            raise self.error("num_output must be positive")
        self.bias_term = param.bias_term
        self.transpose = param.transpose
        self.axis = self.canonical_axis(bottom[0], param.axis)
        self.inputs = bottom[0].count(self.axis)
        if self.inputs == 0:
            raise self.error(f"the input has 0 values per row from axis {self.axis} on (shape {bottom[0].shape})")
        weight_shape = (self.inputs, self.num_output) if self.transpose else (self.num_output, self.inputs)
        specs = [("weight", weight_shape, param.weight_filler)]
        if self.bias_term:
            specs.append(("bias", (self.num_output,), param.bias_filler))
        self.init_param_blobs(specs)

    def reshape(self, bottom, top):
        axis = self.canonical_axis(bottom[0], self.layer_param.inner_product_param.axis)
        inputs = bottom[0].count(axis)
        if inputs != self.inputs:
            raise self.error(f"bottom has {inputs} inputs per row from axis {axis} on; "
                             f"the weights were made for {self.inputs}")
        self.axis = axis
        self.rows = bottom[0].count(0, axis)
        top[0].reshape(bottom[0].shape[:axis] + (self.num_output,))

    _onednn = None  # oneDNN's primitives by input layout, once forward_only allowed them

    def forward_only(self):
        """oneDNN may run the forward (onednn_operation), unless an engine says CAFFE."""
        if self._onednn is None and onednn.chosen_for(self):
            self._onednn = {}

    def onednn_operation(self, source, dims, negative_slope):
        """oneDNN's product reading `source` (a layout of the bottom's `dims`, its axes after the
        first flattened as Caffe flattens them) with a ReLU after it; None unless `axis` is 1."""
        if self._onednn is None or self.axis != 1:
            return None
        key = (onednn.library().layout(source), negative_slope)
        return onednn.cached(self._onednn, key, onednn.InnerProduct, source, dims, self.num_output, self.transpose,
                             negative_slope)

    def onednn_parameters(self):
        return onednn.layer_parameters(self)

    def _weight_nk(self, array):
        """The (N, K) view of a weight-shaped array (a transposed view when `transpose`)."""
        return array.T if self.transpose else array

    @staticmethod
    def _parts(length, multiply_adds_per_item):
        """Slices of a weight axis of `length` for the CPU threads."""
        return threads.parts(length, multiply_adds_per_item, MIN_PART_MULTIPLY_ADDS)

    def forward_cpu(self, bottom, top):
        x = bottom[0].data_readonly().reshape(self.rows, self.inputs)
        y = top[0].data.reshape(self.rows, self.num_output)
        weights = self._weight_nk(self.blobs[0].data_readonly())
        bias = self.blobs[1].data_readonly() if self.bias_term else None

        def outputs(part):
            np.matmul(x, weights[part].T, out=y[:, part])
            if bias is not None:
                y[:, part] += bias[part]

        threads.run(outputs, self._parts(self.num_output, self.rows * self.inputs))

    def backward_cpu(self, top, propagate_down, bottom):
        dy = top[0].diff_readonly().reshape(self.rows, self.num_output)
        if self.param_gradient_wanted(0):
            x = bottom[0].data_readonly().reshape(self.rows, self.inputs)
            grad = self._weight_nk(self.blobs[0].diff)
            step = max(1, GRADIENT_BLOCK_BYTES // (self.inputs * x.itemsize))

            def weight_gradient(part):
                for start in range(part.start, part.stop, step):
                    block = slice(start, min(start + step, part.stop))
                    grad[block] += dy[:, block].T @ x

            threads.run(weight_gradient, self._parts(self.num_output, self.rows * self.inputs))
        if self.bias_term and self.param_gradient_wanted(1):
            self.blobs[1].diff[...] += dy.sum(axis=0)
        if propagate_down[0]:
            dx = bottom[0].diff.reshape(self.rows, self.inputs)
            weights = self._weight_nk(self.blobs[0].data_readonly())
            threads.run(lambda part: np.matmul(dy, weights[:, part], out=dx[:, part]),
                         self._parts(self.inputs, self.rows * self.num_output))

    def multiply_adds(self, bottom, top):
        return top[0].count() * self.inputs

    def make_gpu(self):
        return InnerProductGPU(layer=self, inputs=self.inputs, num_output=self.num_output, bias_term=self.bias_term,
                               transpose=self.transpose)
