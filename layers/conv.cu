// Convolution by im2col + GEMM, for 2-D images, with pad, stride and dilation.
//
// The column buffer holds a chunk of B images side by side: row r = (c * kh + i) * kw + j
// (input channel c, kernel offset i, j), column b * OH * OW + oh * OW + ow. One GEMM per group
// then covers the whole chunk (K x B*OH*OW, the rows of a group being contiguous), which keeps
// the GEMMs large; math_functions.cu's swap_axes01 moves results to and from the blob layout.
#include "common.cuh"

// One thread per (c, b, oh, ow) writes the kh*kw column entries of that output pixel.
extern "C" __global__ void im2col(int n, const Dtype* im, int B, int C, int H, int W, int kh,
                                  int kw, int ph, int pw, int sh, int sw, int dh, int dw, int OH,
                                  int OW, Dtype* col) {
  CUDA_KERNEL_LOOP(index, n) {
    const int ow = index % OW;
    const int oh = (index / OW) % OH;
    const int b = (index / (OW * OH)) % B;
    const int c = index / (OW * OH * B);
    const size_t pixels = (size_t)B * OH * OW;
    const Dtype* src = im + ((size_t)b * C + c) * H * W;
    Dtype* dst = col + (size_t)c * kh * kw * pixels + ((size_t)b * OH + oh) * OW + ow;
    const int h0 = oh * sh - ph, w0 = ow * sw - pw;
    for (int i = 0; i < kh; ++i) {
      const int h = h0 + i * dh;
      for (int j = 0; j < kw; ++j) {
        const int w = w0 + j * dw;
        *dst = (h >= 0 && h < H && w >= 0 && w < W) ? src[h * W + w] : Dtype(0);
        dst += pixels;
      }
    }
  }
}

// The adjoint of im2col: one thread per image element (b, c, h, w) gathers every column entry
// that read it (no atomics, so the sums are deterministic) and overwrites the image.
extern "C" __global__ void col2im(int n, const Dtype* col, int B, int C, int H, int W, int kh,
                                  int kw, int ph, int pw, int sh, int sw, int dh, int dw, int OH,
                                  int OW, Dtype* im) {
  CUDA_KERNEL_LOOP(index, n) {
    const int w = index % W + pw;  // coordinates in the padded image
    const int h = (index / W) % H + ph;
    const int c = (index / (W * H)) % C;
    const int b = index / (W * H * C);
    const size_t pixels = (size_t)B * OH * OW;
    const int extent_h = (kh - 1) * dh + 1, extent_w = (kw - 1) * dw + 1;
    // Output rows/columns whose window can cover (h, w).
    const int oh_start = h < extent_h ? 0 : (h - extent_h) / sh + 1;
    const int oh_end = min(h / sh + 1, OH);
    const int ow_start = w < extent_w ? 0 : (w - extent_w) / sw + 1;
    const int ow_end = min(w / sw + 1, OW);
    double sum = 0;
    for (int oh = oh_start; oh < oh_end; ++oh) {
      const int i = h - oh * sh;
      if (i % dh) continue;
      for (int ow = ow_start; ow < ow_end; ++ow) {
        const int j = w - ow * sw;
        if (j % dw) continue;
        const size_t row = ((size_t)c * kh + i / dh) * kw + j / dw;
        sum += col[row * pixels + ((size_t)b * OH + oh) * OW + ow];
      }
    }
    im[index] = Dtype(sum);
  }
}
