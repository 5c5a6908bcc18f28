"""The CPU pooling engine: `Pool2D` pools the last two axes of (N, C, H, W) arrays (MAX, AVE,
STOCHASTIC), for the Pooling layer, SPP's levels and within-channel LRN.

The CPU code loops only over the kh*kw kernel offsets: for one offset, the input elements it
touches form a strided slice, and the windows in which it lies inside the image form a rectangle
of the output. The windows clipped by the image border simply miss that offset, which is how
Caffe clips them. MAX and AVE forward with small windows first copy the input into a polyphase
layout (`_Phases`), where each offset's slice is contiguous instead, and fill the positions
outside the image with values that change nothing (-inf, 0). Work is done in chunks of planes
that stay in the L2 cache, shared among the CPU threads. A forward-only MAX (the deploy-time
forward) computes no mask, and over windows that tile the image takes one pass per kernel row
and column; AVE over whole planes (global pooling) sums each plane in one call.
"""
import numpy as np

from ... import rng
from ...proto import caffe_pb2
from . import threads
from .scratch import scratch
from .tuning import POOLING_CHUNK_ELEMENTS

MAX = caffe_pb2.PoolingParameter.MAX
AVE = caffe_pb2.PoolingParameter.AVE
STOCHASTIC = caffe_pb2.PoolingParameter.STOCHASTIC
# Caffe starts every max at -FLT_MAX, for double too; a window that finds nothing keeps it.
FLT_MAX = float(np.finfo(np.float32).max)


