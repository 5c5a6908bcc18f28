// Row-major GEMM, C = alpha * op(A) * op(B) + beta * C, and GEMV, as Caffe's caffe_gpu_gemm/gemv.
//
// op(A) is M x K, op(B) is K x N, C is M x N; lda/ldb/ldc are row strides. The grid is
// (tiles of C, 1, products x K slices): blockIdx.x walks C's tiles row by row (so neighbouring
// blocks share a panel of A), blockIdx.z = product * splits + slice. Product p uses A + p*strideA,
// B + p*strideB (a stride may be 0 to reuse one matrix); slice s runs K from s*slice_k, at most
// slice_k deep. Its result goes to C + (p*splits + s)*strideC: with one slice that is the product's
// C, with several the caller passes a workspace (alpha 1, beta 0) that gemm_splitk_reduce sums, in
// slice order, into C.
//
// The kernel: a BM x BN tile of C per block of BM*BN/64 threads (128x128, 128x64 or 64x64), each
// thread an 8x8 register block (two 4-row by two 4-column sub-blocks, half a tile apart, so that
// its shared-memory reads and its stores to C are 16-byte vectors); K advances 8 at a time through
// two shared-memory buffers (double buffering: the next tile is fetched from global memory into
// registers while the current one is multiplied, so there is one barrier per step). Global loads
// are 4-wide vectors when the matrix is 16-byte aligned and its row stride a multiple of 4 (flag
// bits), and fall back to guarded scalar loads on the ragged M/N/K edges, so any size works.
#include "common.cuh"

#define BK 8
#define PAD 4  // keeps the transposing shared-memory stores off a single bank

enum { A_VEC = 1, B_VEC = 2, C_VEC = 4 };

// -- 4-wide loads and stores, for float (float4) and double (two double2) -----------------------
// `ldg4` reads through the read-only cache: only for A and B, which no block of the launch writes.
__device__ __forceinline__ void ldg4(const float* p, float v[4]) {
  const float4 t = __ldg(reinterpret_cast<const float4*>(p));
  v[0] = t.x; v[1] = t.y; v[2] = t.z; v[3] = t.w;
}
__device__ __forceinline__ void ldg4(const double* p, double v[4]) {
  const double2 a = __ldg(reinterpret_cast<const double2*>(p));
  const double2 b = __ldg(reinterpret_cast<const double2*>(p) + 1);
  v[0] = a.x; v[1] = a.y; v[2] = b.x; v[3] = b.y;
}
__device__ __forceinline__ void load4(const float* p, float v[4]) {
  const float4 t = *reinterpret_cast<const float4*>(p);
  v[0] = t.x; v[1] = t.y; v[2] = t.z; v[3] = t.w;
}
__device__ __forceinline__ void load4(const double* p, double v[4]) {
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
    ldg4(p + (size_t)r * ld + c, v);
  } else {
#pragma unroll
    for (int i = 0; i < 4; ++i) v[i] = (r < R && c + i < C) ? p[(size_t)r * ld + c + i] : Dtype(0);
  }
}

// A block's share of a BK x L tile of op(X) (X = A with rows m, or B with columns n) is LOADS
// groups of 4 elements consecutive in memory per thread. `KMAJOR`: X is stored K x L, so a group
// runs along L; otherwise X is stored L x K and a group runs along K.
template <int L, int THREADS, bool KMAJOR>
struct TileLoader {
  static constexpr int LOADS = BK * L / 4 / THREADS;
  static_assert(LOADS * 4 * THREADS == BK * L, "the tile must split evenly into 4-element groups");

  __device__ __forceinline__ static void fetch(const Dtype* X, int ld, int l0, int k0, int Lsize, int K, bool vec,
                                               Dtype v[LOADS][4]) {
#pragma unroll
    for (int i = 0; i < LOADS; ++i) {
      const int g = threadIdx.x + i * THREADS;
      if (KMAJOR) fetch4(X, ld, k0 + g / (L / 4), l0 + (g % (L / 4)) * 4, K, Lsize, vec, v[i]);
      else fetch4(X, ld, l0 + g / (BK / 4), k0 + (g % (BK / 4)) * 4, Lsize, K, vec, v[i]);
    }
  }

