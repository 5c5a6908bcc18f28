// Row-major GEMM, C = alpha * op(A) * op(B) + beta * C, and GEMV, as Caffe's caffe_gpu_gemm/gemv.
//
// op(A) is M x K, op(B) is K x N, C is M x N; lda/ldb/ldc are row strides. Batched: blockIdx.z
// selects matrices A + z*strideA, B + z*strideB, C + z*strideC (a stride may be 0 to reuse one).
//
// The GEMM kernel: a 128x128 tile of C per block of 256 threads, each thread an 8x8 register
// block (two 4-row by two 4-column sub-blocks, 64 apart, so that its shared-memory reads and its
// stores to C are 16-byte vectors); K advances 8 at a time through two shared-memory buffers
// (double buffering: the next tile is fetched from global memory into registers while the
// current one is multiplied, so there is one barrier per step). Global loads are 4-wide vectors
// when the matrix is 16-byte aligned and its row stride a multiple of 4 (flag bits), and fall back
// to guarded scalar loads on the ragged M/N/K edges, so any size works.
#include "common.cuh"

#define BM 128
#define BN 128
#define BK 8
#define PAD 4  // keeps the transposing shared-memory stores off a single bank

enum { A_VEC = 1, B_VEC = 2, C_VEC = 4 };

// -- 4-wide loads and stores, for float (float4) and double (two double2) -----------------------
__device__ __forceinline__ void load4(const float* p, float v[4]) {
  const float4 t = __ldg(reinterpret_cast<const float4*>(p));
  v[0] = t.x; v[1] = t.y; v[2] = t.z; v[3] = t.w;
}
__device__ __forceinline__ void load4(const double* p, double v[4]) {
  const double2 a = __ldg(reinterpret_cast<const double2*>(p));
  const double2 b = __ldg(reinterpret_cast<const double2*>(p) + 1);
  v[0] = a.x; v[1] = a.y; v[2] = b.x; v[3] = b.y;
}
__device__ __forceinline__ void shared_load4(const float* p, float v[4]) {
  const float4 t = *reinterpret_cast<const float4*>(p);
  v[0] = t.x; v[1] = t.y; v[2] = t.z; v[3] = t.w;
}
__device__ __forceinline__ void shared_load4(const double* p, double v[4]) {
  const double2 a = reinterpret_cast<const double2*>(p)[0];
  const double2 b = reinterpret_cast<const double2*>(p)[1];
  v[0] = a.x; v[1] = a.y; v[2] = b.x; v[3] = b.y;
}
__device__ __forceinline__ void store4(float* p, const float v[4]) {
  *reinterpret_cast<float4*>(p) = make_float4(v[0], v[1], v[2], v[3]);
}
__device__ __forceinline__ void store4(double* p, const double v[4]) {
  reinterpret_cast<double2*>(p)[0] = make_double2(v[0], v[1]);
  reinterpret_cast<double2*>(p)[1] = make_double2(v[2], v[3]);
}

// Four consecutive elements p[r*ld + c .. c+3] of an R x C row-major matrix, zero outside it.
__device__ __forceinline__ void fetch4(const Dtype* p, int ld, int r, int c, int R, int C, bool vec,
                                       Dtype v[4]) {
  if (vec && r < R && c + 3 < C) {
    load4(p + (size_t)r * ld + c, v);
  } else {
#pragma unroll
    for (int i = 0; i < 4; ++i) v[i] = (r < R && c + i < C) ? p[(size_t)r * ld + c + i] : Dtype(0);
  }
}

// One thread's share of a BK x 128 tile of op(X) (X = A with rows m, or B with columns n): the
// 1024 elements are 256 groups of 4 consecutive ones in memory. `kmajor`: X is stored K x L, so a
// group runs along L; otherwise X is stored L x K and a group runs along K.
template <bool KMAJOR>
__device__ __forceinline__ void fetch_tile(const Dtype* X, int ld, int l0, int k0, int L, int K,
                                           bool vec, Dtype v[4]) {
  const int t = threadIdx.x;
  if (KMAJOR) fetch4(X, ld, k0 + (t >> 5), l0 + ((t & 31) << 2), K, L, vec, v);
  else fetch4(X, ld, l0 + (t >> 1), k0 + ((t & 1) << 2), L, K, vec, v);
}

template <bool KMAJOR>
__device__ __forceinline__ void store_tile(Dtype (*S)[BM + PAD], const Dtype v[4]) {
  const int t = threadIdx.x;
  if (KMAJOR) {
    store4(&S[t >> 5][(t & 31) << 2], v);
  } else {
    const int l = t >> 1, k = (t & 1) << 2;
#pragma unroll
    for (int i = 0; i < 4; ++i) S[k + i][l] = v[i];
  }
}

