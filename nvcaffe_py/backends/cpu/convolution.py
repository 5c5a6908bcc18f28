"""The CPU convolution engine, for Convolution, Deconvolution and Im2col.

`ConvolutionEngine` works in the "convolution view" of a layer: an image side (num, Ci, *spatial),
which im2col turns into columns, and an output side (num, Co, *out_spatial), related by
outputs = W * columns with weights W (Co, Ci / group, *kernel). Convolution's forward is
`convolve` and its data gradient `convolve_transposed`; Deconvolution, whose top is the image
side, uses them the other way round, as in Caffe.

The batch is processed in chunks whose column matrix stays under COLUMN_BUFFER_BYTES, so memory
does not grow with the batch while each GEMM still covers many images (see im2col.py for the
layout); the chunks are shared among the CPU threads (threads.py). With stride 1 the transposed
pass may instead run as a convolution with the flipped kernel, when that is estimated cheaper
than col2im. A product W * columns uses im2col's shifted-row columns when they are estimated
cheaper, and with image-major columns, a bias and one group, a GEMM per image with the bias
folded in. The estimates weigh GEMM multiply-adds against element moves (MOVE_COST) and short
GEMMs (SHORT_GEMM_COST), constants measured with OpenBLAS (tuning.py).
"""
import numpy as np

from . import threads
from .im2col import Im2col
from .scratch import scratch
from .tuning import COLUMN_BUFFER_BYTES, MOVE_COST, PER_IMAGE_GEMM_COLUMNS, SHORT_GEMM_COST


