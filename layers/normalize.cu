// SSD's Normalize over an (N, C, S) array: norms per image (across_spatial) or per pixel, then
// y = scale * x / norm, and the exact gradient. Sums are taken in double.
#include "common.cuh"

// norm[g] = sqrt(sum of a[k]^2 (times b[k], when given) + eps) over group g: one block per group,
// a group being an image (per_group = C * S, stride 1) or a pixel (per_group = C, stride S).
extern "C" __global__ void normalize_group_sums(int groups, int C, int S, int across, const Dtype* a,
                                                const Dtype* b, Dtype eps, int take_sqrt,
                                                Dtype* out) {
  for (int g = blockIdx.x; g < groups; g += gridDim.x) {
    const int per_group = across ? C * S : C;
    const size_t base = across ? (size_t)g * C * S : (size_t)(g / S) * C * S + g % S;
    const int step = across ? 1 : S;
    double sum = 0;
    for (int k = threadIdx.x; k < per_group; k += blockDim.x) {
      const size_t i = base + (size_t)k * step;
      sum += b ? (double)a[i] * b[i] : (double)a[i] * a[i];
    }
    sum = block_sum(sum);
    if (threadIdx.x == 0) out[g] = take_sqrt ? Dtype(sqrt(sum + eps)) : Dtype(sum);
  }
}

__device__ __forceinline__ int normalize_group(int i, int C, int S, int across) {
  return across ? i / (C * S) : (i / (C * S)) * S + i % S;
}

// y = scale * x / norm; scale[0] when shared, else scale[c].
extern "C" __global__ void normalize_forward(int n, int C, int S, int across, int shared,
                                             const Dtype* x, const Dtype* norm, const Dtype* scale,
                                             Dtype* y) {
  CUDA_KERNEL_LOOP(i, n) {
    const Dtype s = shared ? scale[0] : scale[(i / S) % C];
    y[i] = s * (x[i] / norm[normalize_group(i, C, S, across)]);
  }
}

// g = scale * dy (into dx first), then dx = g / norm - x * <x, g> / norm^3 with dots[group] = <x, g>.
extern "C" __global__ void normalize_scaled_diff(int n, int C, int S, int shared, const Dtype* dy,
                                                 const Dtype* scale, Dtype* g) {
  CUDA_KERNEL_LOOP(i, n) g[i] = dy[i] * (shared ? scale[0] : scale[(i / S) % C]);
}

extern "C" __global__ void normalize_backward(int n, int C, int S, int across, const Dtype* x,
                                              const Dtype* norm, const Dtype* dots, Dtype* dx) {
  CUDA_KERNEL_LOOP(i, n) {
    const int g = normalize_group(i, C, S, across);
    const Dtype r = norm[g];
    dx[i] = dx[i] / r - x[i] * (dots[g] / (r * r * r));
  }
}

// products = x / norm * dy, whose sums (per channel, or all) are the scale's gradient.
extern "C" __global__ void normalize_scale_terms(int n, int C, int S, int across, const Dtype* x,
                                                 const Dtype* norm, const Dtype* dy, Dtype* products) {
  CUDA_KERNEL_LOOP(i, n) products[i] = x[i] / norm[normalize_group(i, C, S, across)] * dy[i];
}
