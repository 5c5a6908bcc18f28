"""Region-of-interest pooling: Faster R-CNN's ROIPooling (rbgirshick/caffe-fast-rcnn) and R-FCN's
PSROIPooling (daijifeng001/caffe-rfcn).

Bottoms: features (N, C, H, W) and regions (R, 5) rows (batch index, x1, y1, x2, y2) in image
coordinates, spatial_scale mapping them onto the features. The region proposals come from those
repositories' Python layers (Proposal), which run here as pycaffe Python layers.

ROIPooling: the corners are rounded (half away from zero) after scaling, the region is at least
one cell, its PH x PW bins run from floor(k * size / P) to ceil((k + 1) * size / P), clipped to
the map; each bin's maximum (0 for an empty bin), the argmax kept for backward (the fork has only
a GPU backward; the gradient here is the same).
PSROIPooling: the corners are rounded before scaling, x2/y2 + 1 ends the region, at least 0.1
wide; bin (ph, pw) of output channel ctop averages input channel (ctop * G + ph) * G + pw.
The GPU halves are roi_pooling_gpu.py with roi_pooling.cu.
"""
import math

import numpy as np

from nvcaffe_py.conformance import Case, fixed
from nvcaffe_py.layer import Layer
from nvcaffe_py.registry import register_layer

from .roi_pooling_gpu import PSROIPoolingGPU, ROIMaxPoolingGPU

ROIS = fixed([[0, 1.2, 2.6, 9.7, 7.4], [1, 0, 0, 4, 3], [1, 6.5, 1.5, 6.5, 1.5], [0, -3, -2, 30, 25]])


def c_round(value):
    """C's round(): halves away from zero."""
    return math.floor(abs(value) + 0.5) * (1 if value >= 0 else -1)


def bin_bounds(start, bin_size, count, limit):
    """[start, end) of each bin, as the forks compute them, clipped to [0, limit]."""
    return [(min(max(math.floor(k * bin_size + start), 0), limit), min(max(math.ceil((k + 1) * bin_size + start), 0), limit))
            for k in range(count)]


class RegionPooling(Layer):
    exact_num_bottom = 2
    exact_num_top = 1

    def allow_force_backward(self, bottom_index):
        return bottom_index == 0

    def bins(self, bottom):
        """(region, its image, ph, pw, (h0, h1), (w0, w1)) for every bin of every region."""
        for r, roi in enumerate(bottom[1].data_readonly().reshape(-1, 5)):
            batch = int(roi[0])
            if not 0 <= batch < bottom[0].shape[0]:
                raise self.error(f"a region names image {batch} of a batch of {bottom[0].shape[0]}")
            rows, cols = self.region_bins(roi, *bottom[0].shape[2:])
            for ph, hs_he in enumerate(rows):
                for pw, ws_we in enumerate(cols):
                    yield r, batch, ph, pw, hs_he, ws_we

    def reshape(self, bottom, top):
        if bottom[0].num_axes != 4 or bottom[1].count() % 5 or bottom[1].shape[0] * 5 != bottom[1].count():
            raise self.error(f"needs features (N, C, H, W) and regions (R, 5), got {bottom[0].shape} and {bottom[1].shape}")
        top[0].reshape(bottom[1].shape[0], self.out_channels(bottom[0].shape[1]), *self.pooled)