def pooled_size(size, kernel, stride, pad, ceil_mode, padded):
    """Caffe's output length: rounded up (CEIL) or down, then, when the layer pads at all,
    one less if the last window would start in the padding."""
    span = size + 2 * pad - kernel
    pooled = (-(-span // stride) if ceil_mode else span // stride) + 1
    if padded and (pooled - 1) * stride >= size + pad:
        pooled -= 1
    return pooled


def _offset_range(offset, size, stride, pad, pooled):
    """(output slice, input slice) of the windows in which kernel `offset` lies inside [0, size)."""
    first = max(0, -(-(pad - offset) // stride))
    last = min(pooled - 1, (size - 1 + pad - offset) // stride)
    if last < first:
        return None
    start = first * stride - pad + offset
    return slice(first, last + 1), slice(start, last * stride - pad + offset + 1, stride)


class _Phases:
    """The polyphase layout of a chunk of planes, which turns every kernel offset into one
    contiguous slice: NumPy runs a strided slice with short rows several times slower.

    Phase (a, b) holds the padded input's elements (r * sh + a, c * sw + b), a (rows, cols)
    grid per plane, the positions outside the image set to a fill value. Kernel offset (i, j)
    of window (r, c) is then element (r + i // sh, c + j // sw) of phase (i % sh, j % sw), so
    with all planes laid end to end, the offset's elements for every window of the chunk are
    one slice of its phase, `start` = (i // sh) * cols + j // sw elements in. Results live in
    the same (rows, cols) grid per plane; the grid's extra rows and columns hold garbage (they
    may read the next plane) and are dropped at the end.
    """

    def __init__(self, height, width, kernel, stride, pad, pooled):
        (kh, kw), (sh, sw), (ph, pw) = kernel, stride, pad
        self.pooled = pooled
        self.rows, self.cols = pooled[0] + (kh - 1) // sh, pooled[1] + (kw - 1) // sw
        self.plane = self.rows * self.cols
        # Per phase: (grid rectangle, input slice, whether the rectangle is the whole grid), or
        # None when the phase lies wholly outside the image.
        self.copies = []
        for a in range(sh):
            for b in range(sw):
                r = _offset_range(a, height, sh, ph, self.rows)
                c = _offset_range(b, width, sw, pw, self.cols)
                whole = bool(r and c) and (r[0], c[0]) == (slice(0, self.rows), slice(0, self.cols))
                self.copies.append(((Ellipsis, r[0], c[0]), (Ellipsis, r[1], c[1]), whole) if r and c else None)
        # (offset code i*kw + j, phase, start) in scan order.
        self.offsets = [(i * kw + j, (i % sh) * sw + j % sw, (i // sh) * self.cols + j // sw)
                        for i in range(kh) for j in range(kw)]
        self.tail = max(start for _, _, start in self.offsets)

    def split(self, x, fill):
        """The phases of x (planes, H, W) as a (phases, planes * plane + tail) scratch array."""
        size = x.shape[0] * self.plane
        out = scratch("pooling.phases", (len(self.copies), size + self.tail), x.dtype)
        out[:, size:] = fill
        for phase, copy in zip(out, self.copies):
            grid = phase[:size].reshape(x.shape[0], self.rows, self.cols)
            if copy is None or not copy[2]:
                grid.fill(fill)
            if copy is not None:
                np.copyto(grid[copy[0]], x[copy[1]])
        return out, size

    def windows(self, grid, planes):
        """The (planes, PH, PW) results inside a flat (planes * plane) grid array."""
        return grid.reshape(planes, self.rows, self.cols)[:, :self.pooled[0], :self.pooled[1]]


class Pool2D:
    """One pooling of the last two axes of (N, C, H, W) arrays: its geometry and method.

    Backward adds into `bottom_diff` (callers zero it), so that SPP can sum its levels. MAX and
    STOCHASTIC (train) remember the chosen element of each window in `index`, as Caffe's mask:
    the flat index h * W + w inside its (n, c) plane, -1 for a window with no element.
    """

    def __init__(self, height, width, kernel, stride, pad, method=MAX, ceil_mode=True, train=True):
        (kh, kw), (sh, sw), (ph, pw) = kernel, stride, pad
        padded = bool(ph or pw)
        self.height, self.width, self.kernel, self.stride, self.pad = height, width, (kh, kw), (sh, sw), (ph, pw)
        self.method, self.train = method, train
        self.pooled = (pooled_size(height, kh, sh, ph, ceil_mode, padded),
                       pooled_size(width, kw, sw, pw, ceil_mode, padded))
        hstart = np.arange(self.pooled[0]) * sh - ph
        wstart = np.arange(self.pooled[1]) * sw - pw
        # AVE divides by the window clipped to the padded image, padding included (Caffe). Only
        # a window lying wholly past the image (stride > kernel, no pad) gets a size <= 0 there;
        # its sum is 0, and dividing by 1 keeps it 0 where Caffe would produce -0 or NaN.
        size_h = np.minimum(hstart + kh, height + ph) - hstart
        size_w = np.minimum(wstart + kw, width + pw) - wstart
        self.divisor = np.maximum(np.outer(size_h, size_w), 1)
        # Past the padded image no kernel offset lands inside it and a longer stride moves no
        # window that has an element: the loops below stop there (a kernel or stride of 2^32
        # would otherwise loop that often), with the same windows, results and divisors.
        (kh, sh), (kw, sw) = ((min(k, extent), min(st, extent)) for k, st, extent in
                              ((kh, sh, height + 2 * ph), (kw, sw, width + 2 * pw)))
        rows = [_offset_range(i, height, sh, ph, self.pooled[0]) for i in range(kh)]
        cols = [_offset_range(j, width, sw, pw, self.pooled[1]) for j in range(kw)]
        # (offset code i*kw + j, output rectangle, input slice) for every offset that is ever inside.
        self.offsets = [(i * kw + j, (Ellipsis, r[0], c[0]), (Ellipsis, r[1], c[1]))
                        for i, r in enumerate(rows) if r for j, c in enumerate(cols) if c]
        # The same offsets one axis at a time, for sums, which are separable.
        self.row_offsets = [r for r in rows if r]
        self.col_offsets = [c for c in cols if c]
        self.window_origin = (hstart[:, None] * width + wstart[None, :]).astype(np.int32)
        # The first match in scan order is found as a max over offsets of a rank that falls as
        # the offset's in-plane distance from the window origin, i * W + j, grows: rank = last - i*W - j
        # (>= 1; 0: no match), so that index = origin + last - rank.
        last = (kh - 1) * width + kw
        self.rank_dtype = np.dtype(np.uint8 if last < 256 else np.uint16 if last < 65536 else np.int64)
        self.rank_of = [self.rank_dtype.type(last - i * width - j) for i in range(kh) for j in range(kw)]
        self.rank_origin = self.window_origin + np.int32(last)
        # Small windows use the polyphase layout, unless its grid would be much bigger than the
        # output (global pooling), where a strided pass per offset does less work.
        phases = _Phases(height, width, (kh, kw), (sh, sw), (ph, pw), self.pooled)
        self.phases = phases if phases.plane <= 2 * self.pooled[0] * self.pooled[1] else None
        # Windows that tile the image (kernel = stride, no pad, sizes divisible): a forward-only
        # MAX is then a max over rows and one over columns, kh - 1 + kw - 1 strided passes.
        tiles = (kh, kw) == (sh, sw) and (ph, pw) == (0, 0) and height % kh == 0 and width % kw == 0
        self.tile = (kh, kw) if tiles else None
        # One window over each whole plane (global pooling): AVE sums it in one call.
        self.whole_plane = (ph, pw) == (0, 0) and kh >= height and kw >= width
        self.index = None

    def _chunks(self, *arrays):
        """Matching chunks of planes of (N, C, ...) arrays, each viewed as (planes, ...)."""
        flat = [a.reshape((-1,) + a.shape[2:]) for a in arrays]
        step = max(1, POOLING_CHUNK_ELEMENTS // (self.height * self.width))
        for start in range(0, flat[0].shape[0], step):
            yield [a[start:start + step] for a in flat]

    def _each_chunk(self, work, *arrays):
        """work(*chunk) for every chunk of `_chunks(*arrays)`, the chunks shared among the CPU
        threads (they touch disjoint planes)."""
        chunks = list(self._chunks(*arrays))
        # Work per chunk in element-wise passes over its input: about one per two kernel offsets.
        passes = max(1, self.kernel[0] * self.kernel[1] // 2)
        threads.each(lambda chunk: work(*chunk), chunks, chunks[0][0].size * passes if chunks else 0)

    # -- forward ---------------------------------------------------------------------------
    def forward(self, x, top, keep_index=True):
        """top = the pooling of x; MAX and STOCHASTIC keep the chosen positions in `index` for
        backward. Without `keep_index` (a forward-only pass) MAX finds the maxima only, and
        STOCHASTIC keeps its positions in a scratch buffer."""
        if self.method == AVE:
            self._each_chunk(self._average, x, top)
        elif self.method == STOCHASTIC and not self.train:
            self._each_chunk(self._weighted_average, x, top)
        elif self.method == MAX and not keep_index:
            self.index = None
            self._each_chunk(self._tile_max if self.tile else lambda xc, tc: self._max(xc, tc, None), x, top)
        else:
            self.index = np.empty(top.shape, np.int32) if keep_index else scratch("pooling.index", top.shape, np.int32)
            if self.method == MAX:
                self._each_chunk(self._max, x, top, self.index)
            else:
                # Drawn for the whole batch at once, so the random stream does not depend on chunking.
                uniform = rng.generator().random(top.shape, dtype=top.dtype)
                self._each_chunk(self._sample, x, top, self.index, uniform)

    def _average(self, x, top):
        if self.whole_plane:
            np.sum(x, axis=(-2, -1), keepdims=True, out=top)
        elif self.phases is None:
            self.window_sum(x, top)
        else:
            grid, size = self.phases.split(x, 0)
            total = scratch("pooling.best", (size,), x.dtype)
            _, phase, start = self.phases.offsets[0]
            np.copyto(total, grid[phase, start:start + size])
            for _, phase, start in self.phases.offsets[1:]:
                np.add(total, grid[phase, start:start + size], out=total)
            np.copyto(top, self.phases.windows(total, x.shape[0]))
        np.divide(top, self.divisor.astype(top.dtype), out=top)

    def window_sum(self, x, out):
        """Each window's sum over its elements inside the image: along rows, then along columns,
        kh + kw passes instead of kh * kw."""
        rows = np.zeros(x.shape[:-1] + (self.pooled[1],), x.dtype)
        for rect, inp in self.col_offsets:
            view = rows[..., rect]
            np.add(view, x[..., inp], out=view)
        out.fill(0)
        for rect, inp in self.row_offsets:
            view = out[..., rect, :]
            np.add(view, rows[..., inp, :], out=view)
        return out

    def _max(self, x, top, index):
        # fmax: as in Caffe's `>` scan, NaN never wins; the mask (`index`, unless None) is the
        # first maximum in scan order.
        if self.phases is None:
            top.fill(-FLT_MAX)
            for _, rect, inp in self.offsets:
                view = top[rect]
                np.fmax(view, x[inp], out=view)
            if index is not None:
                self._first_offset(lambda inp, rect: np.equal(x[inp], top[rect]), index)
            return
        phases = self.phases
        grid, size = phases.split(x, -np.inf)
        best = scratch("pooling.best", (size,), x.dtype)
        best.fill(-FLT_MAX)
        for _, phase, start in phases.offsets:
            np.fmax(best, grid[phase, start:start + size], out=best)
        if index is None:
            np.copyto(top, phases.windows(best, x.shape[0]))
            return
        rank = scratch("pooling.rank", (size,), self.rank_dtype)
        rank.fill(0)
        equal = scratch("pooling.equal", (size,), np.uint8)
        ranked = scratch("pooling.ranked", (size,), self.rank_dtype)
        for code, phase, start in phases.offsets:
            np.equal(grid[phase, start:start + size], best, out=equal.view(bool))
            np.multiply(equal, self.rank_of[code], out=ranked)
            np.maximum(rank, ranked, out=rank)
        np.copyto(top, phases.windows(best, x.shape[0]))
        # The whole grid, garbage included, is contiguous and so quicker to check.
        self._index_from_rank(phases.windows(rank, x.shape[0]), index, all_found=rank.all())

    def _tile_max(self, x, top):
        """The maxima of windows that tile the image (`tile`), Caffe's way (see _max): the
        separable max of each window's rows, then its columns; -FLT_MAX where all were NaN."""
        kh, kw = self.tile
        rows = x[:, 0::kh]
        if kh > 1:
            rows = np.fmax(rows, x[:, 1::kh], out=scratch("pooling.rows", rows.shape, x.dtype))
            for i in range(2, kh):
                np.fmax(rows, x[:, i::kh], out=rows)
        np.fmax(rows[..., 0::kw], rows[..., 1::kw] if kw > 1 else -FLT_MAX, out=top)
        for j in range(2, kw):
            np.fmax(top, rows[..., j::kw], out=top)
        if kw > 1:
            np.fmax(top, -FLT_MAX, out=top)

    def _first_offset(self, matches, index):
        """Write into `index` the element of each window that comes first in scan order among
        those where `matches(input slice, output rectangle)` holds; -1 where none does."""
        rank = np.zeros(index.shape, self.rank_dtype)
        for code, rect, inp in self.offsets:
            view = rank[rect]
            np.maximum(view, matches(inp, rect).view(np.uint8) * self.rank_of[code], out=view)
        self._index_from_rank(rank, index)

    def _index_from_rank(self, rank, index, all_found=False):
        """index = origin + last - rank, -1 where rank is 0; `all_found` skips that check."""
        np.copyto(index, rank, casting="unsafe")
        np.subtract(self.rank_origin, index, out=index)
        if not all_found:
            missing = rank == 0
            if missing.any():
                index[missing] = -1

    def _sample(self, x, top, index, uniform):
        # Caffe's kernel: threshold = u * window sum; pick the first element (scan order) at which
        # the running sum reaches it. Offsets outside the image add 0 to the running sum, so they
        # are never the first to reach it. The sum is taken in the running sum's order, so that
        # the last element reaches any threshold exactly as in Caffe.
        threshold = np.zeros_like(top)
        for _, rect, inp in self.offsets:
            view = threshold[rect]
            np.add(view, x[inp], out=view)
        threshold *= uniform
        running = np.zeros_like(top)

        def reaches(inp, rect):
            view = running[rect]
            np.add(view, x[inp], out=view)
            return view >= threshold[rect]

        self._first_offset(reaches, index)
        planes = x.reshape(x.shape[0], -1)
        picked = np.take_along_axis(planes, np.maximum(index, 0).reshape(index.shape[0], -1), axis=1)
        np.copyto(top, np.where(index >= 0, picked.reshape(top.shape), 0))

    def _weighted_average(self, x, top):
        # Test time: the activations weighted by themselves, sum(x^2) / sum(x); 0 where sum(x) <= 0.
        total = self.window_sum(x, np.empty_like(top))
        self.window_sum(x * x, top)
        np.divide(top, total, out=top, where=total > 0)
        top[total <= 0] = 0

    # -- backward --------------------------------------------------------------------------
    def backward(self, x, top_diff, bottom_diff, index=None):
        """Add d(loss)/d(x) into bottom_diff; `index` overrides the remembered mask (top[1])."""
        if self.method == AVE:
            self._each_chunk(lambda tc, bc: self.spread(tc / self.divisor.astype(tc.dtype), bc),
                             top_diff, bottom_diff)
        elif self.method == STOCHASTIC and not self.train:
            self._each_chunk(self._weighted_average_backward, x, top_diff, bottom_diff)
        else:
            index = self.index if index is None else index
            # By images: a window's chosen element lies in its own plane.
            threads.run(lambda part: self.scatter(index[part], top_diff[part], bottom_diff[part]),
                         threads.parts(len(top_diff), top_diff[:1].size))

    def spread(self, values, bottom_diff):
        """The adjoint of window_sum: every window's value added to each element it covers."""
        rows = np.zeros(values.shape[:-2] + (self.height, self.pooled[1]), values.dtype)
        for rect, inp in self.row_offsets:
            view = rows[..., inp, :]
            np.add(view, values[..., rect, :], out=view)
        for rect, inp in self.col_offsets:
            view = bottom_diff[..., inp]
            np.add(view, rows[..., rect], out=view)

    @staticmethod
    def scatter(index, top_diff, bottom_diff):
        """Add each window's gradient to its chosen element. Overlapping windows may choose the
        same element, so this needs an unbuffered add (np.add.at: one pass, fast since NumPy 2,
        and faster here than a masked pass per kernel offset)."""
        num, channels = top_diff.shape[:2]
        plane = bottom_diff.shape[2] * bottom_diff.shape[3]
        # int32 indices when they fit: half the memory traffic of intp.
        dtype = np.int32 if bottom_diff.size < 2 ** 31 else np.intp
        flat = index + (np.arange(num * channels, dtype=dtype) * plane).reshape(num, channels, 1, 1)
        values = top_diff
        found = index >= 0
        if not found.all():
            flat, values = flat[found], top_diff[found]
        np.add.at(bottom_diff.reshape(-1), flat.reshape(-1), values.reshape(-1))

    def _weighted_average_backward(self, x, top_diff, bottom_diff):
        # d/dx_i of Q/S (S = sum x, Q = sum x^2 over the window) is (2 x_i - Q/S) / S.
        total = self.window_sum(x, np.empty_like(top_diff))
        live = total > 0
        scale = np.divide(top_diff, total, out=np.zeros_like(top_diff), where=live)
        shift = np.divide(self.window_sum(x * x, np.empty_like(top_diff)), total,
                          out=np.zeros_like(top_diff), where=live) * scale
        grad = np.zeros_like(x)
        self.spread(scale, grad)
        grad *= 2 * x
        self.spread(-shift, grad)
        bottom_diff += grad
