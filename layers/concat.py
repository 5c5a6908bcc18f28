"""Concat: joins its inputs along one axis (`axis`, or the legacy `concat_dim`). A single input is
shared, not copied. The GPU half is concat_gpu.py with concat.cu."""
import numpy as np

from nvcaffe_py.backends.cpu import onednn
from nvcaffe_py.backends.cuda.gpu_half import ViewOnly
from nvcaffe_py.conformance import Case
from nvcaffe_py.layer import Layer
from nvcaffe_py.registry import register_layer

from .concat_gpu import ConcatGPU
from .reshape import alias


def join_axis(layer, blob, param, legacy_field: str) -> int:
    """The axis of Concat/Slice: `axis` (negative counts from the end) or the legacy, unsigned
    `concat_dim`/`slice_dim`; Caffe refuses both at once."""
    if param.HasField("axis") and param.HasField(legacy_field):
        raise layer.error(f"give either axis or {legacy_field}, not both")
    if param.HasField(legacy_field):
        dim = getattr(param, legacy_field)
        if dim >= blob.num_axes:
            raise layer.error(f"{legacy_field} {dim} out of range for input shape {blob.shape}")
        return dim
    return layer.canonical_axis(blob, param.axis)


def boundaries(sizes) -> list:
    """Split points along the joined axis for parts of these sizes (np.split's indices)."""
    return list(np.cumsum(sizes)[:-1])


@register_layer("Concat")
class ConcatLayer(Layer):
    min_bottom = 1
    exact_num_top = 1
    cases = [
        Case("concat_param { axis: 0 }", [(2, 3, 4), (3, 3, 4), (4, 3, 4)]),
        Case("concat_param { axis: 1 }", [(2, 3, 4), (2, 4, 4), (2, 5, 4)]),
        Case("concat_param { axis: 2 }", [(2, 3, 4), (2, 3, 5), (2, 3, 6)]),
        Case("concat_param { axis: -1 }", [(2, 3, 1), (2, 3, 4)]),
        Case("concat_param { concat_dim: 0 }", [(2, 2, 3), (1, 2, 3)]),
        Case("", [(2, 3)]),  # a single input: the top shares it
    ]

    _onednn = None  # oneDNN's primitives by the inputs' layouts, once forward_only allowed them

    def setup(self, bottom, top):
        self.shares_its_input = len(bottom) == 1

    def forward_only(self):
        """oneDNN may join the inputs (onednn_concat), unless an engine says CAFFE."""
        if self._onednn is None and not self.shares_its_input and onednn.chosen_for(self):
            self._onednn = {}

    def onednn_concat(self, sources, dims):
        """oneDNN's concat of `sources` (layouts of the bottoms' `dims`) along `axis`, into the
        layout it chooses; None where oneDNN is not to run it."""
        if self._onednn is None:
            return None
        layout = onednn.library().layout
        key = tuple(layout(md) for md in sources)
        return onednn.cached(self._onednn, key, onednn.Concat, sources, dims, self.axis)

    def reshape(self, bottom, top):
        self.axis = axis = join_axis(self, bottom[0], self.layer_param.concat_param, "concat_dim")
        first = bottom[0].shape
        shape = list(first)
        for i, b in enumerate(bottom[1:], 1):
            if len(b.shape) != len(first) or any(b.shape[j] != first[j] for j in range(len(first)) if j != axis):
                raise self.error(f"inputs must match except on axis {axis}: bottom[0] is {first}, "
                                 f"bottom[{i}] is {b.shape}")
            shape[axis] += b.shape[axis]
        top[0].reshape(shape)
        if self.shares_its_input:
            alias(top[0], bottom[0])

    def forward_cpu(self, bottom, top):
        if not self.shares_its_input:
            np.concatenate([b.data_readonly() for b in bottom], axis=self.axis, out=top[0].data)

    def backward_cpu(self, top, propagate_down, bottom):
        if self.shares_its_input:
            return
        parts = np.split(top[0].diff_readonly(), boundaries([b.shape[self.axis] for b in bottom]), axis=self.axis)
        for b, part, need in zip(bottom, parts, propagate_down):
            if need:
                b.diff[...] = part

    def make_gpu(self):
        return ViewOnly() if self.shares_its_input else ConcatGPU(layer=self)
