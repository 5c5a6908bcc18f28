// Device random numbers from Philox4x32-10: raw 32-bit draws.
// Element i of a call comes from group i / 4, lane i % 4, so results depend only on
// (seed, stream, i), never on the launch shape.
#include "common.cuh"
#include "philox.cuh"

extern "C" __global__ void rng_bits(int n, unsigned long long seed, unsigned long long stream,
                                    unsigned int* out) {
  CUDA_KERNEL_LOOP(g, (n + 3) / 4) {
    const uint4 r = philox_draw(g, stream, seed);
    const unsigned int v[4] = {r.x, r.y, r.z, r.w};
#pragma unroll
    for (int j = 0; j < 4; ++j)
      if (4 * g + j < n) out[4 * g + j] = v[j];
  }
}
