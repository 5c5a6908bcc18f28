// Depthwise convolution (one group per image channel) in the convolution view: images
// (N, C, H, W), outputs (N, C * M, OH, OW), weights (C * M, 1, KH, KW); output channel c * M + m
// reads image channel c. Windows start at -pad and step by stride, taps by dilation.
#include "common.cuh"

#define DW_ARGS                                                                                 \
  int C, int M, int H, int W, int OH, int OW, int KH, int KW, int ph, int pw, int sh, int sw,  \
      int dh, int dw

// outputs = W * images (+ bias per output channel): one thread per output element.
extern "C" __global__ void depthwise_forward(int count, const Dtype* x, const Dtype* w,
                                             const Dtype* bias, DW_ARGS, Dtype* y) {
  CUDA_KERNEL_LOOP(index, count) {
    const int ox = index % OW, oy = (index / OW) % OH;
    const int o = (index / (OW * OH)) % (C * M), n = index / (OW * OH * C * M);
    const Dtype* image = x + ((size_t)n * C + o / M) * H * W;
    const Dtype* taps = w + (size_t)o * KH * KW;
    Dtype sum = bias ? bias[o] : Dtype(0);
    for (int i = 0; i < KH; ++i) {
      const int h = oy * sh - ph + i * dh;
      if (h < 0 || h >= H) continue;
      for (int j = 0; j < KW; ++j) {
        const int v = ox * sw - pw + j * dw;
        if (v >= 0 && v < W) sum += taps[i * KW + j] * image[h * W + v];
      }
    }
    y[index] = sum;
  }
}

// images = W^T * outputs (+ bias per image channel): one thread per image element gathers every
// (output, tap) pair that read it.
extern "C" __global__ void depthwise_transposed(int count, const Dtype* dy, const Dtype* w,
                                                const Dtype* bias, DW_ARGS, Dtype* dx) {
  CUDA_KERNEL_LOOP(index, count) {
    const int v = index % W, h = (index / W) % H;
    const int c = (index / (W * H)) % C, n = index / (W * H * C);
    Dtype sum = bias ? bias[c] : Dtype(0);
    for (int m = 0; m < M; ++m) {
      const int o = c * M + m;
      const Dtype* out = dy + ((size_t)n * C * M + o) * OH * OW;
      const Dtype* taps = w + (size_t)o * KH * KW;
      for (int i = 0; i < KH; ++i) {
        const int yy = h + ph - i * dh;
        if (yy < 0 || yy % sh) continue;
        const int oy = yy / sh;
        if (oy >= OH) continue;
        for (int j = 0; j < KW; ++j) {
          const int xx = v + pw - j * dw;
          if (xx < 0 || xx % sw) continue;
          const int ox = xx / sw;
          if (ox < OW) sum += taps[i * KW + j] * out[oy * OW + ox];
        }
      }
    }
    dx[index] = sum;
  }
}

// dw[o, tap] += sum over images and output pixels of dy * the image element the tap read: one
// block per weight element (blockIdx.x strides over C * M * KH * KW), reduced in double.
extern "C" __global__ void depthwise_weight_gradient(int N, const Dtype* x, const Dtype* dy,
                                                     DW_ARGS, Dtype* dweights) {
  const int taps = C * M * KH * KW;
  for (int k = blockIdx.x; k < taps; k += gridDim.x) {
    const int j = k % KW, i = (k / KW) % KH, o = k / (KW * KH), c = o / M;
    const long long per_weight = (long long)N * OH * OW;
    double sum = 0;
    for (long long p = threadIdx.x; p < per_weight; p += blockDim.x) {
      const int ox = p % OW, oy = (p / OW) % OH, n = p / (OW * OH);
      const int h = oy * sh - ph + i * dh, v = ox * sw - pw + j * dw;
      if (h >= 0 && h < H && v >= 0 && v < W)
        sum += (double)dy[(((size_t)n * C * M + o) * OH + oy) * OW + ox] *
               x[(((size_t)n * C + c) * H + h) * W + v];
    }
    sum = block_sum(sum);
    if (threadIdx.x == 0) dweights[k] += Dtype(sum);
  }
}
