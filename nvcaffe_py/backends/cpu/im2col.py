"""im2col / col2im: the column matrices behind Convolution, Deconvolution and Im2col (CPU).

The convolution engine (convolution.py) works on a chunk of n images at a time, (n, C, *spatial).
A chunk is first copied "batch-last" into (C, *padded spatial, n) with zero borders, and its
column matrix is

    rows    (c, k_1, ..., k_d)        as Caffe's: C * prod(kernel)
    columns (o_1, ..., o_d, image)    prod(output spatial) * n

so one GEMM per group covers the whole chunk. Keeping the image index innermost is what makes
this fast in NumPy: im2col is a single copy out of a strided window view, and col2im adds one
kernel offset at a time, both over contiguous stretches of at least n (usually OW * n) elements,
where an image-major layout works one output row at a time (measured 1.5-3x slower on the LeNet
and CIFAR shapes with rows of 8 and 16). The price is a transpose of each layer's input and
output (`batch_last`, `batch_first`), done in cache-sized tiles. One strided-view implementation
serves every number of spatial axes, so Caffe's 2-D and N-d paths are the same code here.

Rows of at least IMAGE_MAJOR_ROW outputs copy fast enough one at a time, so those geometries use
the image-major column order (image, o_1, ..., o_d) instead, with the padded images (n, C, ...)
and no transposes: output-side matrices then cost only block copies of whole planes. A 1x1
kernel with stride 1 and no padding needs no im2col at all: its columns are the images themselves
in that order.

With stride 1 on the first spatial axis, batch-last geometries can also give "shifted-row"
columns (`shifted_columns`): the first kernel axis is left out of the rows and becomes a shift
along the columns, so the copy is kernel[0] times smaller and the GEMM kernel[0] times taller.

Matrices on the output side of the GEMM (Co, columns) use the same column order; `matrix` and
`outputs` convert them from and to (n, Co, *output spatial) arrays.

Working buffers come from scratch.py and are reused from call to call, one set per thread: the
convolution engine hands whole chunks to the CPU threads (threads.py).
"""
import numpy as np
from numpy.lib.stride_tricks import as_strided

from .scratch import scratch
from .tuning import BATCH_FIRST_TILE, BATCH_LAST_TILE, IMAGE_MAJOR_ROW


def output_size(size, kernel, pad, stride, dilation):
    """Caffe's convolution output length: floor((size + 2p - extent) / s) + 1."""
    return (size + 2 * pad - (dilation * (kernel - 1) + 1)) // stride + 1


