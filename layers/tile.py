"""Tile: repeats the block of axes from `axis` on `tiles` times (numpy's tile along that axis)."""
import numpy as np

from nvcaffe_py.conformance import Case
from nvcaffe_py.layer import Layer
from nvcaffe_py.registry import register_layer


@register_layer("Tile")
class TileLayer(Layer):
    exact_num_bottom = 1
    exact_num_top = 1
    cases = [Case("tile_param { tiles: 3 }", [(2, 3, 4)]),
             Case("tile_param { axis: 0 tiles: 2 }", [(2, 3)]),
             Case("tile_param { axis: -1 tiles: 4 }", [(2, 3, 2)])]

    def setup(self, bottom, top):
        p = self.layer_param.tile_param
        if not p.HasField("tiles"):
            raise self.error("tile_param.tiles must be given")
        if p.tiles <= 0:
            raise self.error(f"tile_param.tiles must be positive, got {p.tiles}")
        self.tiles = p.tiles

    def reshape(self, bottom, top):
        shape = list(bottom[0].shape)
        axis = self.canonical_axis(bottom[0], self.layer_param.tile_param.axis)
        # As (outer, tiles, inner): each outer index holds `tiles` copies of an inner block.
        self.outer = int(np.prod(shape[:axis], dtype=np.int64))
        self.inner = int(np.prod(shape[axis:], dtype=np.int64))
        shape[axis] *= self.tiles
        top[0].reshape(shape)

    def forward_cpu(self, bottom, top):
        top[0].data.reshape(self.outer, self.tiles, self.inner)[...] = \
            bottom[0].data_readonly().reshape(self.outer, 1, self.inner)

    def backward_cpu(self, top, propagate_down, bottom):
        if propagate_down[0]:
            np.sum(top[0].diff_readonly().reshape(self.outer, self.tiles, self.inner), axis=1,
                   out=bottom[0].diff.reshape(self.outer, self.inner))
