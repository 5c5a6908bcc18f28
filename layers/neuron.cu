// Element-wise activations: forward y = f(x), backward dx = dy * f'(.). Backward reads whatever
// Caffe reads (x, or y when f' is cheaper from the output), so in-place layers work the same way.
#include "common.cuh"

#define FORWARD(name, expr, ...)                                                            \
  extern "C" __global__ void name(int n, const Dtype* bottom, Dtype* top, ##__VA_ARGS__) { \
    CUDA_KERNEL_LOOP(i, n) {                                                                \
      const Dtype x = bottom[i];                                                            \
      top[i] = (expr);                                                                      \
    }                                                                                       \
  }

// `x` is the bottom data, `y` the top data, `dy` the top diff.
#define BACKWARD(name, expr, ...)                                                          \
  extern "C" __global__ void name(int n, const Dtype* top_diff, const Dtype* bottom,      \
                                  const Dtype* top, Dtype* bottom_diff, ##__VA_ARGS__) {  \
    CUDA_KERNEL_LOOP(i, n) {                                                               \
      const Dtype dy = top_diff[i];                                                        \
      const Dtype x = bottom ? bottom[i] : Dtype(0);                                       \
      const Dtype y = top ? top[i] : Dtype(0);                                             \
      (void)x;                                                                             \
      (void)y;                                                                             \
      bottom_diff[i] = (expr);                                                             \
    }                                                                                      \
  }

FORWARD(relu_forward, x > 0 ? x : x * slope, Dtype slope)
BACKWARD(relu_backward, dy * (x > 0 ? Dtype(1) : slope), Dtype slope)

// ReLU6 (the forks'), with NVCaffe's slope for x < 0.
FORWARD(relu6_forward, min(max(x, Dtype(0)), Dtype(6)) + slope * min(x, Dtype(0)), Dtype slope)
BACKWARD(relu6_backward, dy * (x > 0 ? (x < 6 ? Dtype(1) : Dtype(0)) : slope), Dtype slope)

FORWARD(sigmoid_forward, Dtype(0.5) * tanh(Dtype(0.5) * x) + Dtype(0.5))
BACKWARD(sigmoid_backward, dy * y * (1 - y))

FORWARD(tanh_forward, tanh(x))
BACKWARD(tanh_backward, dy * (1 - y * y))

FORWARD(absval_forward, fabs(x))
BACKWARD(absval_backward, dy * Dtype((x > 0) - (x < 0)))

// log(1 + e^x), computed without overflow.
FORWARD(bnll_forward, x > 0 ? x + log1p(exp(-x)) : log1p(exp(x)))
// sigmoid(x) = 1 - e^-y: from the output, so an in-place layer needs no input copy.
BACKWARD(bnll_backward, -dy * expm1(-y))

FORWARD(elu_forward, x > 0 ? x : alpha * expm1(x), Dtype alpha)
BACKWARD(elu_backward, x > 0 ? dy : dy * (y + alpha), Dtype alpha)

// (shift + scale * x) ^ power; the derivative is the constant power * scale when power is 1 or
// power * scale is 0 (x is then not read: the layer keeps no input copy).
FORWARD(power_forward, pow(shift + scale * x, power), Dtype power, Dtype scale, Dtype shift)
BACKWARD(power_backward,
         (power == 1 || power * scale == 0) ? dy * power * scale
                                            : dy * power * scale * pow(shift + scale * x, power - 1),
         Dtype power, Dtype scale, Dtype shift)

// outer_scale * exp(inner_scale * x), Caffe's base^(shift + scale * x) folded on the host.
FORWARD(exp_forward, outer_scale * exp(inner_scale * x), Dtype inner_scale, Dtype outer_scale)
BACKWARD(exp_backward, dy * y * inner_scale, Dtype inner_scale, Dtype outer_scale)

// base_scale * log(shift + scale * x), base_scale = 1 / ln(base).
FORWARD(log_forward, base_scale * log(shift + scale * x), Dtype base_scale, Dtype scale, Dtype shift)
BACKWARD(log_backward, dy * base_scale * scale / (shift + scale * x), Dtype base_scale, Dtype scale,
         Dtype shift)

FORWARD(threshold_forward, x > threshold ? Dtype(1) : Dtype(0), Dtype threshold)

FORWARD(clip_forward, max(lo, min(x, hi)), Dtype lo, Dtype hi)
BACKWARD(clip_backward, (x >= lo && x <= hi) ? dy : Dtype(0), Dtype lo, Dtype hi)

// PReLU: one slope per channel (dim = pixels per channel), or one for all (div = channels).
extern "C" __global__ void prelu_forward(int n, int channels, int dim, const Dtype* bottom,
                                         const Dtype* slope, int div, Dtype* top) {
  CUDA_KERNEL_LOOP(i, n) {
    const int c = (i / dim) % channels / div;
    const Dtype x = bottom[i];
    top[i] = x > 0 ? x : x * slope[c];
  }
}

extern "C" __global__ void prelu_backward(int n, int channels, int dim, const Dtype* top_diff,
                                          const Dtype* bottom, const Dtype* slope, int div,
                                          Dtype* bottom_diff) {
  CUDA_KERNEL_LOOP(i, n) {
    const int c = (i / dim) % channels / div;
    bottom_diff[i] = bottom[i] > 0 ? top_diff[i] : top_diff[i] * slope[c];
  }
}

// dy * x where x <= 0: summed per channel (channel_reduce) it is the slope gradient.
extern "C" __global__ void prelu_slope_terms(int n, const Dtype* top_diff, const Dtype* bottom,
                                             Dtype* out) {
  CUDA_KERNEL_LOOP(i, n) out[i] = bottom[i] > 0 ? Dtype(0) : top_diff[i] * bottom[i];
}
