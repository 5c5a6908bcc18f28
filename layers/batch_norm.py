"""BatchNorm: normalize each channel to zero mean and unit variance, as Caffe's BatchNormLayer.

Three blobs hold running statistics, not learnable weights: the sum of means, the sum of
variances, and the scale factor by which both are divided (the decayed count of updates). Each
training forward does  s = s * f + 1,  mean_sum = mean + f * mean_sum,  var_sum = m/(m-1) * var
+ f * var_sum  (f = moving_average_fraction, m = elements per channel). With use_global_stats
(default: the TEST phase) the stored statistics normalize instead of the batch's own. The
affine part is a separate Scale layer, as in Caffe, or, with NVCaffe's scale_bias (implied by a
scale_filler or bias_filler), learned blobs 3 and 4: y = x_norm * scale + bias (fillers default
to 1 and 0; their param specs are the user's, default lr_mult 1).
"""
import numpy as np

from nvcaffe_py.conformance import Case, normal
from nvcaffe_py.layer import Layer
from nvcaffe_py.proto import caffe_pb2
from nvcaffe_py.registry import register_layer

from .batch_norm_gpu import BatchNormGPU


def _stored_statistics(layer, bottoms):
    """Running sums as after a few updates (scale factor 2.5), for the use_global_stats cases."""
    channels = layer.blobs[0].shape[0]
    layer.blobs[0].data[...] = np.linspace(-1.0, 2.0, channels)
    layer.blobs[1].data[...] = np.linspace(0.5, 4.0, channels)
    layer.blobs[2].data[...] = 2.5




_SCALE_BIAS = ('scale_filler { type: "uniform" min: 0.5 max: 2 } bias_filler { type: "gaussian" std: 1 }')


