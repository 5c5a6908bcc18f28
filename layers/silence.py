"""Silence: consumes blobs nobody else reads, so they are not net outputs; their gradient is zero."""
from nvcaffe_py.conformance import Case
from nvcaffe_py.layer import Layer
from nvcaffe_py.registry import register_layer


@register_layer("Silence")
class SilenceLayer(Layer):
    min_bottom = 1
    exact_num_top = 0
    cases = [Case("", [(2, 3), (4,)], tops=0)]

    def forward_cpu(self, bottom, top):
        pass

    def backward_cpu(self, top, propagate_down, bottom):
        for b, need in zip(bottom, propagate_down):
            if need:
                b.diff[...] = 0