def chunk_slices(num, bytes_per_image):
    """Even slices of the batch that fit COLUMN_BUFFER_BYTES (at least one image each), as many
    as a multiple of the CPU thread count where the batch allows, so the threads share them
    evenly (each thread has its own buffers)."""
    if num == 0:
        return []
    per_chunk = max(1, COLUMN_BUFFER_BYTES // max(bytes_per_image, 1))
    thread_count = threads.thread_count()
    count = -(-num // per_chunk)
    count = min(num, -(-count // thread_count) * thread_count)
    size = -(-num // count)
    return [slice(start, min(start + size, num)) for start in range(0, num, size)]


def _shift_ratio(geometry, out_channels):
    """Estimated cost of the product of (out_channels, rows) weights per group and the columns
    with shifted-row columns (im2col.py), relative to the full column matrix: fewer elements to
    move and a taller GEMM, against padded[0] / out_spatial[0] times more multiply-adds and the
    sum of the kernel[0] partial products; inf where shifting is impossible. (For the weight
    gradient, kernel[0] GEMMs on column slices measured slower than one on the full columns, so
    it always uses those.)"""
    if not geometry.can_shift:
        return float("inf")
    full = geometry.rows * geometry.out_count * (out_channels + SHORT_GEMM_COST + MOVE_COST)
    stacked = geometry.kernel[0] * out_channels
    shifted = (geometry.shift_rows * geometry.shift_count * (stacked + SHORT_GEMM_COST + MOVE_COST)
               + stacked * geometry.out_count * MOVE_COST)
    return shifted / full


def _grouped_matmul(a, b, out):
    """out[g] = a[g] @ b[g] over the leading group axis: a single GEMM when there is one group."""
    if a.shape[0] == 1:
        np.matmul(a[0], b[0], out=out[0])
    else:
        np.matmul(a, b, out=out)


def add_bias_gradient(bias_diff, diff):
    """bias_diff[c] += sum of diff (num, C, P) over num and P (a GEMV, faster than ndarray.sum)."""
    num, channels, count = diff.shape
    per_plane = diff.reshape(num * channels, count) @ np.ones(count, diff.dtype)
    bias_diff += per_plane.reshape(num, channels).sum(axis=0)


class ConvolutionEngine:
    """The convolution of `num` images (in_channels, *spatial) into (out_channels, *out_spatial)
    outputs, in `group` groups, for one kernel, pad, stride and dilation and one element type.
    Its passes take the blobs' arrays as they are (any shape of that many elements) and the
    weights as the weight blob holds them, (out_channels, in_channels / group, *kernel)."""

    def __init__(self, num, in_channels, out_channels, group, spatial, kernel, pad, stride, dilation, dtype):
        self.num, self.in_channels, self.out_channels, self.group = num, in_channels, out_channels, group
        self.itemsize = np.dtype(dtype).itemsize
        self.im2col = Im2col(in_channels, spatial, kernel, pad, stride, dilation)
        self.chunks = self._chunks(self.im2col, out_channels)
        self.flipped = self._flipped_geometry()
        if self.flipped is not None:
            self.flipped_chunks = self._chunks(self.flipped, in_channels)

    def _chunks(self, geometry, out_channels):
        """Batch slices for GEMMs of (out_channels, rows) weights on `geometry`'s columns, after
        choosing its shifted-row columns when they are cheaper: the bigger of the column matrix
        (with `_per_image_product`'s row of ones) and the product bounds the working memory."""
        if _shift_ratio(geometry, out_channels // self.group) < 1:
            geometry.use_shifted_rows()
        per_image = max(geometry.rows + 1, out_channels) * geometry.out_count
        if geometry.shifted:
            shifted = max(geometry.shift_rows, geometry.kernel[0] * out_channels) * geometry.shift_count
            per_image = max(per_image, shifted)
        return chunk_slices(self.num, per_image * self.itemsize)

    # -- the passes --------------------------------------------------------------------------
    def convolve(self, weights, images, outputs, bias=None):
        """outputs = W * images (+ bias): Convolution's forward, Deconvolution's data gradient."""
        images, outputs, weights = self._images(images), self._outputs(outputs), self._grouped(weights)
        threads.each(lambda chunk: self._multiply(weights, images[chunk], outputs[chunk], bias), self.chunks)

    def convolve_transposed(self, weights, outputs, images, bias=None):
        """images = W^T * outputs (+ bias): Convolution's data gradient, Deconvolution's forward.
        By col2im, or as the convolution with the flipped kernel when that was judged cheaper."""
        images, outputs = self._images(images), self._outputs(outputs)
        if self.flipped is None:
            weights = self._grouped(weights)
            threads.each(lambda chunk: self._images_from_matrix(weights, self._output_matrix(outputs[chunk]),
                                                                images[chunk], bias), self.chunks)
            return
        weights = self._flipped_weights(weights)
        threads.each(lambda chunk: self._multiply(weights, outputs[chunk], images[chunk], bias, self.flipped),
                     self.flipped_chunks)

    def add_weight_gradient(self, weight_diff, images, outputs):
        """weight_diff += d<outputs, W * images>/dW, with `outputs` holding the output-side diff."""
        images, outputs, weight_diff = self._images(images), self._outputs(outputs), self._grouped(weight_diff)
        im = self.im2col
        per_image = im.image_major and im.out_count >= max(PER_IMAGE_GEMM_COLUMNS, self.out_channels)

        def part(chunks):
            """This thread's chunks' share of the gradient, (groups, rows, Co/groups)."""
            grad_t = np.zeros((self.group, weight_diff.shape[2], weight_diff.shape[1]), weight_diff.dtype)
            for chunk in chunks:
                if per_image:
                    self._add_per_image_weight_gradient(grad_t, outputs[chunk], self._columns(images[chunk]))
                else:
                    self._add_weight_gradient(grad_t, self._output_matrix(outputs[chunk]),
                                              self._columns(images[chunk]))
            return grad_t

        for grad_t in threads.run(part, threads.groups(self.chunks)):
            weight_diff += grad_t.transpose(0, 2, 1)

    # -- arrays in the convolution view ------------------------------------------------------
    def _images(self, array):
        return array.reshape((self.num, self.in_channels) + self.im2col.spatial)

    def _outputs(self, array):
        return array.reshape((self.num, self.out_channels) + self.im2col.out_spatial)

    def _grouped(self, weights):
        """Weight-shaped (Co, Ci/G, *kernel) -> (G, Co/G, rows/G)."""
        return weights.reshape(self.group, self.out_channels // self.group, -1)

    # -- the GEMM steps on one chunk (scratch buffers are reused: each result is valid until
    #    the next step that writes the same buffer) -----------------------------------------
    def _columns(self, images, geometry=None, shifted=False, ones_row=False):
        """im2col of image-side arrays (n, Ci, *spatial) -> (rows, out_count * n), with a row of
        ones appended when asked; or the geometry's shifted-row columns."""
        geometry = geometry or self.im2col
        if shifted:
            shape = (geometry.shift_rows, geometry.shift_count * images.shape[0])
            return geometry.shifted_columns(images, scratch("conv.columns", shape, images.dtype))
        col = scratch("conv.columns", (geometry.rows + ones_row, geometry.out_count * images.shape[0]), images.dtype)
        geometry.columns(images, col[:geometry.rows])
        if ones_row:
            col[-1] = 1
        return col

    def _output_matrix(self, outputs):
        """Output-side arrays (n, Co, *out_spatial) -> the matrix (Co, out_count * n) that
        multiplies the columns."""
        width = self.im2col.out_count * outputs.shape[0]
        return self.im2col.matrix(outputs, scratch("conv.matrix", (self.out_channels, width), outputs.dtype))

    def _multiply(self, weights, images, out, bias=None, geometry=None):
        """out (n, channels, *out_spatial) = weights * images (+ bias): the GEMM per group of the
        weights (groups, channels / groups, rows / groups) and the images' columns."""
        geometry = geometry or self.im2col
        if geometry.shifted:
            col = self._columns(images, geometry, shifted=True)
            return geometry.outputs(self._shifted_product(weights, col, geometry, len(images)), out, bias)
        if (geometry.image_major and bias is not None and self.group == 1
                and geometry.out_count >= PER_IMAGE_GEMM_COLUMNS):
            return self._per_image_product(weights, images, out, bias, geometry)
        col = self._columns(images, geometry)
        product = scratch("conv.product", (weights.shape[0] * weights.shape[1], col.shape[1]), col.dtype)
        _grouped_matmul(weights, col.reshape(self.group, -1, col.shape[1]),
                        product.reshape(self.group, -1, col.shape[1]))
        geometry.outputs(product, out, bias)

    def _per_image_product(self, weights, images, out, bias, geometry):
        """`_multiply` for one group with a bias and image-major columns: a GEMM per image (a
        batched matmul) writes the outputs in place, with the bias as an extra weight column
        times a row of ones in the columns, saving the copy (and bias pass) out of a product
        matrix."""
        n = len(images)
        col = self._columns(images, geometry, ones_row=True)
        weights = np.concatenate([weights[0], bias[:, None]], axis=1)
        per_image = col.reshape(-1, n, geometry.out_count).swapaxes(0, 1)
        np.matmul(weights, per_image, out=out.reshape(n, -1, geometry.out_count))

    def _shifted_product(self, weights, col, geometry, n):
        """weights @ columns from shifted-row columns: one GEMM by the weights of every first-axis
        kernel offset stacked, then the sum of each offset's rows over its column slice."""
        groups, m = weights.shape[:2]
        k0 = geometry.kernel[0]
        stacked = weights.reshape(groups, m, -1, k0, geometry.shift_rows // geometry.channels)
        stacked = np.ascontiguousarray(stacked.transpose(0, 3, 1, 2, 4)).reshape(groups, k0 * m, -1)
        full = scratch("conv.product", (groups * k0 * m, col.shape[1]), col.dtype)
        _grouped_matmul(stacked, col.reshape(groups, -1, col.shape[1]), full.reshape(groups, k0 * m, -1))
        full = full.reshape(groups, k0, m, -1)
        product = scratch("conv.shift_sum", (groups * m, geometry.out_count * n), col.dtype)
        summed = product.reshape(groups, m, -1)
        np.copyto(summed, full[:, 0, :, geometry.shift_slice(0, n)])
        for offset in range(1, k0):
            summed += full[:, offset, :, geometry.shift_slice(offset, n)]
        return product

    def _images_from_matrix(self, weights, mat, images, bias=None):
        """images (n, Ci, *spatial) = col2im(W^T @ matrix) (+ bias), W grouped (G, Co/G, rows/G).
        Overwrites the buffer that `_columns` returned."""
        col = scratch("conv.columns", (self.im2col.rows, mat.shape[1]), mat.dtype)
        _grouped_matmul(weights.transpose(0, 2, 1), mat.reshape(self.group, -1, mat.shape[1]),
                        col.reshape(self.group, -1, col.shape[1]))
        self.im2col.images(col, images, bias)

    def _add_weight_gradient(self, grad_t, mat, col):
        """grad_t (groups, rows, Co/groups) += (matrix @ columns^T)^T, computed as columns @
        matrix^T, the faster GEMM."""
        product = scratch("conv.weight_grad", grad_t.shape, mat.dtype)
        _grouped_matmul(col.reshape(self.group, -1, col.shape[1]),
                        mat.reshape(self.group, -1, mat.shape[1]).transpose(0, 2, 1), product)
        grad_t += product

    def _add_per_image_weight_gradient(self, grad_t, outputs, col):
        """`_add_weight_gradient` from image-major columns and the output-side diff (n, Co, ...)
        as it is: the sum over images of a GEMM per image (a batched matmul), sparing the copy
        to a matrix (measured: CIFAR-10 conv1 20%, LeNet conv1 2x, AlexNet conv1 15% faster;
        Co <= out_count keeps the per-image products within the chunk's memory)."""
        n, groups, count = len(outputs), self.group, self.im2col.out_count
        cols = col.reshape(groups, -1, n, count).swapaxes(1, 2)
        diffs = outputs.reshape(n, groups, -1, count)
        grads = scratch("conv.weight_grad", (n,) + grad_t.shape[1:], col.dtype)
        for g in range(groups):
            np.matmul(cols[g], diffs[:, g].swapaxes(1, 2), out=grads)
            grad_t[g] += grads.sum(axis=0)

    # -- the flipped-kernel transposed pass --------------------------------------------------
    def _flipped_geometry(self):
        """With stride 1, W^T * outputs is itself a convolution: of the outputs padded by
        extent - 1 - pad, with the kernel flipped and its two channel axes swapped. That swaps
        col2im's strided sums for an im2col copy, about half the cost per element, but may need
        a bigger GEMM and column matrix (when the image side is larger than the output side or
        has fewer channels); returns that geometry when its estimated cost is lower, else None."""
        im = self.im2col
        pads = tuple(d * (k - 1) - p for k, d, p in zip(im.kernel, im.dilation, im.pad))
        if any(s != 1 for s in im.stride) or any(p < 0 for p in pads) or im.is_1x1:
            return None
        flipped = Im2col(self.out_channels, im.out_spatial, im.kernel, pads, im.stride, im.dilation)
        # Per image and column-matrix element: the GEMM's multiply-adds, plus the element's move
        # in multiply-add units (an im2col copy ~ MOVE_COST, a col2im sum ~ 2 * MOVE_COST).
        col2im_cost = im.rows * im.out_count * (self.out_channels / self.group + 2 * MOVE_COST)
        flipped_cost = flipped.rows * flipped.out_count * (self.in_channels / self.group + MOVE_COST)
        flipped_cost *= min(1.0, _shift_ratio(flipped, self.in_channels // self.group))
        return flipped if flipped_cost < col2im_cost else None

    def _flipped_weights(self, weights):
        """W (G, Co/G, Ci/G, *kernel) -> (G, Ci/G, Co/G * prod(kernel)), the kernel reversed."""
        g, co, ci = self.group, self.out_channels // self.group, self.in_channels // self.group
        w = weights.reshape(g, co, ci, -1)[..., ::-1]
        return np.ascontiguousarray(w.transpose(0, 2, 1, 3)).reshape(g, ci, -1)


class Im2colEngine:
    """The Im2col layer's passes: the column matrices of `num` images (channels, *spatial) as a
    blob (num, rows, *out_spatial), and back, a chunk at a time."""

    def __init__(self, num, channels, spatial, kernel, pad, stride, dilation, dtype):
        self.num = num
        self.im2col = Im2col(channels, spatial, kernel, pad, stride, dilation)
        self.chunks = chunk_slices(num, self.im2col.column_bytes(np.dtype(dtype).itemsize))

    def columns(self, images, columns):
        """columns = im2col(images)."""
        im = self.im2col
        self._each_chunk(images, columns, "conv.columns",
                         lambda chunk_images, chunk_columns, col: im.outputs(im.columns(chunk_images, col),
                                                                             chunk_columns))

    def images(self, columns, images):
        """images = col2im(columns), the adjoint."""
        im = self.im2col
        self._each_chunk(images, columns, "conv.matrix",
                         lambda chunk_images, chunk_columns, mat: im.images(im.matrix(chunk_columns, mat),
                                                                            chunk_images))

    def _each_chunk(self, images, columns, buffer_name, work):
        """work(images, columns, buffer) on each chunk: its images (n, C, *spatial), its columns
        (n, rows, out_count) and a scratch column matrix (rows, out_count * n)."""
        im = self.im2col
        images = images.reshape((self.num, im.channels) + im.spatial)
        columns = columns.reshape(self.num, im.rows, im.out_count)
        for chunk in self.chunks:
            n = columns[chunk].shape[0]
            work(images[chunk], columns[chunk], scratch(buffer_name, (im.rows, im.out_count * n), images.dtype))
