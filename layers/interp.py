"""Interp (DeepLab v2 / PSPNet, hszhao/PSPNet): bilinear resizing with aligned corners.

The output size comes from interp_param: zoom_factor z (out = in + (in - 1)(z - 1)), shrink_factor
s (out = (in - 1) / s + 1), both (shrink, then zoom), or height and width. pad_beg / pad_end
(non-positive: a crop) take the input's [-pad_beg, in + pad_end) first. Output pixel k reads input
position k * (in - 1) / (out - 1) (ratio in float32, as the fork), linearly between its two
neighbours; equal sizes copy. Being linear along each axis, the resize is Y = Rh X Rw^T with small
interpolation matrices: two matrix products forward and the transposed two backward, on either
backend (the GPU half, interp_gpu.py, runs them through our GEMM).
"""
import numpy as np

from nvcaffe_py.conformance import Case
from nvcaffe_py.layer import Layer
from nvcaffe_py.registry import register_layer

from .interp_gpu import InterpGPU


def interpolation_matrix(size_out, size_in, offset, size_eff):
    """(size_out, size_in) weights of the fork's caffe_cpu_interp2 along one axis."""
    matrix = np.zeros((size_out, size_in))
    if size_out == size_eff:
        matrix[np.arange(size_out), offset + np.arange(size_out)] = 1
        return matrix
    ratio = np.float32(size_eff - 1) / np.float32(size_out - 1) if size_out > 1 else np.float32(0)
    for k in range(size_out):
        position = np.float32(ratio * np.float32(k))
        low = int(position)
        step = 1 if low < size_eff - 1 else 0
        weight = float(position - np.float32(low))
        matrix[k, offset + low] += 1 - weight
        matrix[k, offset + low + step] += weight
    return matrix


@register_layer("Interp")
class InterpLayer(Layer):
    exact_num_bottom = 1
    exact_num_top = 1
    cases = [Case("interp_param { zoom_factor: 3 }", [(2, 3, 4, 5)]),
             Case("interp_param { shrink_factor: 2 }", [(2, 2, 7, 6)]),
             Case("interp_param { shrink_factor: 2 zoom_factor: 3 pad_beg: -1 pad_end: -1 }", [(1, 2, 9, 8)]),
             Case("interp_param { height: 5 width: 11 }", [(2, 2, 6, 4)]),
             Case("interp_param { height: 1 width: 3 }", [(1, 2, 3, 3)])]

    def setup(self, bottom, top):
        p = self.layer_param.interp_param
        self.pad_beg, self.pad_end = p.pad_beg, p.pad_end
        if self.pad_beg > 0 or self.pad_end > 0:
            raise self.error("pad_beg and pad_end must be at most 0 (the fork crops only)")
        has = p.HasField
        zoom, shrink = (p.zoom_factor if has("zoom_factor") else None), (p.shrink_factor if has("shrink_factor") else None)
        if zoom is None and shrink is None and not (has("height") and has("width")):
            raise self.error("interp_param needs zoom_factor, shrink_factor, both, or height and width")
        if (zoom is not None and zoom < 1) or (shrink is not None and shrink < 1):
            raise self.error("zoom_factor and shrink_factor must be at least 1")
        self.zoom, self.shrink, self.size = zoom, shrink, (p.height, p.width)
        self._matrices = None

    def output_size(self, size_eff, axis):
        if self.zoom is None and self.shrink is None:
            return self.size[axis]
        out = size_eff if self.shrink is None else (size_eff - 1) // self.shrink + 1
        return out if self.zoom is None else out + (out - 1) * (self.zoom - 1)

    def reshape(self, bottom, top):
        if bottom[0].num_axes != 4:
            raise self.error(f"input must have 4 axes, got shape {bottom[0].shape}")
        num, channels, height, width = bottom[0].shape
        eff = (height + self.pad_beg + self.pad_end, width + self.pad_beg + self.pad_end)
        out = (self.output_size(eff[0], 0), self.output_size(eff[1], 1))
        if min(eff) <= 0 or min(out) <= 0:
            raise self.error(f"input {height}x{width} (cropped {eff[0]}x{eff[1]}) gives an empty output {out}")
        key = (height, width, *out)
        if self._matrices is None or self._matrices[0] != key:
            rows = interpolation_matrix(out[0], height, -self.pad_beg, eff[0])
            cols = interpolation_matrix(out[1], width, -self.pad_beg, eff[1])
            self._matrices = (key, rows.astype(self.dtype), np.ascontiguousarray(cols.T, self.dtype))
        top[0].reshape(num, channels, *out)

    @property
    def matrices(self):
        """Rh (out_h, in_h) and Rw^T (in_w, out_w) for the current shapes."""
        return self._matrices[1], self._matrices[2]

    def forward_cpu(self, bottom, top):
        rows, cols_t = self.matrices
        np.matmul(rows, bottom[0].data_readonly() @ cols_t, out=top[0].data)

    def backward_cpu(self, top, propagate_down, bottom):
        if propagate_down[0]:
            rows, cols_t = self.matrices
            np.matmul(rows.T, top[0].diff_readonly() @ cols_t.T, out=bottom[0].diff)

    def make_gpu(self):
        return InterpGPU(layer=self)
