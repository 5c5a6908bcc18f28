// The update rules on the device, one fused pass each, launched by their solver's update_gpu
// (solvers/<rule>.py): each turns the gradient g (the parameter's diff, already clipped,
// normalised and regularised) into the step, in place, and updates the history exactly as the
// same class's update_cpu does on the host.
#include "common.cuh"

extern "C" __global__ void sgd_update(int n, Dtype* g, Dtype* h, Dtype momentum, Dtype rate) {
  CUDA_KERNEL_LOOP(i, n) g[i] = h[i] = momentum * h[i] + rate * g[i];
}

extern "C" __global__ void nesterov_update(int n, Dtype* g, Dtype* h, Dtype momentum, Dtype rate) {
  CUDA_KERNEL_LOOP(i, n) {
    const Dtype previous = h[i];
    const Dtype v = momentum * previous + rate * g[i];
    h[i] = v;
    g[i] = (1 + momentum) * v - momentum * previous;
  }
}

extern "C" __global__ void adagrad_update(int n, Dtype* g, Dtype* h, Dtype delta, Dtype rate) {
  CUDA_KERNEL_LOOP(i, n) {
    const Dtype gi = g[i];
    const Dtype hi = h[i] + gi * gi;
    h[i] = hi;
    g[i] = rate * (gi / (sqrt(hi) + delta));
  }
}

extern "C" __global__ void rmsprop_update(int n, Dtype* g, Dtype* h, Dtype decay, Dtype delta,
                                          Dtype rate) {
  CUDA_KERNEL_LOOP(i, n) {
    const Dtype gi = g[i];
    const Dtype hi = decay * h[i] + (1 - decay) * gi * gi;
    h[i] = hi;
    g[i] = rate * (gi / (sqrt(hi) + delta));
  }
}

// grad_sq and update_sq are AdaDelta's two histories.
extern "C" __global__ void adadelta_update(int n, Dtype* g, Dtype* grad_sq, Dtype* update_sq,
                                           Dtype momentum, Dtype delta, Dtype rate) {
  CUDA_KERNEL_LOOP(i, n) {
    const Dtype gi = g[i];
    const Dtype eg = momentum * grad_sq[i] + (1 - momentum) * gi * gi;
    grad_sq[i] = eg;
    const Dtype dx = gi * sqrt((update_sq[i] + delta) / (eg + delta));
    update_sq[i] = momentum * update_sq[i] + (1 - momentum) * dx * dx;
    g[i] = rate * dx;
  }
}

// rate already holds lr * sqrt(1 - beta2^t) / (1 - beta1^t).
extern "C" __global__ void adam_update(int n, Dtype* g, Dtype* m, Dtype* v, Dtype beta1,
                                       Dtype beta2, Dtype eps, Dtype rate) {
  CUDA_KERNEL_LOOP(i, n) {
    const Dtype gi = g[i];
    const Dtype mi = beta1 * m[i] + (1 - beta1) * gi;
    const Dtype vi = beta2 * v[i] + (1 - beta2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    g[i] = rate * (mi / (sqrt(vi) + eps));
  }
}

// L1 weight decay: diff += decay * sign(data) (L2 is an axpy).
extern "C" __global__ void l1_regularize(int n, Dtype* diff, const Dtype* data, Dtype decay) {
  CUDA_KERNEL_LOOP(i, n) diff[i] += decay * Dtype((data[i] > 0) - (data[i] < 0));
}