  __device__ __forceinline__ static void store(Dtype (*S)[L + PAD], const Dtype v[LOADS][4]) {
#pragma unroll
    for (int i = 0; i < LOADS; ++i) {
      const int g = threadIdx.x + i * THREADS;
      if (KMAJOR) {
        store4(&S[g / (L / 4)][(g % (L / 4)) * 4], v[i]);
      } else {
        const int l = g / (BK / 4), k = (g % (BK / 4)) * 4;
#pragma unroll
        for (int j = 0; j < 4; ++j) S[k + j][l] = v[i][j];
      }
    }
  }
};

// TA: A is stored K x M (op = transpose); TB: B is stored N x K.
template <int BM, int BN, bool TA, bool TB>
__device__ __forceinline__ void gemm_tile(int M, int N, int K, Dtype alpha, const Dtype* A, int lda,
                                          long long strideA, const Dtype* B, int ldb, long long strideB,
                                          Dtype beta, Dtype* C, int ldc, long long strideC, int splits,
                                          int slice_k, int flags) {
  constexpr int THREADS = BM * BN / 64, TX = BN / 8;
  using LoadA = TileLoader<BM, THREADS, TA>;
  using LoadB = TileLoader<BN, THREADS, !TB>;
  __shared__ __align__(16) Dtype As[2][BK][BM + PAD];
  __shared__ __align__(16) Dtype Bs[2][BK][BN + PAD];
  const int product = blockIdx.z / splits, k_begin = (blockIdx.z % splits) * slice_k;
  // This block's slice of K: the matrices seen from its first column of op(A), row of op(B).
  A += product * strideA + (TA ? (size_t)k_begin * lda : k_begin);
  B += product * strideB + (TB ? k_begin : (size_t)k_begin * ldb);
  C += blockIdx.z * strideC;
  K = min(K - k_begin, slice_k);
  const int tiles_n = (N + BN - 1) / BN;
  const int m0 = (blockIdx.x / tiles_n) * BM, n0 = (blockIdx.x % tiles_n) * BN;
  const int tx = threadIdx.x % TX, ty = threadIdx.x / TX;
  const bool avec = flags & A_VEC, bvec = flags & B_VEC;

  Dtype acc[8][8];
#pragma unroll
  for (int i = 0; i < 8; ++i)
#pragma unroll
    for (int j = 0; j < 8; ++j) acc[i][j] = Dtype(0);

  Dtype ra[LoadA::LOADS][4], rb[LoadB::LOADS][4];
  LoadA::fetch(A, lda, m0, 0, M, K, avec, ra);
  LoadB::fetch(B, ldb, n0, 0, N, K, bvec, rb);
  LoadA::store(As[0], ra);
  LoadB::store(Bs[0], rb);
  __syncthreads();

  const int tiles = (K + BK - 1) / BK;
  for (int tile = 0; tile < tiles; ++tile) {
    const int cur = tile & 1;
    const bool more = tile + 1 < tiles;
    if (more) {
      LoadA::fetch(A, lda, m0, (tile + 1) * BK, M, K, avec, ra);
      LoadB::fetch(B, ldb, n0, (tile + 1) * BK, N, K, bvec, rb);
    }
#pragma unroll
    for (int k = 0; k < BK; ++k) {
      Dtype a[8], b[8];
      load4(&As[cur][k][ty * 4], a);
      load4(&As[cur][k][BM / 2 + ty * 4], a + 4);
      load4(&Bs[cur][k][tx * 4], b);
      load4(&Bs[cur][k][BN / 2 + tx * 4], b + 4);
#pragma unroll
      for (int i = 0; i < 8; ++i)
#pragma unroll
        for (int j = 0; j < 8; ++j) acc[i][j] = fma(a[i], b[j], acc[i][j]);
    }
    if (more) {
      LoadA::store(As[cur ^ 1], ra);
      LoadB::store(Bs[cur ^ 1], rb);
    }
    __syncthreads();
  }

  const bool cvec = flags & C_VEC;
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    const int m = m0 + (i < 4 ? ty * 4 + i : BM / 2 + ty * 4 + i - 4);
    if (m >= M) continue;
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int n = n0 + half * (BN / 2) + tx * 4;
      Dtype* c = C + (size_t)m * ldc + n;
      Dtype v[4];
#pragma unroll
      for (int j = 0; j < 4; ++j) v[j] = alpha * acc[i][half * 4 + j];
      if (cvec && n + 3 < N) {
        if (beta != Dtype(0)) {
          Dtype old[4];
          load4(c, old);  // not through the read-only cache: this kernel writes C
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

#define GEMM_ARGS                                                                                \
  int M, int N, int K, Dtype alpha, const Dtype *A, int lda, long long strideA, const Dtype *B,  \
      int ldb, long long strideB, Dtype beta, Dtype *C, int ldc, long long strideC, int splits, \
      int slice_k, int flags
#define GEMM_PASS M, N, K, alpha, A, lda, strideA, B, ldb, strideB, beta, C, ldc, strideC, splits, slice_k, flags
// gemm_<op(A)><op(B)>_<BM>x<BN>: n = as stored, t = transposed. BLOCKS: how many blocks an SM
// should hold at once, which caps the registers: 128 for 128x128 (two blocks, 16 warps), more for
// the smaller tiles, whose two loads per matrix and K step spill under 128 (12 warps). Doubles
// (used to check gradients, not for speed) get half as many blocks, so they do not spill either.
constexpr int WORDS = sizeof(Dtype) / sizeof(float);
#define GEMM_KERNEL(BM, BN, BLOCKS, TA, TB, name)                                                    \
  extern "C" __global__ void __launch_bounds__(BM * BN / 64, BLOCKS / WORDS) name(GEMM_ARGS) {       \
    gemm_tile<BM, BN, TA, TB>(GEMM_PASS);                                                            \
  }
#define GEMM_TRANSPOSES(BM, BN, BLOCKS)                                  \
  GEMM_KERNEL(BM, BN, BLOCKS, false, false, gemm_nn_##BM##x##BN)         \
  GEMM_KERNEL(BM, BN, BLOCKS, false, true, gemm_nt_##BM##x##BN)          \
  GEMM_KERNEL(BM, BN, BLOCKS, true, false, gemm_tn_##BM##x##BN)          \
  GEMM_KERNEL(BM, BN, BLOCKS, true, true, gemm_tt_##BM##x##BN)
GEMM_TRANSPOSES(128, 128, 2)
GEMM_TRANSPOSES(128, 64, 3)
GEMM_TRANSPOSES(64, 64, 6)

// C[p] = alpha * (sum over s of W[p * splits + s]) + beta * C[p] for the `products` M x N results
// of a split-K GEMM, W holding each slice's partial product densely (M x N, row stride N). The
// slices are added in order 0, 1, ...: the result does not depend on the grid or thread count.
extern "C" __global__ void gemm_splitk_reduce(int n, int M, int N, int splits, Dtype alpha, const Dtype* W,
                                              Dtype beta, Dtype* C, int ldc, long long strideC) {
  const long long matrix = (long long)M * N;
  CUDA_KERNEL_LOOP(i, n) {
    const long long product = i / matrix, e = i - product * matrix;
    const Dtype* w = W + product * splits * matrix + e;
    Dtype sum = w[0];
    for (int s = 1; s < splits; ++s) sum += w[s * matrix];
    Dtype* c = C + product * strideC + (e / N) * ldc + e % N;
    *c = (beta != Dtype(0)) ? alpha * sum + beta * *c : alpha * sum;
  }
}

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
