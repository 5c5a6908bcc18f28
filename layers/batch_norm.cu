// BatchNorm's per-channel pieces; the channel sums come from math_functions.cu's channel_reduce.
#include "common.cuh"

// The stored statistics: mean = mean_sum / s and variance = var_sum / s per channel, s the scale
// factor (s = 0: a layer never updated, whose statistics count as zero, as Caffe's). 1 / s is
// taken in double and rounded once, as the host did before passing it to a scaling.
extern "C" __global__ void bn_stored_statistics(int C, const Dtype* mean_sum, const Dtype* var_sum,
                                                const Dtype* scale_factor, Dtype* mean, Dtype* var) {
  const double s = scale_factor[0];
  const Dtype inv_s = s == 0 ? Dtype(0) : Dtype(1.0 / s);
  CUDA_KERNEL_LOOP(c, C) {
    mean[c] = inv_s * mean_sum[c];
    var[c] = inv_s * var_sum[c];
  }
}

// y = x - mean[c] over an (outer, C, S) array.
extern "C" __global__ void bn_center(int n, int C, int S, const Dtype* x, const Dtype* mean, Dtype* y) {
  CUDA_KERNEL_LOOP(i, n) y[i] = x[i] - mean[(i / S) % C];
}

// inv_std = 1 / sqrt(var + eps), per channel.
extern "C" __global__ void bn_inv_std(int C, const Dtype* var, Dtype eps, Dtype* inv_std) {
  CUDA_KERNEL_LOOP(c, C) inv_std[c] = Dtype(1) / sqrt(var[c] + eps);
}

// Training-mode gradient with y the normalised output and m = outer * S:
// dx = (dy - sum_dy[c] / m - y * sum_dy_y[c] / m) * inv_std[c].
extern "C" __global__ void bn_backward(int n, int C, int S, const Dtype* dy, const Dtype* y,
                                       const Dtype* sum_dy, const Dtype* sum_dy_y, Dtype inv_m,
                                       const Dtype* inv_std, Dtype* dx) {
  CUDA_KERNEL_LOOP(i, n) {
    const int c = (i / S) % C;
    dx[i] = (dy[i] - sum_dy[c] * inv_m - y[i] * sum_dy_y[c] * inv_m) * inv_std[c];
  }
}
