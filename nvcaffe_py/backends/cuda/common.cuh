// Shared by every kernel file: the element type, the grid-stride loop, block reductions.
//
// Each .cu file is compiled once per element type with -DDtype=float or -DDtype=double
// (nvcaffe_py/backends/cuda/kernels.py); a plain `nvcc file.cu` gets float.
#pragma once
#include <cfloat>

#ifndef Dtype
#define Dtype float
#endif

// Grid-stride loop: any grid size covers any n (kernels.py caps the grid). The launcher checks
// that n plus the thread count fits in an int.
#define CUDA_KERNEL_LOOP(i, n) \
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += blockDim.x * gridDim.x)

// A label as a class index. int() of a NaN is 0 on a GPU (and undefined in C++): a NaN label
// would silently count as class 0; it gives -1, out of every class range, instead.
__device__ __forceinline__ int label_index(Dtype label) { return label == label ? int(label) : -1; }

// Sum of a double over one warp (all lanes get the total).
__device__ __forceinline__ double warp_sum(double v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

__device__ __forceinline__ double warp_max(double v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v = fmax(v, __shfl_xor_sync(0xffffffffu, v, offset));
  return v;
}

// Sum of a double over the whole block (blockDim.x a multiple of 32, at most 1024); every thread
// gets the total. Sums are kept in double so that GPU reductions track the NumPy reference.
__device__ __forceinline__ double block_sum(double v) {
  __shared__ double partial[32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  v = warp_sum(v);
  __syncthreads();  // `partial` may still be read by a previous call
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  const int warps = blockDim.x >> 5;
  v = (lane < warps) ? partial[lane] : 0.0;
  return warp_sum(v);
}
