// Softmax over the channel axis of an (outer, channels, inner) array, and the softmax loss.
// One warp per (outer, inner) position: lanes stride over the channels and combine with shuffles.
#include "common.cuh"

#define WARP_LOOP(pos, positions)                                                          \
  for (int pos = (blockIdx.x * blockDim.x + threadIdx.x) >> 5; pos < (positions);           \
       pos += (blockDim.x * gridDim.x) >> 5)

__device__ __forceinline__ size_t position_base(int pos, int channels, int inner) {
  return (size_t)(pos / inner) * channels * inner + pos % inner;
}

// The position's maximum score and the sum of exp(score - maximum), combined across the warp.
__device__ __forceinline__ void max_and_exp_sum(const Dtype* bottom, size_t base, int channels,
                                                int inner, int lane, double* max_out,
                                                double* sum_out) {
  double m = -DBL_MAX;
  for (int c = lane; c < channels; c += 32) m = fmax(m, (double)bottom[base + (size_t)c * inner]);
  m = warp_max(m);
  double sum = 0;
  for (int c = lane; c < channels; c += 32) sum += exp(bottom[base + (size_t)c * inner] - m);
  *max_out = m;
  *sum_out = warp_sum(sum);
}

extern "C" __global__ void softmax_forward(int positions, int channels, int inner,
                                           const Dtype* bottom, Dtype* top) {
  const int lane = threadIdx.x & 31;
  WARP_LOOP(pos, positions) {
    const size_t base = position_base(pos, channels, inner);
    double m, sum;
    max_and_exp_sum(bottom, base, channels, inner, lane, &m, &sum);
    for (int c = lane; c < channels; c += 32) {
      const size_t k = base + (size_t)c * inner;
      top[k] = Dtype(exp(bottom[k] - m) / sum);
    }
  }
}

// dx = (dy - <dy, y>) * y per position; dx may alias dy.
extern "C" __global__ void softmax_backward(int positions, int channels, int inner,
                                            const Dtype* top_diff, const Dtype* top,
                                            Dtype* bottom_diff) {
  const int lane = threadIdx.x & 31;
  WARP_LOOP(pos, positions) {
    const size_t base = position_base(pos, channels, inner);
    double dot = 0;
    for (int c = lane; c < channels; c += 32) {
      const size_t k = base + (size_t)c * inner;
      dot += (double)top_diff[k] * top[k];
    }
    dot = warp_sum(dot);
    for (int c = lane; c < channels; c += 32) {
      const size_t k = base + (size_t)c * inner;
      bottom_diff[k] = Dtype((top_diff[k] - dot) * top[k]);
    }
  }
}

// Per position: loss = -log softmax(x)[label] (from the scores, shifted by their maximum, so it
// stays finite where the probability underflows) and valid = 1; 0 and 0 for the ignored label.
// A label outside [0, channels) gives a NaN loss, which the solver reports.
extern "C" __global__ void softmax_loss_forward(int positions, int channels, int inner,
                                                const Dtype* bottom, const Dtype* label,
                                                int has_ignore, int ignore_label, Dtype* loss,
                                                Dtype* valid) {
  const int lane = threadIdx.x & 31;
  WARP_LOOP(pos, positions) {
    const int l = label_index(label[pos]);
    const bool ignored = has_ignore && l == ignore_label;
    const size_t base = position_base(pos, channels, inner);
    double m, sum;
    max_and_exp_sum(bottom, base, channels, inner, lane, &m, &sum);
    if (lane == 0) {
      if (ignored) {
        loss[pos] = 0;
      } else if (l < 0 || l >= channels) {
        loss[pos] = Dtype(NAN);
      } else {
        loss[pos] = Dtype(log(sum) - (bottom[base + (size_t)l * inner] - m));
      }
      valid[pos] = ignored ? 0 : 1;
    }
  }
}

// top[0] = the summed loss / its normalizer, and scale[0] = 1 / the normalizer, on the device (one
// thread): `fixed` is the normalizer of FULL, BATCH_SIZE and NONE; 0 asks for VALID's, the number
// of counted positions (at least 1). The same double arithmetic as the host's normalizer().
extern "C" __global__ void softmax_loss_normalize(const double* loss_sum, const double* valid_sum,
                                                  double fixed, Dtype* top, double* scale) {
  if (blockIdx.x == 0 && threadIdx.x == 0) {
    const double normalizer = fixed > 0 ? fixed : fmax(1.0, rint(valid_sum[0]));
    const double s = 1.0 / normalizer;
    scale[0] = s;
    top[0] = Dtype(loss_sum[0] * s);
  }
}

// dx *= loss_weight * scale, both read on the device (the top's diff and the forward's 1/normalizer).
extern "C" __global__ void softmax_loss_scale(int n, const Dtype* loss_weight, const double* scale,
                                              Dtype* dx) {
  const Dtype alpha = Dtype((double)loss_weight[0] * scale[0]);
  CUDA_KERNEL_LOOP(i, n) dx[i] = alpha * dx[i];
}

// bottom_diff holds a copy of prob: subtract 1 at the label, or zero the ignored positions.
extern "C" __global__ void softmax_loss_backward(int positions, int channels, int inner,
                                                 const Dtype* label, int has_ignore,
                                                 int ignore_label, Dtype* bottom_diff) {
  CUDA_KERNEL_LOOP(pos, positions) {
    const int l = label_index(label[pos]);
    const size_t base = position_base(pos, channels, inner);
    if (has_ignore && l == ignore_label) {
      for (int c = 0; c < channels; ++c) bottom_diff[base + (size_t)c * inner] = 0;
    } else if (l >= 0 && l < channels) {
      bottom_diff[base + (size_t)l * inner] -= 1;
    }
  }
}
