// Max and average pooling over 2-D windows (global pooling is the window = the whole image),
// with Caffe's rules: windows start at -pad, max records the argmax (h * W + w) for backward,
// average divides by the window size clipped to the padded image (pad counts, beyond it not).
#include "common.cuh"

#define POOL_ARGS                                                                               \
  int C, int H, int W, int PH, int PW, int kh, int kw, int sh, int sw, int ph, int pw

// One thread per output element (n, c, y, x). mask (int) or top_mask (Dtype, Caffe's optional
// second top) receives the argmax; the other pointer is null.
extern "C" __global__ void max_pool_forward(int count, const Dtype* bottom, POOL_ARGS, Dtype* top,
                                            int* mask, Dtype* top_mask) {
  CUDA_KERNEL_LOOP(index, count) {
    const int x = index % PW, y = (index / PW) % PH;
    const int nc = index / (PW * PH);
    int hstart = y * sh - ph, wstart = x * sw - pw;
    const int hend = min(hstart + kh, H), wend = min(wstart + kw, W);
    hstart = max(hstart, 0);
    wstart = max(wstart, 0);
    const Dtype* src = bottom + (size_t)nc * H * W;
    Dtype best = -FLT_MAX;
    int arg = -1;
    for (int h = hstart; h < hend; ++h)
      for (int w = wstart; w < wend; ++w)
        if (src[h * W + w] > best) {
          best = src[h * W + w];
          arg = h * W + w;
        }
    top[index] = best;
    if (mask) mask[index] = arg;
    else top_mask[index] = Dtype(arg);
  }
}

// One thread per input element gathers the gradient of every window whose argmax it was.
extern "C" __global__ void max_pool_backward(int count, const Dtype* top_diff, const int* mask,
                                             const Dtype* top_mask, POOL_ARGS, Dtype* bottom_diff) {
  CUDA_KERNEL_LOOP(index, count) {
    const int w = index % W, h = (index / W) % H;
    const int nc = index / (W * H);
    const int ystart = (h + ph < kh) ? 0 : (h + ph - kh) / sh + 1;
    const int yend = min((h + ph) / sh + 1, PH);
    const int xstart = (w + pw < kw) ? 0 : (w + pw - kw) / sw + 1;
    const int xend = min((w + pw) / sw + 1, PW);
    const size_t offset = (size_t)nc * PH * PW;
    const int self = h * W + w;
    Dtype grad = 0;
    for (int y = ystart; y < yend; ++y)
      for (int x = xstart; x < xend; ++x) {
        const size_t k = offset + y * PW + x;
        const int arg = mask ? mask[k] : int(top_mask[k]);
        if (arg == self) grad += top_diff[k];
      }
    bottom_diff[index] = grad;
  }
}

__device__ __forceinline__ int window_size(int y, int x, POOL_ARGS) {
  const int hstart = y * sh - ph, wstart = x * sw - pw;
  const int hend = min(hstart + kh, H + ph), wend = min(wstart + kw, W + pw);
  // A window wholly past the image (stride > kernel, no pad) has sum 0; dividing by 1 keeps it 0.
  return max((hend - hstart) * (wend - wstart), 1);
}

extern "C" __global__ void ave_pool_forward(int count, const Dtype* bottom, POOL_ARGS, Dtype* top) {
  CUDA_KERNEL_LOOP(index, count) {
    const int x = index % PW, y = (index / PW) % PH;
    const int nc = index / (PW * PH);
    const int hstart = max(y * sh - ph, 0), wstart = max(x * sw - pw, 0);
    const int hend = min(y * sh - ph + kh, H), wend = min(x * sw - pw + kw, W);
    const Dtype* src = bottom + (size_t)nc * H * W;
    double sum = 0;
    for (int h = hstart; h < hend; ++h)
      for (int w = wstart; w < wend; ++w) sum += src[h * W + w];
    top[index] = Dtype(sum / window_size(y, x, C, H, W, PH, PW, kh, kw, sh, sw, ph, pw));
  }
}

extern "C" __global__ void ave_pool_backward(int count, const Dtype* top_diff, POOL_ARGS,
                                             Dtype* bottom_diff) {
  CUDA_KERNEL_LOOP(index, count) {
    const int w = index % W + pw, h = (index / W) % H + ph;  // in the padded image
    const int nc = index / (W * H);
    const int ystart = (h < kh) ? 0 : (h - kh) / sh + 1;
    const int yend = min(h / sh + 1, PH);
    const int xstart = (w < kw) ? 0 : (w - kw) / sw + 1;
    const int xend = min(w / sw + 1, PW);
    const Dtype* diff = top_diff + (size_t)nc * PH * PW;
    double grad = 0;
    for (int y = ystart; y < yend; ++y)
      for (int x = xstart; x < xend; ++x)
        grad += diff[y * PW + x] / window_size(y, x, C, H, W, PH, PW, kh, kw, sh, sw, ph, pw);
    bottom_diff[index] = Dtype(grad);
  }
}
