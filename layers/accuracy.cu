// Top-k accuracy per (outer, inner) position, as Caffe's GPU kernel: the true class counts as
// correct when fewer than k classes score at least as high as it (ties count against it).
#include "common.cuh"

extern "C" __global__ void accuracy_forward(int positions, int channels, int inner,
                                            const Dtype* scores, const Dtype* label, int top_k,
                                            int has_ignore, int ignore_label, Dtype* correct,
                                            Dtype* valid) {
  CUDA_KERNEL_LOOP(pos, positions) {
    const int l = label_index(label[pos]);
    if ((has_ignore && l == ignore_label) || l < 0 || l >= channels) {
      correct[pos] = 0;
      valid[pos] = 0;
      continue;
    }
    const Dtype* s = scores + (size_t)(pos / inner) * channels * inner + pos % inner;
    const Dtype truth = s[(size_t)l * inner];
    int better = -1;  // the true class itself is counted below
    for (int c = 0; c < channels && better < top_k; ++c) better += s[(size_t)c * inner] >= truth;
    correct[pos] = better < top_k;
    valid[pos] = 1;
  }
}

// top[0] = hits / counted positions (0 when none counts), in double as the host divides (one thread).
extern "C" __global__ void accuracy_ratio(const double* hits, const double* count, Dtype* top) {
  if (blockIdx.x == 0 && threadIdx.x == 0) top[0] = count[0] != 0 ? Dtype(hits[0] / count[0]) : Dtype(0);
}