@register_layer("ROIPooling")
class ROIPoolingLayer(RegionPooling):
    cases = [Case("roi_pooling_param { pooled_h: 2 pooled_w: 3 spatial_scale: 0.5 }", [(2, 3, 6, 7), ROIS]),
             Case("roi_pooling_param { pooled_h: 3 pooled_w: 3 spatial_scale: 1 }", [(2, 2, 8, 9), ROIS])]

    def setup(self, bottom, top):
        p = self.layer_param.roi_pooling_param
        if p.pooled_h <= 0 or p.pooled_w <= 0:
            raise self.error("pooled_h and pooled_w must be positive")
        self.pooled, self.scale = (p.pooled_h, p.pooled_w), p.spatial_scale

    def out_channels(self, channels):
        return channels

    def region_bins(self, roi, height, width):
        x1, y1, x2, y2 = (c_round(v * self.scale) for v in roi[1:])
        size_h, size_w = max(y2 - y1 + 1, 1), max(x2 - x1 + 1, 1)
        return (bin_bounds(y1, np.float32(size_h) / np.float32(self.pooled[0]), self.pooled[0], height),
                bin_bounds(x1, np.float32(size_w) / np.float32(self.pooled[1]), self.pooled[1], width))

    def forward_cpu(self, bottom, top):
        x, y = bottom[0].data_readonly(), top[0].data
        width = x.shape[3]
        self.argmax = np.full(y.shape, -1, np.int64)
        for r, batch, ph, pw, (hs, he), (ws, we) in self.bins(bottom):
            if he <= hs or we <= ws:
                y[r, :, ph, pw] = 0
                continue
            window = x[batch, :, hs:he, ws:we].reshape(x.shape[1], -1)
            first = window.argmax(axis=1)  # the first maximum in scan order, as the fork's `>`
            y[r, :, ph, pw] = window[np.arange(x.shape[1]), first]
            self.argmax[r, :, ph, pw] = (hs + first // (we - ws)) * width + ws + first % (we - ws)

    def backward_cpu(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        dx = bottom[0].diff
        dx[...] = 0
        batches = bottom[1].data_readonly().reshape(-1, 5)[:, 0].astype(np.int64)
        dy = top[0].diff_readonly()
        where = self.argmax >= 0
        r, c, _, _ = np.nonzero(where)
        np.add.at(dx.reshape(dx.shape[0], dx.shape[1], -1), (batches[r], c, self.argmax[where]), dy[where])

    def make_gpu(self):
        return ROIMaxPoolingGPU(pooled=self.pooled, spatial_scale=self.scale)


@register_layer("PSROIPooling")
class PSROIPoolingLayer(RegionPooling):
    cases = [Case("psroi_pooling_param { spatial_scale: 0.5 output_dim: 2 group_size: 3 }", [(2, 18, 6, 7), ROIS]),
             Case("psroi_pooling_param { spatial_scale: 1 output_dim: 1 group_size: 2 }", [(2, 4, 8, 9), ROIS])]

    def setup(self, bottom, top):
        p = self.layer_param.psroi_pooling_param
        for name in ("spatial_scale", "output_dim", "group_size"):
            if not p.HasField(name):
                raise self.error(f"psroi_pooling_param needs {name}")
        self.scale, self.output_dim, self.group = p.spatial_scale, p.output_dim, p.group_size
        if self.output_dim <= 0 or self.group <= 0:
            raise self.error("output_dim and group_size must be positive")
        self.pooled = (self.group, self.group)

    def out_channels(self, channels):
        if channels != self.output_dim * self.group ** 2:
            raise self.error(f"{channels} input channels; output_dim * group_size^2 = "
                             f"{self.output_dim * self.group ** 2} expected")
        return self.output_dim

    def region_bins(self, roi, height, width):
        scale = np.float32(self.scale)
        x1, y1 = np.float32(c_round(roi[1])) * scale, np.float32(c_round(roi[2])) * scale
        x2, y2 = np.float32(c_round(roi[3]) + 1) * scale, np.float32(c_round(roi[4]) + 1) * scale
        size_h, size_w = max(y2 - y1, np.float32(0.1)), max(x2 - x1, np.float32(0.1))
        return (bin_bounds(y1, size_h / np.float32(self.group), self.group, height),
                bin_bounds(x1, size_w / np.float32(self.group), self.group, width))

    def _channels(self, ph, pw):
        return (np.arange(self.output_dim) * self.group + ph) * self.group + pw

    def forward_cpu(self, bottom, top):
        x, y = bottom[0].data_readonly(), top[0].data
        for r, batch, ph, pw, (hs, he), (ws, we) in self.bins(bottom):
            empty = he <= hs or we <= ws
            y[r, :, ph, pw] = 0 if empty else x[batch, self._channels(ph, pw), hs:he, ws:we].mean(axis=(1, 2))

    def backward_cpu(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        dx, dy = bottom[0].diff, top[0].diff_readonly()
        dx[...] = 0
        for r, batch, ph, pw, (hs, he), (ws, we) in self.bins(bottom):
            if he > hs and we > ws:
                area = (he - hs) * (we - ws)
                dx[batch, self._channels(ph, pw), hs:he, ws:we] += (dy[r, :, ph, pw] / area)[:, None, None]

    def make_gpu(self):
        return PSROIPoolingGPU(output_dim=self.output_dim, group_size=self.group, spatial_scale=self.scale)