// TA: A is stored K x M (op = transpose); TB: B is stored N x K.
template <bool TA, bool TB>
__device__ __forceinline__ void gemm_tile(int M, int N, int K, Dtype alpha, const Dtype* A, int lda,
                                          long long strideA, const Dtype* B, int ldb,
                                          long long strideB, Dtype beta, Dtype* C, int ldc,
                                          long long strideC, int flags) {
  __shared__ __align__(16) Dtype As[2][BK][BM + PAD];
  __shared__ __align__(16) Dtype Bs[2][BK][BN + PAD];
  A += blockIdx.z * strideA;
  B += blockIdx.z * strideB;
  C += blockIdx.z * strideC;
  const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
  const int tx = threadIdx.x & 15, ty = threadIdx.x >> 4;
  const bool avec = flags & A_VEC, bvec = flags & B_VEC;

  Dtype acc[8][8];
#pragma unroll
  for (int i = 0; i < 8; ++i)
#pragma unroll
    for (int j = 0; j < 8; ++j) acc[i][j] = Dtype(0);

  Dtype ra[4], rb[4];
  fetch_tile<TA>(A, lda, m0, 0, M, K, avec, ra);
  fetch_tile<!TB>(B, ldb, n0, 0, N, K, bvec, rb);
  store_tile<TA>(As[0], ra);
  store_tile<!TB>(Bs[0], rb);
  __syncthreads();

  const int tiles = (K + BK - 1) / BK;
  for (int tile = 0; tile < tiles; ++tile) {
    const int cur = tile & 1;
    const bool more = tile + 1 < tiles;
    if (more) {
      fetch_tile<TA>(A, lda, m0, (tile + 1) * BK, M, K, avec, ra);
      fetch_tile<!TB>(B, ldb, n0, (tile + 1) * BK, N, K, bvec, rb);
    }
#pragma unroll
    for (int k = 0; k < BK; ++k) {
      Dtype a[8], b[8];
      shared_load4(&As[cur][k][ty * 4], a);
      shared_load4(&As[cur][k][64 + ty * 4], a + 4);
      shared_load4(&Bs[cur][k][tx * 4], b);
      shared_load4(&Bs[cur][k][64 + tx * 4], b + 4);
#pragma unroll
      for (int i = 0; i < 8; ++i)
#pragma unroll
        for (int j = 0; j < 8; ++j) acc[i][j] = fma(a[i], b[j], acc[i][j]);
    }
    if (more) {
      store_tile<TA>(As[cur ^ 1], ra);
      store_tile<!TB>(Bs[cur ^ 1], rb);
    }
    __syncthreads();
  }

  const bool cvec = flags & C_VEC;
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    const int m = m0 + (i < 4 ? ty * 4 + i : 64 + ty * 4 + i - 4);
    if (m >= M) continue;
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int n = n0 + half * 64 + tx * 4;
      Dtype* c = C + (size_t)m * ldc + n;
      Dtype v[4];
#pragma unroll
      for (int j = 0; j < 4; ++j) v[j] = alpha * acc[i][half * 4 + j];
      if (cvec && n + 3 < N) {
        if (beta != Dtype(0)) {
          Dtype old[4];
          load4(c, old);
#pragma unroll
          for (int j = 0; j < 4; ++j) v[j] += beta * old[j];
        }
        store4(c, v);
      } else {
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          // beta == 0 never reads C, so NaNs in uninitialised memory do not leak (BLAS rule).
          if (n + j < N) c[j] = (beta != Dtype(0)) ? v[j] + beta * c[j] : v[j];
        }
      }
    }
  }
}

#define GEMM_ARGS                                                                           \
  int M, int N, int K, Dtype alpha, const Dtype *A, int lda, long long strideA, const Dtype *B, \
      int ldb, long long strideB, Dtype beta, Dtype *C, int ldc, long long strideC, int flags
#define GEMM_PASS M, N, K, alpha, A, lda, strideA, B, ldb, strideB, beta, C, ldc, strideC, flags

extern "C" __global__ void __launch_bounds__(256) gemm_nn(GEMM_ARGS) { gemm_tile<false, false>(GEMM_PASS); }
extern "C" __global__ void __launch_bounds__(256) gemm_nt(GEMM_ARGS) { gemm_tile<false, true>(GEMM_PASS); }
extern "C" __global__ void __launch_bounds__(256) gemm_tn(GEMM_ARGS) { gemm_tile<true, false>(GEMM_PASS); }
extern "C" __global__ void __launch_bounds__(256) gemm_tt(GEMM_ARGS) { gemm_tile<true, true>(GEMM_PASS); }

// y = alpha * A x + beta * y, A M x N row-major: one warp per row, lanes stride along it.
extern "C" __global__ void gemv_n(int M, int N, Dtype alpha, const Dtype* A, int lda,
                                  const Dtype* x, Dtype beta, Dtype* y) {
  const int lane = threadIdx.x & 31;
  const int warps = (blockDim.x * gridDim.x) >> 5;
  for (int m = (blockIdx.x * blockDim.x + threadIdx.x) >> 5; m < M; m += warps) {
    double sum = 0;
    for (int n = lane; n < N; n += 32) sum += (double)A[(size_t)m * lda + n] * x[n];
    sum = warp_sum(sum);
    if (lane == 0) y[m] = (beta != Dtype(0)) ? Dtype(alpha * sum) + beta * y[m] : Dtype(alpha * sum);
  }
}

// y = alpha * A^T x + beta * y, A M x N row-major: one thread per column, coalesced across threads.
extern "C" __global__ void gemv_t(int M, int N, Dtype alpha, const Dtype* A, int lda,
                                  const Dtype* x, Dtype beta, Dtype* y) {
  CUDA_KERNEL_LOOP(n, N) {
    double sum = 0;
    for (int m = 0; m < M; ++m) sum += (double)A[(size_t)m * lda + n] * x[m];
    y[n] = (beta != Dtype(0)) ? Dtype(alpha * sum) + beta * y[n] : Dtype(alpha * sum);
  }
}
