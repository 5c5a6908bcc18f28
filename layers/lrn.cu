// Local response normalisation across channels (Caffe's ACROSS_CHANNELS):
//   scale = k + alpha / size * sum of x^2 over the `size` channels centred on c,
//   y = x * scale^-beta.
// One thread per element; each sums its own window (size is small), so there is no running sum.
// size is odd (the layer checks), so the window is symmetric and is its own adjoint.
#include "common.cuh"

#define LRN_SHAPE int C, int S, int size  // S: pixels per channel

// sum over the channel window around element i of v (an (outer, C, S) array).
__device__ __forceinline__ double window_sum(const Dtype* v, int i, int C, int S, int size) {
  const int pre = (size - 1) / 2;
  const int s = i % S, c = (i / S) % C;
  const Dtype* p = v + (size_t)(i / (S * C)) * C * S + s;
  double sum = 0;
  for (int j = max(c - pre, 0); j <= min(c + pre, C - 1); ++j) sum += p[(size_t)j * S];
  return sum;
}

// squares: x^2 (math_functions' multiply).
extern "C" __global__ void lrn_forward(int n, const Dtype* bottom, const Dtype* squares, LRN_SHAPE,
                                       Dtype alpha_over_size, Dtype k, Dtype negative_beta,
                                       Dtype* scale, Dtype* top) {
  CUDA_KERNEL_LOOP(i, n) {
    const Dtype sc = k + alpha_over_size * Dtype(window_sum(squares, i, C, S, size));
    scale[i] = sc;
    top[i] = bottom[i] * pow(sc, negative_beta);
  }
}

// ratio = dy * y / scale, with y recomputed from x (a later in-place layer may change top).
extern "C" __global__ void lrn_ratio(int n, const Dtype* bottom, const Dtype* scale,
                                     const Dtype* top_diff, Dtype negative_beta, Dtype* ratio) {
  CUDA_KERNEL_LOOP(i, n) ratio[i] = top_diff[i] * bottom[i] * pow(scale[i], negative_beta) / scale[i];
}

// dx = dy * scale^-beta - 2 alpha beta / size * x * (window sum of ratio).
extern "C" __global__ void lrn_backward(int n, const Dtype* bottom, const Dtype* scale,
                                        const Dtype* ratio, const Dtype* top_diff, LRN_SHAPE,
                                        Dtype negative_beta, Dtype cache_ratio, Dtype* bottom_diff) {
  CUDA_KERNEL_LOOP(i, n) {
    bottom_diff[i] = top_diff[i] * pow(scale[i], negative_beta) -
                     cache_ratio * bottom[i] * Dtype(window_sum(ratio, i, C, S, size));
  }
}