def _tiled_copy(dst, src, axis, tile):
    """np.copyto(dst, src) for same-shaped arrays that are transposes of each other in memory, a
    tile of about `tile` elements at a time, cut along `axis` (channels) and the next one: NumPy's
    plain copy of the whole transpose misses the cache on almost every element."""
    lead = (slice(None),) * axis
    channels, rows = dst.shape[axis], dst.shape[axis + 1]
    per_row = max(1, dst.size // max(1, channels * rows))
    if per_row * rows >= tile:
        step = max(1, tile // per_row)
        tiles = [lead + (c, slice(r, r + step)) for c in range(channels) for r in range(0, rows, step)]
    else:
        step = max(1, tile // max(1, per_row * rows))
        tiles = [lead + (slice(c, c + step),) for c in range(0, channels, step)]
    for index in tiles:
        np.copyto(dst[index], src[index])


def batch_last(a, out):
    """Copy (n, C, *rest) into out, shaped (C, *rest, n)."""
    _tiled_copy(out, np.moveaxis(a, 0, -1), 0, BATCH_LAST_TILE)
    return out


def batch_first(a, out, bias=None):
    """Copy (C, *rest, n) into out, shaped (n, C, *rest), adding bias[c] when given."""
    _tiled_copy(out, np.moveaxis(a, -1, 0), 1, BATCH_FIRST_TILE)
    if bias is not None:
        out += bias.reshape(bias.shape + (1,) * (out.ndim - 2))
    return out


class Im2col:
    """The im2col geometry of images (C, *spatial) for one kernel, padding, stride and dilation."""

    def __init__(self, channels, spatial, kernel, pad, stride, dilation):
        self.channels = channels
        self.spatial = tuple(spatial)
        self.kernel, self.pad, self.stride, self.dilation = map(tuple, (kernel, pad, stride, dilation))
        self.out_spatial = tuple(map(output_size, self.spatial, kernel, pad, stride, dilation))
        self.padded = tuple(s + 2 * p for s, p in zip(self.spatial, self.pad))
        self.is_1x1 = all(k == 1 and s == 1 and p == 0 for k, s, p in zip(self.kernel, self.stride, self.pad))
        self.image_major = self.is_1x1 or self.out_spatial[-1] >= IMAGE_MAJOR_ROW
        self.rows = channels * int(np.prod(self.kernel, dtype=np.int64))
        self.out_count = int(np.prod(self.out_spatial, dtype=np.int64))
        # Shifted-row columns (see `shifted_columns`): possible batch-last with stride 1 on the
        # first spatial axis; the convolution engine chooses them with `use_shifted_rows`.
        self.can_shift = not self.image_major and not self.is_1x1 and self.stride[0] == 1
        self.shifted = False
        self.shift_rows = self.rows // self.kernel[0]
        self.shift_count = self.padded[0] * (self.out_count // self.out_spatial[0])

    def use_shifted_rows(self):
        assert self.can_shift
        self.shifted = True

    def column_bytes(self, itemsize):
        """Bytes of one image's columns."""
        return self.rows * self.out_count * itemsize

    # -- output side -------------------------------------------------------------------------
    def matrix(self, outputs, out):
        """Output-side arrays (n, Co, *out_spatial) -> out, (Co, out_count * n) in column order."""
        n, co = outputs.shape[:2]
        if self.image_major:
            np.copyto(out.reshape(co, n, -1), outputs.reshape(n, co, -1).swapaxes(0, 1))
        else:
            batch_last(outputs.reshape(n, co, -1), out.reshape(co, -1, n))
        return out

    def outputs(self, mat, out, bias=None):
        """The inverse of `matrix`, written to out (n, Co, *out_spatial), plus bias[c] when given."""
        n, co = out.shape[:2]
        if self.image_major:
            source = mat.reshape(co, n, -1).swapaxes(0, 1)
            if bias is None:
                np.copyto(out.reshape(n, co, -1), source)
            else:
                np.add(source, bias[:, None], out=out.reshape(n, co, -1))
        else:
            batch_first(mat.reshape(co, -1, n), out.reshape(n, co, -1), bias)
        return out

    # -- image side --------------------------------------------------------------------------
    def columns(self, images, out):
        """im2col of images (n, C, *spatial) into out, (rows, out_count * n); returns out."""
        if self.is_1x1:
            return self.matrix(images, out)
        n = images.shape[0]
        if self.image_major and not any(self.pad):
            padded = images
        else:
            padded = self._padded(n, images.dtype)
            self._zero_borders(padded)
            if self.image_major:
                np.copyto(padded[self._interior()], images)
            else:
                batch_last(images, padded[self._interior()])
        view = self._blocks(padded, writeable=False)
        np.copyto(out.reshape(view.shape), view)
        return out

    def shifted_columns(self, images, out):
        """Columns over the kernel offsets of every spatial axis but the first, with the first
        axis taken whole (padded): images (n, C, *spatial) -> out, (C * prod(kernel[1:]),
        padded[0] * prod(out_spatial[1:]) * n). With stride 1 on that axis, the rows of the full
        column matrix for its kernel offset k are the contiguous column slice `shift_slice(k, n)`
        of this, a plain GEMM operand: this copies about kernel[0] times fewer elements than
        `columns`, and one GEMM by the kernel[0] weight slices stacked (kernel[0] times more
        output rows, which OpenBLAS runs much faster when there are few output channels) does
        the work of the full column matrix."""
        padded = self._padded(images.shape[0], images.dtype)
        self._zero_borders(padded)
        batch_last(images, padded[self._interior()])
        view = self._blocks(padded, writeable=False, full_first_axis=True)
        np.copyto(out.reshape(view.shape), view)
        return out

    def shift_slice(self, offset, n):
        """The columns of `shifted_columns` that kernel offset `offset` (first spatial axis) reads."""
        row = self.shift_count // self.padded[0] * n
        start = offset * self.dilation[0] * row
        return slice(start, start + self.out_spatial[0] * row)

    def images(self, col, out, bias=None):
        """col2im: sum the columns col (rows, out_count * n) back into images, written to out
        (n, C, *spatial), plus bias[c] when given; returns out."""
        if self.is_1x1:
            return self.outputs(col, out, bias)
        n = out.shape[0]
        padded = out if self.image_major and not any(self.pad) else self._padded(n, out.dtype)
        padded.fill(0)
        blocks = col.reshape(self._blocks(padded).shape)
        for offset in np.ndindex(*self.kernel):
            window = padded[self._window(offset)]
            if self.image_major:
                window = window.swapaxes(0, 1)  # (C, n, ...) as the blocks
            window += blocks[(slice(None),) + offset]
        if not self.image_major:
            return batch_first(padded[self._interior()], out, bias)
        if padded is not out:
            np.copyto(out, padded[self._interior()])
        if bias is not None:
            out += bias.reshape(bias.shape + (1,) * len(self.spatial))
        return out

    # -- the padded images: (C, *padded, n) batch-last, or (n, C, *padded) image-major -------
    def _padded(self, n, dtype):
        shape = (n, self.channels) + self.padded if self.image_major else (self.channels,) + self.padded + (n,)
        return scratch("im2col.padded", shape, dtype)

    def _blocks(self, padded, writeable=True, full_first_axis=False):
        """The strided view of the padded images as (C, *kernel, *columns): the column matrix;
        with full_first_axis (batch-last only), (C, *kernel[1:], padded[0], *columns[1:])."""
        st = padded.strides
        spatial = st[2:] if self.image_major else st[1:-1]
        channel, image = (st[1], st[0]) if self.image_major else (st[0], st[-1])
        kernel_strides = tuple(t * d for t, d in zip(spatial, self.dilation))
        out_strides = tuple(t * s for t, s in zip(spatial, self.stride))
        if self.image_major:
            shape, strides = (len(padded),) + self.out_spatial, (image,) + out_strides
        else:
            shape, strides = self.out_spatial + (padded.shape[-1],), out_strides + (image,)
        kernel = self.kernel
        if full_first_axis:
            kernel, kernel_strides = kernel[1:], kernel_strides[1:]
            shape, strides = (self.padded[0],) + shape[1:], (spatial[0],) + strides[1:]
        return as_strided(padded, shape=(self.channels,) + kernel + shape,
                          strides=(channel,) + kernel_strides + strides, writeable=writeable)

    def _spatial_index(self, spatial):
        """An index of the padded images from per-axis spatial slices."""
        lead, trail = ((slice(None),) * 2, ()) if self.image_major else ((slice(None),), (slice(None),))
        return lead + tuple(spatial) + trail

    def _interior(self):
        return self._spatial_index(slice(p, p + s) for p, s in zip(self.pad, self.spatial))

    def _window(self, offset):
        """Index of the padded images that kernel `offset` reads for every output."""
        return self._spatial_index(
            slice(k * d, k * d + s * (o - 1) + 1, s)
            for k, d, s, o in zip(offset, self.dilation, self.stride, self.out_spatial))

    def _zero_borders(self, padded):
        first = 2 if self.image_major else 1
        for axis, p in enumerate(self.pad, start=first):
            if p:
                edge = [slice(None)] * padded.ndim
                edge[axis] = slice(0, p)
                padded[tuple(edge)] = 0
                edge[axis] = slice(padded.shape[axis] - p, None)
                padded[tuple(edge)] = 0
