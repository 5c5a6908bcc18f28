// Eltwise MAX with Caffe's argmax bookkeeping (SUM and PROD use math_functions.cu's primitives).
#include "common.cuh"

// Fold input b (number blob + 1) into the running max y (= a after the first call). The first
// call (blob == 0) compares inputs 0 and 1, a tie going to input 1; later inputs win only when
// strictly larger (as layers/eltwise.py).
extern "C" __global__ void eltwise_max_forward(int n, const Dtype* a, const Dtype* b, int blob,
                                               Dtype* y, int* mask) {
  CUDA_KERNEL_LOOP(i, n) {
    const bool take_b = blob == 0 ? !(a[i] > b[i]) : b[i] > a[i];
    if (take_b) {
      y[i] = b[i];
      mask[i] = blob + 1;
    } else if (blob == 0) {
      y[i] = a[i];
      mask[i] = 0;
    }
  }
}

extern "C" __global__ void eltwise_max_backward(int n, const Dtype* top_diff, const int* mask,
                                                int blob, Dtype* bottom_diff) {
  CUDA_KERNEL_LOOP(i, n) bottom_diff[i] = mask[i] == blob ? top_diff[i] : Dtype(0);
}
