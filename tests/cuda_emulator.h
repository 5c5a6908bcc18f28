// A CPU stand-in for the CUDA features our kernels use, so that tests/cuda_emulator.py can
// compile the project's .cu files with g++ and run them on machines without a GPU: every CUDA
// thread of a block is a std::thread (blocks run one after another, so `__shared__` is a plain
// static), __syncthreads is a barrier of the block, warp shuffles exchange through a per-warp
// buffer between two barriers of the warp. Slow, but it executes the real kernel code.
#pragma once
#include <barrier>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <functional>
#include <math.h>
#include <memory>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>
#include <algorithm>

#define __global__ __attribute__((used))  // marks kernels for cuda_emulator.py
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static
#define __restrict__
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))

struct dim3 {
  unsigned int x = 1, y = 1, z = 1;
};
struct float4 { float x, y, z, w; };
struct double2 { double x, y; };
struct uint2 { unsigned int x, y; };
struct uint4 { unsigned int x, y, z, w; };
inline float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }
inline double2 make_double2(double x, double y) { return {x, y}; }
inline uint2 make_uint2(unsigned int x, unsigned int y) { return {x, y}; }
inline uint4 make_uint4(unsigned int x, unsigned int y, unsigned int z, unsigned int w) { return {x, y, z, w}; }

using std::max;
using std::min;

inline thread_local dim3 threadIdx, blockIdx;
inline dim3 blockDim, gridDim;

namespace emu {
struct Warp {
  std::barrier<> bar{32};
  unsigned long long slot[32];
};
struct Block {
  std::unique_ptr<std::barrier<>> bar;
  std::vector<std::unique_ptr<Warp>> warps;
};
inline Block block;

// One std::thread per thread of a block; the same threads run every block in turn, meeting at a
// barrier between blocks (so that a block's `__shared__` statics are not overwritten early).
template <typename F>
void launch(dim3 grid, dim3 blk, F body) {
  gridDim = grid;
  blockDim = blk;
  const unsigned threads = blk.x * blk.y * blk.z;
  block.bar = std::make_unique<std::barrier<>>(threads);
  block.warps.clear();
  for (unsigned w = 0; w < (threads + 31) / 32; ++w) block.warps.push_back(std::make_unique<Warp>());
  std::vector<std::thread> pool;
  for (unsigned t = 0; t < threads; ++t)
    pool.emplace_back([=] {
      threadIdx = {t % blk.x, (t / blk.x) % blk.y, t / (blk.x * blk.y)};
      for (unsigned bz = 0; bz < grid.z; ++bz)
        for (unsigned by = 0; by < grid.y; ++by)
          for (unsigned bx = 0; bx < grid.x; ++bx) {
            blockIdx = {bx, by, bz};
            body();
            block.bar->arrive_and_wait();
          }
    });
  for (auto& th : pool) th.join();
}

template <typename... A, size_t... I>
void call_with(void (*f)(A...), void** args, std::index_sequence<I...>) {
  f(*reinterpret_cast<std::remove_cv_t<std::remove_reference_t<A>>*>(args[I])...);
}
template <typename... A>
void call(void (*f)(A...), void** args) {
  call_with(f, args, std::index_sequence_for<A...>{});
}
}  // namespace emu

inline void __syncthreads() { emu::block.bar->arrive_and_wait(); }

template <typename T>
T __shfl_xor_sync(unsigned, T v, int offset) {
  static_assert(sizeof(T) <= 8, "shuffle of a value wider than 8 bytes");
  const unsigned t = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
  emu::Warp& w = *emu::block.warps[t / 32];
  const unsigned lane = t % 32;
  std::memcpy(&w.slot[lane], &v, sizeof(T));
  w.bar.arrive_and_wait();
  T r;
  std::memcpy(&r, &w.slot[lane ^ offset], sizeof(T));
  w.bar.arrive_and_wait();
  return r;
}

template <typename T>
inline T __ldg(const T* p) { return *p; }
inline unsigned int __umulhi(unsigned int a, unsigned int b) {
  return (unsigned int)(((unsigned long long)a * b) >> 32);
}
