// Dropout with the device Philox generator: mask holds 32-bit draws, an element is kept when its
// draw exceeds threshold = p * 2^32 (Caffe's rule), and kept elements are multiplied by scale.
#include "common.cuh"
#include "philox.cuh"

extern "C" __global__ void dropout_forward(int n, const Dtype* bottom, unsigned long long seed,
                                           unsigned long long stream, unsigned int threshold,
                                           Dtype scale, unsigned int* mask, Dtype* top) {
  CUDA_KERNEL_LOOP(g, (n + 3) / 4) {
    const uint4 r = philox_draw(g, stream, seed);
    const unsigned int v[4] = {r.x, r.y, r.z, r.w};
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int i = 4 * g + j;
      if (i < n) {
        mask[i] = v[j];
        top[i] = v[j] > threshold ? bottom[i] * scale : Dtype(0);
      }
    }
  }
}

extern "C" __global__ void dropout_backward(int n, const Dtype* top_diff, const unsigned int* mask,
                                            unsigned int threshold, Dtype scale,
                                            Dtype* bottom_diff) {
  CUDA_KERNEL_LOOP(i, n) bottom_diff[i] = mask[i] > threshold ? top_diff[i] * scale : Dtype(0);
}
