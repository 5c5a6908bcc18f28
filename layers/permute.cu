// Axis permutations (Permute, ShuffleChannel): y[i] = x[offset(i)], where the output index i is
// taken apart into coordinates over the output's dims d0..d5 (leading dims 1 for fewer axes) and
// each coordinate k moves s_k elements in x. Backward is the same gather with the inverse order.
#include "common.cuh"

extern "C" __global__ void permute_gather(int count, const Dtype* x, int d0, int d1, int d2, int d3,
                                          int d4, int d5, int s0, int s1, int s2, int s3, int s4,
                                          int s5, Dtype* y) {
  const int dims[6] = {d0, d1, d2, d3, d4, d5};
  const int strides[6] = {s0, s1, s2, s3, s4, s5};
  CUDA_KERNEL_LOOP(index, count) {
    int rest = index;
    size_t offset = 0;
    for (int k = 5; k >= 0; --k) {
      offset += (size_t)(rest % dims[k]) * strides[k];
      rest /= dims[k];
    }
    y[index] = x[offset];
  }
}
