// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC 2011): a
// counter-based generator, so any thread draws its own numbers from (counter, key) without state.
// The PyCUDA wheels have no curand; this is the device RNG for Dropout and rng_uniform.
#pragma once

__device__ __forceinline__ uint4 philox4x32_10(uint4 ctr, uint2 key) {
  const unsigned int M0 = 0xD2511F53u, M1 = 0xCD9E8D57u;
  const unsigned int W0 = 0x9E3779B9u, W1 = 0xBB67AE85u;
#pragma unroll
  for (int round = 0; round < 10; ++round) {
    const unsigned int hi0 = __umulhi(M0, ctr.x), lo0 = M0 * ctr.x;
    const unsigned int hi1 = __umulhi(M1, ctr.z), lo1 = M1 * ctr.z;
    ctr = make_uint4(hi1 ^ ctr.y ^ key.x, lo1, hi0 ^ ctr.w ^ key.y, lo0);
    key.x += W0;
    key.y += W1;
  }
  return ctr;
}

// Four 32-bit draws for group `group` of stream `stream` under `seed`: the counter holds the
// group (low words) and the stream (high words), so successive calls never reuse a counter.
__device__ __forceinline__ uint4 philox_draw(unsigned long long group, unsigned long long stream,
                                             unsigned long long seed) {
  const uint4 ctr = make_uint4((unsigned int)group, (unsigned int)(group >> 32),
                               (unsigned int)stream, (unsigned int)(stream >> 32));
  return philox4x32_10(ctr, make_uint2((unsigned int)seed, (unsigned int)(seed >> 32)));
}
