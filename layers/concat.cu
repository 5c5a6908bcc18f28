// Copies between one blob and its slot in a concatenation along an axis (Concat forward and
// backward, Slice backward and forward): the concatenated blob is (outer, total, inner) and the
// part is (outer, part, inner) starting at `offset` along the middle axis.
#include "common.cuh"

extern "C" __global__ void concat_copy(int n, const Dtype* src, int to_whole, int part, int total,
                                       int inner, int offset, Dtype* dst) {
  CUDA_KERNEL_LOOP(i, n) {
    const int per_outer = part * inner;
    const int o = i / per_outer, j = i % per_outer;
    const size_t whole = ((size_t)o * total + offset) * inner + j;
    if (to_whole) dst[whole] = src[i];
    else dst[i] = src[whole];
  }
}
