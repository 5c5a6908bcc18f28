// Vector and per-channel primitives shared by layers and solvers (Caffe's math_functions.cu):
// set/axpy/axpby/scale/elementwise ops, two-stage deterministic reductions (dot, asum, sumsq),
// and the per-channel broadcasts and reductions over (outer, channels, inner) arrays that bias,
// Scale, BatchNorm and PReLU share.
#include "common.cuh"

extern "C" __global__ void set_value(int n, Dtype alpha, Dtype* y) {
  CUDA_KERNEL_LOOP(i, n) y[i] = alpha;
}

extern "C" __global__ void axpy(int n, Dtype alpha, const Dtype* x, Dtype* y) {
  CUDA_KERNEL_LOOP(i, n) y[i] += alpha * x[i];
}

// y = alpha * x + beta * y; beta == 0 does not read y.
extern "C" __global__ void axpby(int n, Dtype alpha, const Dtype* x, Dtype beta, Dtype* y) {
  CUDA_KERNEL_LOOP(i, n) y[i] = (beta != Dtype(0)) ? alpha * x[i] + beta * y[i] : alpha * x[i];
}

extern "C" __global__ void add_scalar(int n, Dtype alpha, Dtype* y) {
  CUDA_KERNEL_LOOP(i, n) y[i] += alpha;
}

// y += the float64 scalar *alpha holds on the device (a sum left there by total_into).
extern "C" __global__ void add_device_scalar(int n, const double* alpha, Dtype* y) {
  const Dtype a = Dtype(alpha[0]);
  CUDA_KERNEL_LOOP(i, n) y[i] += a;
}

extern "C" __global__ void multiply(int n, const Dtype* a, const Dtype* b, Dtype* y) {
  CUDA_KERNEL_LOOP(i, n) y[i] = a[i] * b[i];
}

extern "C" __global__ void divide(int n, const Dtype* a, const Dtype* b, Dtype* y) {
  CUDA_KERNEL_LOOP(i, n) y[i] = a[i] / b[i];
}

// Partial sums of one of: x (op 0), |x| (1), x^2 (2), x*y (3), one per block, in double.
extern "C" __global__ void reduce_partial(int n, int op, const Dtype* x, const Dtype* y,
                                          double* partial) {
  double sum = 0;
  CUDA_KERNEL_LOOP(i, n) {
    const double v = x[i];
    sum += op == 0 ? v : op == 1 ? fabs(v) : op == 2 ? v * v : v * (double)y[i];
  }
  sum = block_sum(sum);
  if (threadIdx.x == 0) partial[blockIdx.x] = sum;
}

// The total of `n` partial sums, by one block (fixed order: results repeat bit for bit).
extern "C" __global__ void reduce_final(int n, const double* partial, double* out) {
  double sum = 0;
  for (int i = threadIdx.x; i < n; i += blockDim.x) sum += partial[i];
  sum = block_sum(sum);
  if (threadIdx.x == 0) out[0] = sum;
}

// y[o, c, i] = x[o, c, i] * scale[c] + bias[c]; either pointer may be null (1 and 0).
extern "C" __global__ void channel_affine(int n, int channels, int inner, const Dtype* x,
                                          const Dtype* scale, const Dtype* bias, Dtype* y) {
  CUDA_KERNEL_LOOP(i, n) {
    const int c = (i / inner) % channels;
    Dtype v = x[i];
    if (scale) v *= scale[c];
    if (bias) v += bias[c];
    y[i] = v;
  }
}

// out[c] = beta * out[c] + sum over o, i of a[o, c, i] (* b[o, c, i] when b is not null):
// bias, scale and batch-norm gradients. One block per channel.
extern "C" __global__ void channel_reduce(int outer, int channels, int inner, const Dtype* a,
                                          const Dtype* b, Dtype beta, Dtype* out) {
  for (int c = blockIdx.x; c < channels; c += gridDim.x) {
    double sum = 0;
    const long long per_channel = (long long)outer * inner;
    for (long long j = threadIdx.x; j < per_channel; j += blockDim.x) {
      const long long o = j / inner, i = j - o * inner;
      const size_t k = ((size_t)o * channels + c) * inner + i;
      sum += b ? (double)a[k] * b[k] : (double)a[k];
    }
    sum = block_sum(sum);
    if (threadIdx.x == 0) out[c] = (beta != Dtype(0)) ? Dtype(sum) + beta * out[c] : Dtype(sum);
  }
}

// y[b, a, i] = x[a, b, i] + bias[a] (bias may be null): swaps the first two axes of an
// A x B x inner array. Convolution uses it between its (channels, images*pixels) GEMM layout and
// the blob's (images, channels, pixels) layout.
extern "C" __global__ void swap_axes01(int n, int A, int B, int inner, const Dtype* x,
                                       const Dtype* bias, Dtype* y) {
  CUDA_KERNEL_LOOP(k, n) {
    const int i = k % inner;
    const int ab = k / inner;
    const int b = ab % B, a = ab / B;
    y[((size_t)b * A + a) * inner + i] = x[k] + (bias ? bias[a] : Dtype(0));
  }
}
