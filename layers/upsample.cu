// SegNet's Upsample: each input value goes to the place in its (upsampled) plane that its max
// pooling mask names; everything else is 0. Backward reads the gradient back from those places.
#include "common.cuh"

// One thread per input element: top must be zeroed first. Two inputs naming one place (masks from
// overlapping pooling windows) race, as in the fork's kernel.
extern "C" __global__ void upsample_scatter(int count, const Dtype* x, const Dtype* mask, int plane_in,
                                            int plane_out, Dtype* y) {
  CUDA_KERNEL_LOOP(i, count) y[(size_t)(i / plane_in) * plane_out + (int)mask[i]] = x[i];
}

extern "C" __global__ void upsample_gather(int count, const Dtype* dy, const Dtype* mask, int plane_in,
                                           int plane_out, Dtype* dx) {
  CUDA_KERNEL_LOOP(i, count) dx[i] = dy[(size_t)(i / plane_in) * plane_out + (int)mask[i]];
}
