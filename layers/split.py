"""Split: one input read by several layers (the Net inserts these automatically). Every top shares
the bottom's data; each keeps its own diff, and backward sums them into the bottom's."""
from nvcaffe_py.layer import Layer
from nvcaffe_py.registry import register_layer


@register_layer("Split")
class SplitLayer(Layer):
    exact_num_bottom = 1
    min_top = 1

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
        diff[...] = top[0].diff
        for t in top[1:]:
            diff += t.diff

    forward_gpu = forward_cpu  # the tops share the bottom's data: nothing to do

    def backward_gpu(self, top, propagate_down, bottom):
        from nvcaffe_py.backends.cuda import math_functions, memory

        if not propagate_down[0]:
            return
        diff = bottom[0].gpu_diff
        memory.copy(diff, top[0].gpu_diff_readonly())
        for t in top[1:]:
            math_functions.axpy(1.0, t.gpu_diff_readonly(), diff)
