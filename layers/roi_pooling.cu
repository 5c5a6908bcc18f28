// Region-of-interest pooling over (N, C, H, W) features, one region per row of rois
// (batch index, x1, y1, x2, y2) in image coordinates scaled by spatial_scale:
//   ROIPooling (Faster R-CNN): max over each of PH x PW bins, the argmax kept for backward;
//   PSROIPooling (R-FCN): average over bin (ph, pw) of channel (ctop * G + ph) * G + pw.
// Backward gathers, one thread per bottom element, from every region and bin that read it.
#include "common.cuh"

// C's round(): half away from zero, as the forks' round().
__device__ __forceinline__ int bin_start(Dtype offset, Dtype bin, int k) { return (int)floor(k * bin + offset); }
__device__ __forceinline__ int bin_end(Dtype offset, Dtype bin, int k) { return (int)ceil((k + 1) * bin + offset); }
__device__ __forceinline__ int clamp_to(int v, int hi) { return min(max(v, 0), hi); }

// Faster R-CNN's region: start and size in feature cells, bins as fractions of it.
__device__ void roi_region(const Dtype* roi, Dtype scale, int PH, int PW, int* start_h, int* start_w,
                           Dtype* bin_h, Dtype* bin_w) {
  *start_w = (int)round(roi[1] * scale);
  *start_h = (int)round(roi[2] * scale);
  const int end_w = (int)round(roi[3] * scale), end_h = (int)round(roi[4] * scale);
  *bin_h = Dtype(max(end_h - *start_h + 1, 1)) / Dtype(PH);
  *bin_w = Dtype(max(end_w - *start_w + 1, 1)) / Dtype(PW);
}

extern "C" __global__ void roi_max_forward(int count, const Dtype* x, const Dtype* rois, Dtype scale,
                                           int C, int H, int W, int PH, int PW, Dtype* y, int* argmax) {
  CUDA_KERNEL_LOOP(index, count) {
    const int pw = index % PW, ph = (index / PW) % PH, c = (index / (PW * PH)) % C;
    const int r = index / (PW * PH * C);
    const Dtype* roi = rois + r * 5;
    int start_h, start_w;
    Dtype bin_h, bin_w;
    roi_region(roi, scale, PH, PW, &start_h, &start_w, &bin_h, &bin_w);
    const int hs = clamp_to((int)floor(ph * bin_h) + start_h, H), he = clamp_to((int)ceil((ph + 1) * bin_h) + start_h, H);
    const int ws = clamp_to((int)floor(pw * bin_w) + start_w, W), we = clamp_to((int)ceil((pw + 1) * bin_w) + start_w, W);
    const Dtype* plane = x + ((size_t)(int)roi[0] * C + c) * H * W;
    Dtype best = (he <= hs || we <= ws) ? Dtype(0) : -FLT_MAX;
    int arg = -1;
    for (int h = hs; h < he; ++h)
      for (int w = ws; w < we; ++w)
        if (plane[h * W + w] > best) {
          best = plane[h * W + w];
          arg = h * W + w;
        }
    y[index] = best;
    argmax[index] = arg;
  }
}

extern "C" __global__ void roi_max_backward(int count, const Dtype* dy, const int* argmax, const Dtype* rois,
                                            int R, Dtype scale, int C, int H, int W, int PH, int PW,
                                            Dtype* dx) {
  CUDA_KERNEL_LOOP(index, count) {
    const int w = index % W, h = (index / W) % H, c = (index / (W * H)) % C, n = index / (W * H * C);
    Dtype grad = 0;
    for (int r = 0; r < R; ++r) {
      if ((int)rois[r * 5] != n) continue;
      const size_t offset = ((size_t)r * C + c) * PH * PW;
      for (int k = 0; k < PH * PW; ++k)
        if (argmax[offset + k] == h * W + w) grad += dy[offset + k];
    }
    dx[index] = grad;
  }
}

// R-FCN's region: rounded corners, scaled, at least 0.1 cells wide; channel (ctop * G + ph) * G + pw.
__device__ void psroi_region(const Dtype* roi, Dtype scale, int G, Dtype* start_h, Dtype* start_w,
                             Dtype* bin_h, Dtype* bin_w) {
  *start_w = Dtype(round(roi[1])) * scale;
  *start_h = Dtype(round(roi[2])) * scale;
  const Dtype end_w = Dtype(round(roi[3]) + 1) * scale, end_h = Dtype(round(roi[4]) + 1) * scale;
  *bin_w = max(end_w - *start_w, Dtype(0.1)) / Dtype(G);
  *bin_h = max(end_h - *start_h, Dtype(0.1)) / Dtype(G);
}

extern "C" __global__ void psroi_forward(int count, const Dtype* x, const Dtype* rois, Dtype scale, int C,
                                         int H, int W, int output_dim, int G, Dtype* y) {
  CUDA_KERNEL_LOOP(index, count) {
    const int pw = index % G, ph = (index / G) % G, ctop = (index / (G * G)) % output_dim;
    const int r = index / (G * G * output_dim);
    const Dtype* roi = rois + r * 5;
    Dtype start_h, start_w, bin_h, bin_w;
    psroi_region(roi, scale, G, &start_h, &start_w, &bin_h, &bin_w);
    const int hs = clamp_to(bin_start(start_h, bin_h, ph), H), he = clamp_to(bin_end(start_h, bin_h, ph), H);
    const int ws = clamp_to(bin_start(start_w, bin_w, pw), W), we = clamp_to(bin_end(start_w, bin_w, pw), W);
    const int c = (ctop * G + ph) * G + pw;
    const Dtype* plane = x + ((size_t)(int)roi[0] * C + c) * H * W;
    double sum = 0;
    for (int h = hs; h < he; ++h)
      for (int w = ws; w < we; ++w) sum += plane[h * W + w];
    y[index] = (he <= hs || we <= ws) ? Dtype(0) : Dtype(sum / ((he - hs) * (we - ws)));
  }
}

extern "C" __global__ void psroi_backward(int count, const Dtype* dy, const Dtype* rois, int R, Dtype scale,
                                          int C, int H, int W, int output_dim, int G, Dtype* dx) {
  CUDA_KERNEL_LOOP(index, count) {
    const int w = index % W, h = (index / W) % H, c = (index / (W * H)) % C, n = index / (W * H * C);
    const int pw = c % G, ph = (c / G) % G, ctop = c / (G * G);
    Dtype grad = 0;
    if (ctop < output_dim)
      for (int r = 0; r < R; ++r) {
        const Dtype* roi = rois + r * 5;
        if ((int)roi[0] != n) continue;
        Dtype start_h, start_w, bin_h, bin_w;
        psroi_region(roi, scale, G, &start_h, &start_w, &bin_h, &bin_w);
        const int hs = clamp_to(bin_start(start_h, bin_h, ph), H), he = clamp_to(bin_end(start_h, bin_h, ph), H);
        const int ws = clamp_to(bin_start(start_w, bin_w, pw), W), we = clamp_to(bin_end(start_w, bin_w, pw), W);
        if (h >= hs && h < he && w >= ws && w < we)
          grad += dy[(((size_t)r * output_dim + ctop) * G + ph) * G + pw] / Dtype((he - hs) * (we - ws));
      }
    dx[index] = grad;
  }
}