@register_layer("BatchNorm")
class BatchNormLayer(Layer):
    exact_num_bottom = 1
    exact_num_top = 1
    in_place_capable = True
    cases = [
        Case("batch_norm_param { moving_average_fraction: 0.9 }", [normal((4, 3, 5, 2), scale=3, shift=1)]),
        Case("batch_norm_param { moving_average_fraction: 0.5 eps: 0.01 }", [(5, 3)]),
        Case("", [(6,)]),
        Case("", [normal((2, 4, 3), scale=2, shift=-1)], in_place=True),
        # With stored statistics they are inputs, not trained: backward gives them no gradient.
        Case("", [(4, 3, 5, 2)], phase=caffe_pb2.TEST, prepare=_stored_statistics, check_params=False),
        Case("batch_norm_param { use_global_stats: true }", [(3, 3, 4)], prepare=_stored_statistics,
             in_place=True, check_params=False),
        # A layer never updated: Caffe normalizes with zero statistics (a scale factor of 0).
        Case("batch_norm_param { use_global_stats: true }", [(4, 3, 5, 2)], check_params=False),
        Case("batch_norm_param { use_global_stats: false }", [(4, 3, 2)], phase=caffe_pb2.TEST),
        # NVCaffe's scale_bias: learned scale and bias after the normalization.
        Case(f"batch_norm_param {{ {_SCALE_BIAS} }}", [normal((4, 3, 5, 2), scale=3, shift=1)]),
        Case("batch_norm_param { scale_bias: true }", [(3, 3, 4)], in_place=True),
        Case(f"batch_norm_param {{ use_global_stats: true {_SCALE_BIAS} }}", [(4, 3, 2, 2)],
             prepare=_stored_statistics, check_params=False),
    ]

    def setup(self, bottom, top):
        p = self.layer_param.batch_norm_param
        self.moving_average_fraction = p.moving_average_fraction
        self.eps = p.eps
        self.use_global_stats = (p.use_global_stats if p.HasField("use_global_stats")
                                 else self.phase == caffe_pb2.TEST)
        self.channels = 1 if bottom[0].num_axes == 1 else bottom[0].shape[1]
        self.scale_bias = p.scale_bias or p.HasField("scale_filler") or p.HasField("bias_filler")
        if not self.blobs:
            for shape in ((self.channels,), (self.channels,), (1,)):
                self.blobs.append(self.new_param_blob(shape))
            if self.scale_bias:
                for filler, value in (("scale_filler", 1), ("bias_filler", 0)):
                    given = p.HasField(filler)
                    self.blobs.append(self.new_param_blob((self.channels,), getattr(p, filler) if given else
                                                          caffe_pb2.FillerParameter(type="constant", value=value)))
        if len(self.blobs) != (5 if self.scale_bias else 3):
            raise self.error(f"{len(self.blobs)} parameter blobs in the weights; "
                             f"{'5 with scale_bias' if self.scale_bias else '3 (5 needs scale_bias: true)'} expected")
        # The statistics must never be trained: the Net reads these specs after setup.
        for i in range(3):
            if len(self.layer_param.param) == i:
                self.layer_param.param.add(lr_mult=0.0)
            elif self.layer_param.param[i].lr_mult != 0:
                raise self.error(f"param {i} has lr_mult {self.layer_param.param[i].lr_mult}; batch normalization "
                                 "statistics cannot be trained (give lr_mult: 0 or no param specs)")

    def reshape(self, bottom, top):
        if bottom[0].num_axes > 1 and bottom[0].shape[1] != self.channels:
            raise self.error(f"input has {bottom[0].shape[1]} channels, the layer was set up for {self.channels}")
        top[0].reshape(bottom[0].shape)

    def _by_channel(self, array):
        """(N, C, spatial) view, so that statistics reduce over axes 0 and 2."""
        return array.reshape(array.shape[0], self.channels, -1)

    @staticmethod
    def variance_correction(per_channel: int) -> float:
        """m / (m - 1): the running variance stores the unbiased estimate of the batch's."""
        return per_channel / (per_channel - 1) if per_channel > 1 else 1.0

    def forward_cpu(self, bottom, top):
        x = self._by_channel(bottom[0].data_readonly())
        y = self._by_channel(top[0].data)
        if self.use_global_stats:
            factor = self.blobs[2].data_readonly()[0]
            factor = 0 if factor == 0 else 1 / factor
            mean = self.blobs[0].data_readonly() * factor
            variance = self.blobs[1].data_readonly() * factor
        else:
            mean = x.mean(axis=(0, 2), dtype=x.dtype)
        np.subtract(x, mean[:, None], out=y)  # elementwise, so also right in place (top is bottom)
        if not self.use_global_stats:
            variance = np.square(y).mean(axis=(0, 2), dtype=x.dtype)
            self._update_running_stats(mean, variance, x.size // self.channels)
        self.std = np.sqrt(variance + self.eps).astype(x.dtype)
        y /= self.std[:, None]
        # Backward needs the normalized values; a later in-place layer (usually Scale) overwrites top.
        self.x_norm = y.copy()
        if self.scale_bias:
            y *= self.blobs[3].data_readonly()[:, None]
            y += self.blobs[4].data_readonly()[:, None]

    def _update_running_stats(self, mean, variance, per_channel):
        f = self.moving_average_fraction
        self.blobs[2].data[...] = self.blobs[2].data * f + 1
        self.blobs[0].data[...] = mean + f * self.blobs[0].data
        self.blobs[1].data[...] = self.variance_correction(per_channel) * variance + f * self.blobs[1].data

    def backward_cpu(self, top, propagate_down, bottom):
        dy = self._by_channel(top[0].diff_readonly())
        if self.scale_bias:
            if self.param_gradient_wanted(3):
                self.blobs[3].diff[...] += np.einsum("ncs,ncs->c", dy, self.x_norm)
            if self.param_gradient_wanted(4):
                self.blobs[4].diff[...] += dy.sum(axis=(0, 2))
            dy = dy * self.blobs[3].data_readonly()[:, None]  # the gradient at the normalized values
        if not propagate_down[0]:
            return
        dx = self._by_channel(bottom[0].diff)
        inv_std = (1 / self.std)[:, None]
        if self.use_global_stats:
            np.multiply(dy, inv_std, out=dx)
            return
        # y = (x - mean) / std  =>  dx = (dy - mean(dy) - mean(dy * y) * y) / std, means taken per
        # channel over batch and space. Both means are taken before dx (maybe dy itself) is written.
        y = self.x_norm
        mean_dy = dy.mean(axis=(0, 2), dtype=dy.dtype)[:, None]
        mean_dy_y = np.einsum("ncs,ncs->c", dy, y)[:, None] / (y.size // self.channels)
        np.subtract(dy, mean_dy, out=dx)
        dx -= mean_dy_y * y
        dx *= inv_std

    def make_gpu(self):
        return BatchNormGPU(layer=self, channels=self.channels, eps=self.eps, use_global_stats=self.use_global_stats,
                            moving_average_fraction=self.moving_average_fraction, scale_bias=self.scale_bias)
