"""Convolution, Deconvolution and Im2col, as Caffe's BaseConvolutionLayer and its children (CPU).

`convolution_param` gives num_output, bias_term, group, axis, and per spatial axis (one value for
all, or one each) kernel_size, pad, stride and dilation, or their 2-D kernel_h/_w, pad_h/_w,
stride_h/_w spellings. Every axis after `axis` is spatial, so 1-D and 3-D convolutions work too.

Both layers see a "convolution view" of their blobs: an image side, which im2col turns into
columns (Convolution: the bottom; Deconvolution: the top), and an output side (the other one),
related by output = W * columns. Deconvolution's forward is then Convolution's backward-data pass
and vice versa, as in Caffe. The batch is processed in chunks whose column matrix stays under
COLUMN_BUFFER_BYTES, so memory does not grow with the batch while each GEMM still covers many
images (see im2col.py for the layout). With stride 1 the backward-data pass may instead run as a
convolution with the flipped kernel, when that is estimated cheaper than col2im. A product
W * columns uses im2col's shifted-row columns when they are estimated cheaper, and with
image-major columns, a bias and one group, a GEMM per image with the bias folded in.
"""
import numpy as np

from nvcaffe_py.backends.cpu import threads as parallel
from nvcaffe_py.layer import Layer
from nvcaffe_py.registry import register_layer
from nvcaffe_py.backends.cpu.scratch import scratch

from .im2col import Im2col, output_size

# The working memory of one chunk (its column matrix or GEMM product): bounded whatever the batch,
# as Caffe's one-image column buffer is, yet thousands of GEMM columns per chunk.
COLUMN_BUFFER_BYTES = 16 << 20
# What moving one element through im2col costs, in GEMM multiply-adds (OpenBLAS, calibrated on
# the LeNet, CIFAR10-quick and AlexNet layer shapes).
MOVE_COST = 16
# Output positions per image from which a GEMM per image (image-major columns, the bias folded
# in) beats one GEMM for the chunk and a copy of its product (measured per forward: 14x14 1x1
# 13% slower; LeNet conv1, 24x24, 35% faster; CIFAR-10 conv1, 32x32, 15%; AlexNet conv1 10%).
PER_IMAGE_GEMM_COLUMNS = 512
# OpenBLAS's time per multiply-add grows as (1 + SHORT_GEMM_COST / M) for a product with few
# rows M (2 cores, K = 800: 145 GFLOPS at M = 32, 226 at 64, 279 at 160).
SHORT_GEMM_COST = 25


def spatial_params(layer, param, num_spatial):
    """(kernel, stride, pad, dilation) tuples, one entry per spatial axis, from a ConvolutionParameter."""

    def per_axis(name, default, h_name=None, w_name=None):
        values = list(getattr(param, name))
        if h_name and (param.HasField(h_name) or param.HasField(w_name)):
            if num_spatial != 2:
                raise layer.error(f"{h_name} & {w_name} can only be used for 2-D convolution "
                                  f"(this input has {num_spatial} spatial axes)")
            if values:
                raise layer.error(f"give either {name} or {h_name}/{w_name}, not both")
            return (getattr(param, h_name), getattr(param, w_name))
        allowed = {1, num_spatial} if default is None else {0, 1, num_spatial}
        if len(values) not in allowed:
            raise layer.error(f"{name} must be given once or once per spatial axis "
                              f"(given {len(values)} times; {num_spatial} spatial axes)")
        if not values:
            return (default,) * num_spatial
        return tuple(values[0 if len(values) == 1 else i] for i in range(num_spatial))

    kernel = per_axis("kernel_size", None, "kernel_h", "kernel_w")
    stride = per_axis("stride", 1, "stride_h", "stride_w")
    pad = per_axis("pad", 0, "pad_h", "pad_w")
    dilation = per_axis("dilation", 1)
    for name, values in (("kernel size", kernel), ("stride", stride), ("dilation", dilation)):
        if any(v <= 0 for v in values):
            raise layer.error(f"{name} must be positive, got {list(values)}")
    return kernel, stride, pad, dilation


def convolved_shape(layer, spatial, kernel, pad, stride, dilation):
    """Output spatial shape of a convolution; an error naming the layer when the kernel does not fit."""
    out = tuple(map(output_size, spatial, kernel, pad, stride, dilation))
    for axis, (size, o) in enumerate(zip(spatial, out)):
        if o < 1:
            extent = dilation[axis] * (kernel[axis] - 1) + 1
            raise layer.error(f"kernel extent {extent} is larger than the padded input "
                              f"{size + 2 * pad[axis]} on spatial axis {axis}")
    return out


