"""The GPU halves of Bias and Scale: math_functions' per-channel broadcast (channel_affine) and
per-channel sums (channel_reduce) over bottom[0] viewed as (outer, dim, inner), as scale_bias.py.
They take the operand, the broadcast dims and every decision (which gradients, in place or not)
from the layer's public methods, so that both halves do the same."""
from nvcaffe_py.backends.cuda import memory
from nvcaffe_py.backends.cuda import math_functions as mf
from nvcaffe_py.backends.cuda.gpu_half import DeviceBuffer, GPUHalf


def _reduce_into(blob, dy, dims, accumulate, x=None):
    """blob.diff (+)= per-channel sums of dy (* x): parameter diffs accumulate, bottoms' do not."""
    outer, dim, inner = dims
    mf.channel_reduce(dy, outer, dim, inner, blob.gpu_diff, b=x, beta=1.0 if accumulate else 0.0)


class BiasGPU(GPUHalf):
    def __init__(self, *, layer):
        self.layer = layer

    def forward(self, bottom, top):
        _, dim, inner = self.layer.dims
        mf.channel_affine(bottom[0].gpu_data_readonly(), dim, inner,
                          bias=self.layer.operand(bottom).gpu_data_readonly(), out=top[0].gpu_data)

    def backward(self, top, propagate_down, bottom):
        layer = self.layer
        dy = top[0].gpu_diff_readonly()
        if layer.operand_gradient_wanted(bottom, propagate_down):
            _reduce_into(layer.operand(bottom), dy, layer.dims, accumulate=layer.operand_is_param(bottom))
        if propagate_down[0] and not layer.in_place(bottom, top):
            memory.copy(bottom[0].gpu_diff, dy)


class ScaleGPU(GPUHalf):
    def __init__(self, *, layer):
        self.layer = layer
        self.saved_input = DeviceBuffer(layer.dtype)  # in place, backward still needs what forward overwrites

    def forward(self, bottom, top):
        layer = self.layer
        _, dim, inner = layer.dims
        x = bottom[0].gpu_data_readonly()
        if layer.in_place(bottom, top):
            memory.copy(self.saved_input.get(x.size), x)
        y = top[0].gpu_data
        mf.channel_affine(x, dim, inner, scale=layer.operand(bottom).gpu_data_readonly(), out=y)
        if layer.bias_index is not None:
            _, bias_dim, bias_inner = layer.bias_dims
            mf.channel_affine(y, bias_dim, bias_inner, bias=layer.blobs[layer.bias_index].gpu_data_readonly())

    def backward(self, top, propagate_down, bottom):
        layer = self.layer
        dy = top[0].gpu_diff_readonly()
        if layer.bias_gradient_wanted():
            _reduce_into(layer.blobs[layer.bias_index], dy, layer.bias_dims, accumulate=True)
        if layer.operand_gradient_wanted(bottom, propagate_down):
            x = self.saved_input.get(dy.size) if layer.in_place(bottom, top) else bottom[0].gpu_data_readonly()
            _reduce_into(layer.operand(bottom), dy, layer.dims, accumulate=layer.operand_is_param(bottom), x=x)
        if propagate_down[0]:
            # After the scale gradient: in place, bottom's diff is top's.
            _, dim, inner = layer.dims
            mf.channel_affine(dy, dim, inner, scale=layer.operand(bottom).gpu_data_readonly(), out=bottom[0].gpu_diff)
