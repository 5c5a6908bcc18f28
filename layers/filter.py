"""Filter: the last bottom is a selector of shape (N,) or (N, 1, ...); each other bottom is
forwarded with only the items (along axis 0) whose selector is non-zero, one top per bottom."""
import numpy as np

from nvcaffe_py.conformance import Case, fixed
from nvcaffe_py.layer import Layer
from nvcaffe_py.registry import register_layer


@register_layer("Filter")
class FilterLayer(Layer):
    min_bottom = 2
    min_top = 1
    reshape_reads_data = True  # the selector's values decide the tops' shapes
    cases = [Case("", [(5, 2, 3), (5, 4), fixed(np.array([0, 1, 0, 2.5, 1]).reshape(5, 1, 1, 1))], tops=2),
             Case("", [(4, 3), fixed([1, 1, 0, 1])]),
             Case("", [(3, 2), fixed([0, 0, 0])])]  # selects nothing

    def allow_force_backward(self, bottom_index):
        return bottom_index != self.selector_index  # the selector has no gradient

    def setup(self, bottom, top):
        if len(top) != len(bottom) - 1:
            raise self.error(f"needs one top per filtered bottom: {len(bottom) - 1} bottoms "
                             f"(besides the selector), {len(top)} tops")
        self.selector_index = len(bottom) - 1
        self.first_reshape = True
        self.indices = np.zeros(0, np.int64)

    def reshape(self, bottom, top):
        selector = bottom[-1]
        if selector.num_axes == 0 or any(d != 1 for d in selector.shape[1:]):
            raise self.error(f"the selector (last bottom) must have shape (N,) or (N, 1, ...), got {selector.shape}")
        for i, b in enumerate(bottom[:-1]):
            if b.num_axes == 0 or b.shape[0] != selector.shape[0]:
                raise self.error(f"bottom[{i}] of shape {b.shape} and the selector of shape {selector.shape} "
                                 f"must agree on axis 0")
        self.indices = np.flatnonzero(selector.data_readonly().reshape(-1))
        # At set-up the selector holds no data yet: keep the whole batch so later layers set up
        # on a non-empty shape (as Caffe); every reshape before a forward uses the real count.
        num = selector.shape[0] if self.first_reshape else len(self.indices)
        self.first_reshape = False
        for t, b in zip(top, bottom):
            t.reshape((num,) + b.shape[1:])

    def forward_cpu(self, bottom, top):
        for t, b in zip(top, bottom):
            np.take(b.data_readonly(), self.indices, axis=0, out=t.data)

    def backward_cpu(self, top, propagate_down, bottom):
        if propagate_down[-1]:
            raise self.error("cannot backpropagate to the selector (last bottom); set propagate_down: false for it")
        for t, b, need in zip(top, bottom, propagate_down):
            if need:
                diff = b.diff
                diff[...] = 0
                diff[self.indices] = t.diff_readonly()