def chunk_slices(num, bytes_per_image):
    """Even slices of the batch that fit COLUMN_BUFFER_BYTES (at least one image each), as many
    as a multiple of the CPU thread count where the batch allows, so the threads share them
    evenly (each thread has its own buffers)."""
    if num == 0:
        return []
    per_chunk = max(1, COLUMN_BUFFER_BYTES // max(bytes_per_image, 1))
    threads = parallel.thread_count()
    count = -(-num // per_chunk)
    count = min(num, -(-count // threads) * threads)
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


class BaseConvolution(Layer):
    min_bottom = 1
    min_top = 1
    # Deconvolution: the top is the image side, and the weights are (channels, num_output/group, k...).
    reverse_dimensions = False

    def setup(self, bottom, top):
        if len(top) != len(bottom):
            raise self.error(f"needs one top per bottom, got {len(bottom)} bottoms and {len(top)} tops")
        param = self.layer_param.convolution_param
        self.channel_axis = self.canonical_axis(bottom[0], param.axis)
        self.num_spatial = bottom[0].num_axes - self.channel_axis - 1
        self.kernel, self.stride, self.pad, self.dilation = spatial_params(self, param, self.num_spatial)
        self.channels = bottom[0].shape[self.channel_axis]
        self.num_output = param.num_output
        self.group = param.group
        if self.num_output <= 0:
            raise self.error("num_output must be positive")
        if self.group <= 0:
            raise self.error("group must be positive")
        if self.channels % self.group:
            raise self.error(f"{self.channels} input channels are not divisible by group {self.group}")
        if self.num_output % self.group:
            raise self.error(f"num_output {self.num_output} is not divisible by group {self.group}")
        if self.reverse_dimensions:
            self.conv_in_channels, self.conv_out_channels = self.num_output, self.channels
        else:
            self.conv_in_channels, self.conv_out_channels = self.channels, self.num_output
        weight_shape = (self.conv_out_channels, self.conv_in_channels // self.group) + self.kernel
        self.bias_term = param.bias_term
        specs = [("weight", weight_shape, param.weight_filler)]
        if self.bias_term:
            specs.append(("bias", (self.num_output,), param.bias_filler))
        self.init_param_blobs(specs)

    def compute_output_shape(self, spatial):
        raise NotImplementedError

    def reshape(self, bottom, top):
        first = bottom[0]
        if first.num_axes != self.channel_axis + 1 + self.num_spatial:
            raise self.error(f"bottom has {first.num_axes} axes; the layer was set up for "
                             f"{self.channel_axis + 1 + self.num_spatial} (num_axes may not change)")
        if first.shape[self.channel_axis] != self.channels:
            raise self.error(f"bottom has {first.shape[self.channel_axis]} channels; "
                             f"the layer was set up for {self.channels}")
        for i, blob in enumerate(bottom[1:], start=1):
            if blob.shape != first.shape:
                raise self.error(f"bottom[{i}] has shape {blob.shape} but bottom[0] has {first.shape}; "
                                 "all bottoms must have the same shape")
        self.num = first.count(0, self.channel_axis)
        spatial = first.shape[self.channel_axis + 1:]
        out_spatial = self.compute_output_shape(spatial)
        for blob in top:
            blob.reshape(first.shape[:self.channel_axis] + (self.num_output,) + out_spatial)
        image_spatial = out_spatial if self.reverse_dimensions else spatial
        self.im2col = Im2col(self.conv_in_channels, image_spatial, self.kernel, self.pad, self.stride, self.dilation)
        self.chunks = self._chunks(self.im2col, self.conv_out_channels)
        self.flipped = self._flipped_geometry()
        if self.flipped is not None:
            self.flipped_chunks = self._chunks(self.flipped, self.conv_in_channels)

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
        return chunk_slices(self.num, per_image * self.dtype.itemsize)

    # -- arrays in the convolution view ------------------------------------------------------
    def _images(self, array):
        return array.reshape((self.num, self.conv_in_channels) + self.im2col.spatial)

    def _outputs(self, array):
        return array.reshape((self.num, self.conv_out_channels) + self.im2col.out_spatial)

    def _weights(self):
        return self.blobs[0].data.reshape(self.group, self.conv_out_channels // self.group, -1)

    def _bias(self):
        return self.blobs[1].data if self.bias_term else None

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
        return self.im2col.matrix(outputs, scratch("conv.matrix", (self.conv_out_channels, width), outputs.dtype))

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

    def _images_from_matrix(self, mat, images, bias=None):
        """images (n, Ci, *spatial) = col2im(W^T @ matrix) (+ bias). Overwrites the buffer that
        `_columns` returned."""
        col = scratch("conv.columns", (self.im2col.rows, mat.shape[1]), mat.dtype)
        _grouped_matmul(self._weights().transpose(0, 2, 1), mat.reshape(self.group, -1, mat.shape[1]),
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

    # -- the layer's CPU passes: Convolution maps bottom (image side) to top (output side) by
    #    _convolve; Deconvolution, with reverse_dimensions, the other way by its transpose ------
    def _sides(self, bottom_array, top_array):
        """(image-side, output-side) views of a bottom array and a top array."""
        if self.reverse_dimensions:
            return self._images(top_array), self._outputs(bottom_array)
        return self._images(bottom_array), self._outputs(top_array)

    def forward_cpu(self, bottom, top):
        for b, t in zip(bottom, top):
            images, outputs = self._sides(b.data, t.data)
            if self.reverse_dimensions:
                self._convolve_transposed(outputs, images, self._bias())
            else:
                self._convolve(images, outputs, self._bias())

    def backward_cpu(self, top, propagate_down, bottom):
        need_weight, need_bias = self._need_param_gradients()
        for i, (b, t) in enumerate(zip(bottom, top)):
            if need_bias:
                self._add_bias_gradient(t.diff)
            if need_weight:
                self._weight_gradient(*self._sides(b.data, t.diff))
            if propagate_down[i]:
                images, outputs = self._sides(b.diff, t.diff)
                if self.reverse_dimensions:
                    self._convolve(images, outputs)
                else:
                    self._convolve_transposed(outputs, images)

    # -- whole passes ------------------------------------------------------------------------
    def _convolve(self, images, outputs, bias=None):
        """outputs = W * images (+ bias): Convolution's forward, Deconvolution's data gradient."""
        weights = self._weights()
        parallel.each(lambda chunk: self._multiply(weights, images[chunk], outputs[chunk], bias), self.chunks)

    def _convolve_transposed(self, outputs, images, bias=None):
        """images = W^T * outputs (+ bias): Convolution's data gradient, Deconvolution's forward.
        By col2im, or as the convolution with the flipped kernel when that was judged cheaper."""
        if self.flipped is None:
            parallel.each(lambda chunk: self._images_from_matrix(self._output_matrix(outputs[chunk]),
                                                                 images[chunk], bias), self.chunks)
            return
        weights = self._flipped_weights()
        parallel.each(lambda chunk: self._multiply(weights, outputs[chunk], images[chunk], bias, self.flipped),
                      self.flipped_chunks)

    def _weight_gradient(self, images, outputs):
        """W.diff += d<outputs, W * images>/dW, with `outputs` holding the output-side diff."""
        im = self.im2col
        per_image = im.image_major and im.out_count >= max(PER_IMAGE_GEMM_COLUMNS, self.conv_out_channels)
        weight_diff = self.blobs[0].diff.reshape(self.group, self.conv_out_channels // self.group, -1)

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

        for grad_t in parallel.run(part, parallel.groups(self.chunks)):
            weight_diff += grad_t.transpose(0, 2, 1)

    # -- the flipped-kernel data gradient ----------------------------------------------------
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
        flipped = Im2col(self.conv_out_channels, im.out_spatial, im.kernel, pads, im.stride, im.dilation)
        # Per image and column-matrix element: the GEMM's multiply-adds, plus the element's move
        # in multiply-add units (an im2col copy ~ MOVE_COST, a col2im sum ~ 2 * MOVE_COST).
        col2im_cost = im.rows * im.out_count * (self.conv_out_channels / self.group + 2 * MOVE_COST)
        flipped_cost = flipped.rows * flipped.out_count * (self.conv_in_channels / self.group + MOVE_COST)
        flipped_cost *= min(1.0, _shift_ratio(flipped, self.conv_in_channels // self.group))
        return flipped if flipped_cost < col2im_cost else None

    def _flipped_weights(self):
        """W (G, Co/G, Ci/G, *kernel) -> (G, Ci/G, Co/G * prod(kernel)), the kernel reversed."""
        g, co, ci = self.group, self.conv_out_channels // self.group, self.conv_in_channels // self.group
        w = self.blobs[0].data.reshape(g, co, ci, -1)[..., ::-1]
        return np.ascontiguousarray(w.transpose(0, 2, 1, 3)).reshape(g, ci, -1)

    def _add_bias_gradient(self, top_diff):
        pixels = int(np.prod(top_diff.shape[self.channel_axis + 1:], dtype=np.int64))
        _add_plane_sums(self.blobs[1].diff, top_diff.reshape(self.num, self.num_output, pixels))

    def _need_param_gradients(self):
        """(weight gradient wanted, bias gradient wanted)."""
        return self.param_propagate_down[0], self.bias_term and self.param_propagate_down[1]


@register_layer("Convolution")
class ConvolutionLayer(BaseConvolution):
    def compute_output_shape(self, spatial):
        return convolved_shape(self, spatial, self.kernel, self.pad, self.stride, self.dilation)

    def forward_gpu(self, bottom, top):
        from . import conv_gpu

        conv_gpu.convolution_forward(self, bottom, top)

    def backward_gpu(self, top, propagate_down, bottom):
        from . import conv_gpu

        conv_gpu.convolution_backward(self, top, propagate_down, bottom)


@register_layer("Deconvolution")
class DeconvolutionLayer(BaseConvolution):
    reverse_dimensions = True

    def compute_output_shape(self, spatial):
        out = tuple(s * (size - 1) + d * (k - 1) + 1 - 2 * p
                    for size, k, p, s, d in zip(spatial, self.kernel, self.pad, self.stride, self.dilation))
        for axis, o in enumerate(out):
            if o < 1:
                raise self.error(f"pad {self.pad[axis]} leaves no output on spatial axis {axis}")
        return out

    def forward_gpu(self, bottom, top):
        from . import conv_gpu

        conv_gpu.deconvolution_forward(self, bottom, top)

    def backward_gpu(self, top, propagate_down, bottom):
        from . import conv_gpu

        conv_gpu.deconvolution_backward(self, top, propagate_down, bottom)


def _add_plane_sums(bias_diff, diff):
    """bias_diff[c] += sum of diff (num, C, P) over num and P (a GEMV, faster than ndarray.sum)."""
    num, channels, count = diff.shape
    per_plane = diff.reshape(num * channels, count) @ np.ones(count, diff.dtype)
    bias_diff += per_plane.reshape(num, channels).sum(axis=0)


@register_layer("Im2col")
class Im2colLayer(Layer):
    """The column matrix itself as a blob: (..., C * prod(kernel), *output spatial), as Caffe's."""
    exact_num_bottom = 1
    exact_num_top = 1

    def setup(self, bottom, top):
        param = self.layer_param.convolution_param
        self.channel_axis = self.canonical_axis(bottom[0], param.axis)
        self.num_spatial = bottom[0].num_axes - self.channel_axis - 1
        if self.num_spatial < 1:
            raise self.error("needs at least one spatial axis after the channel axis")
        self.kernel, self.stride, self.pad, self.dilation = spatial_params(self, param, self.num_spatial)

    def reshape(self, bottom, top):
        shape, axis = bottom[0].shape, self.channel_axis
        if len(shape) != axis + 1 + self.num_spatial:
            raise self.error(f"bottom has {len(shape)} axes; the layer was set up for {axis + 1 + self.num_spatial}")
        out_spatial = convolved_shape(self, shape[axis + 1:], self.kernel, self.pad, self.stride, self.dilation)
        self.im2col = Im2col(shape[axis], shape[axis + 1:], self.kernel, self.pad, self.stride, self.dilation)
        self.num = bottom[0].count(0, axis)
        top[0].reshape(shape[:axis] + (self.im2col.rows,) + out_spatial)
        self.chunks = chunk_slices(self.num, self.im2col.column_bytes(self.dtype.itemsize))

    def _arrays(self, bottom_array, top_array):
        im = self.im2col
        return (bottom_array.reshape((self.num, im.channels) + im.spatial),
                top_array.reshape(self.num, im.rows, im.out_count))

    def forward_cpu(self, bottom, top):
        im = self.im2col
        images, columns = self._arrays(bottom[0].data, top[0].data)
        for chunk in self.chunks:
            n = columns[chunk].shape[0]
            col = im.columns(images[chunk], scratch("conv.columns", (im.rows, im.out_count * n), images.dtype))
            im.outputs(col, columns[chunk])

    def backward_cpu(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        im = self.im2col
        images_diff, columns_diff = self._arrays(bottom[0].diff, top[0].diff)
        for chunk in self.chunks:
            n = columns_diff[chunk].shape[0]
            mat = im.matrix(columns_diff[chunk], scratch("conv.matrix", (im.rows, im.out_count * n), images_diff.dtype))
            im.images(mat, images_diff[chunk])
