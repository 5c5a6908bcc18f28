"""Split: one input read by several layers (the Net inserts these automatically). Every top shares
the bottom's data; each keeps its own diff, and backward sums them into the bottom's (on the
device, split_gpu.py)."""
from nvcaffe_py.conformance import Case
from nvcaffe_py.layer import Layer
from nvcaffe_py.registry import register_layer

from .split_gpu import SplitGPU


@register_layer("Split")
class SplitLayer(Layer):
    exact_num_bottom = 1
    min_top = 1
    cases = [Case("", [(3, 4)], tops=3),
             Case("", [(2, 3, 2)], tops=2),
             Case("", [(5,)])]

    def reshape(self, bottom, top):
        for t in top:
            if t is bottom[0]:
                raise self.error("does not allow in-place computation (give each top its own name)")
            t.reshape(bottom[0].shape)
            t.share_data(bottom[0])  # again each time: a bottom that grows gets new buffers

    def forward_cpu(self, bottom, top):
        pass

    def backward_cpu(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        diff = bottom[0].diff
        diff[...] = top[0].diff_readonly()
        for t in top[1:]:
            diff += t.diff_readonly()

    def make_gpu(self):
        return SplitGPU()
