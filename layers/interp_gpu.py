"""The GPU half of Interp: Y = Rh X Rw^T as two GEMMs over the images (our SGEMM), backward the
transposed products; the interpolation matrices come from the layer for each shape."""
from nvcaffe_py.backends.cuda import memory
from nvcaffe_py.backends.cuda.gpu_half import DeviceBuffer, GPUHalf
from nvcaffe_py.backends.cuda.sgemm import gemm


class InterpGPU(GPUHalf):
    def __init__(self, *, layer):
        self.layer = layer  # its `matrices` for the current shapes
        self.rows, self.cols_t = DeviceBuffer(layer.dtype), DeviceBuffer(layer.dtype)
        self._uploaded = None

    def _device_matrices(self):
        rows, cols_t = self.layer.matrices
        if self._uploaded is not rows:
            memory.copy_to_device(self.rows.get(rows.size), rows.reshape(-1))
            memory.copy_to_device(self.cols_t.get(cols_t.size), cols_t.reshape(-1))
            self._uploaded = rows
        return self.rows.get(rows.size), self.cols_t.get(cols_t.size), rows.shape, cols_t.shape

    def _resize(self, x, y, planes, transposed):
        """y[p] = Rh x[p] Rw^T (transposed: Rh^T x[p] Rw) for each of `planes` planes."""
        rows, cols_t, (out_h, in_h), (in_w, out_w) = self._device_matrices()
        (h0, w0), (h1, w1) = ((out_h, out_w), (in_h, in_w)) if transposed else ((in_h, in_w), (out_h, out_w))
        middle = memory.empty(planes * h0 * w1, y.dtype)
        # x (planes * h0, w0) times Rw^T (w0 = in_w, w1 = out_w), or times Rw when transposed
        gemm(False, transposed, planes * h0, w1, w0, 1.0, x, cols_t, 0.0, middle)
        # then Rh (h1, h0), or Rh^T, times each plane's (h0, w1)
        gemm(transposed, False, h1, w1, h0, 1.0, rows, middle, 0.0, y, batch=planes, stride_b=h0 * w1,
             stride_c=h1 * w1)

    def forward(self, bottom, top):
        planes = bottom[0].count(0, 2)
        self._resize(bottom[0].gpu_data_readonly(), top[0].gpu_data, planes, transposed=False)

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            self._resize(top[0].gpu_diff_readonly(), bottom[0].gpu_diff, bottom[0].count(0, 2), transposed=True)
