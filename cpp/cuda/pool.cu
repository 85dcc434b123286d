// 2-D max and average pooling, NCHW (the CPU's pool.h). Forward: one thread per output element,
// its window clipped to the image (max: padding is -inf; avg: zero padding counted in the
// divisor KH*KW). Backward gathers instead of scattering: one thread per input element adds the
// gradients of the outputs whose windows cover it, in row-major output order (no atomics).
#include "common.cuh"

namespace nnfast {
namespace cuda {

// A value replaces the window's best when larger or when NaN (PyTorch's rule, the CPU's
// takes_over), in row-major window order from its first element inside the image: the first of
// equal maxima wins, and of NaNs the last.
// With relu, the window's values are relu(x) (0 where x <= 0, NaN kept).
__device__ inline float pooled_value(float v, bool relu) { return relu && v <= 0.0f ? 0.0f : v; }

__global__ void maxpool_forward_kernel(float* y, int32_t* argmax, const float* x, Pool2dShape s,
                                       int OH, int OW, size_t total, bool relu) {
  NNFAST_GRID_LOOP(o, total) {
    const int ow = (int)(o % OW), oh = (int)(o / OW % OH);
    const float* xp = x + o / ((size_t)OH * OW) * ((size_t)s.H * s.W);
    const int h0 = oh * s.SH - s.PH, hl = max(h0, 0), hh = min(h0 + s.KH, s.H);
    const int w0 = ow * s.SW - s.PW, wl = max(w0, 0), wh = min(w0 + s.KW, s.W);
    float best = pooled_value(xp[hl * s.W + wl], relu);
    int32_t best_i = hl * s.W + wl;
    for (int h = hl; h < hh; h++)
      for (int w = wl; w < wh; w++) {
        const float v = pooled_value(xp[h * s.W + w], relu);
        if (v > best || v != v) {
          best = v;
          best_i = h * s.W + w;
        }
      }
    y[o] = best;
    argmax[o] = best_i;
  }
}

// The outputs along one axis whose windows cover input position p: [lo, hi).
__device__ inline void covering(int p, int K, int S, int P, int O, int* lo, int* hi) {
  const int q = p + P;  // window o covers p when o S <= q < o S + K
  *lo = q < K ? 0 : (q - K) / S + 1;
  *hi = min(q / S + 1, O);
}

// With y (the pooled relu output), an output's gradient passes only where the ReLU passed it:
// not where y <= 0.
__global__ void maxpool_backward_kernel(float* dx, const float* dy, const int32_t* argmax,
                                        const float* y, Pool2dShape s, int OH, int OW,
                                        size_t total) {
  NNFAST_GRID_LOOP(i, total) {
    const int w = (int)(i % s.W), h = (int)(i / s.W % s.H);
    const size_t plane = i / ((size_t)s.H * s.W) * ((size_t)OH * OW);
    int oh0, oh1, ow0, ow1;
    covering(h, s.KH, s.SH, s.PH, OH, &oh0, &oh1);
    covering(w, s.KW, s.SW, s.PW, OW, &ow0, &ow1);
    const int32_t me = h * s.W + w;
    float g = 0.0f;
    for (int oh = oh0; oh < oh1; oh++)
      for (int ow = ow0; ow < ow1; ow++) {
        const size_t o = plane + (size_t)oh * OW + ow;
        if (argmax[o] == me && !(y && y[o] <= 0.0f)) g += dy[o];
      }
    dx[i] = g;
  }
}

__global__ void avgpool_forward_kernel(float* y, const float* x, Pool2dShape s, int OH, int OW,
                                       size_t total) {
  NNFAST_GRID_LOOP(o, total) {
    const int ow = (int)(o % OW), oh = (int)(o / OW % OH);
    const float* xp = x + o / ((size_t)OH * OW) * ((size_t)s.H * s.W);
    const int h0 = oh * s.SH - s.PH, hl = max(h0, 0), hh = min(h0 + s.KH, s.H);
    const int w0 = ow * s.SW - s.PW, wl = max(w0, 0), wh = min(w0 + s.KW, s.W);
    float sum = 0.0f;
    for (int h = hl; h < hh; h++)
      for (int w = wl; w < wh; w++) sum += xp[h * s.W + w];
    y[o] = sum * (1.0f / (float)(s.KH * s.KW));
  }
}

__global__ void avgpool_backward_kernel(float* dx, const float* dy, Pool2dShape s, int OH, int OW,
                                        size_t total) {
  NNFAST_GRID_LOOP(i, total) {
    const int w = (int)(i % s.W), h = (int)(i / s.W % s.H);
    const float* dyp = dy + i / ((size_t)s.H * s.W) * ((size_t)OH * OW);
    int oh0, oh1, ow0, ow1;
    covering(h, s.KH, s.SH, s.PH, OH, &oh0, &oh1);
    covering(w, s.KW, s.SW, s.PW, OW, &ow0, &ow1);
    const float inv = 1.0f / (float)(s.KH * s.KW);
    float g = 0.0f;
    for (int oh = oh0; oh < oh1; oh++)
      for (int ow = ow0; ow < ow1; ow++) g += dyp[oh * OW + ow] * inv;
    dx[i] = g;
  }
}

int maxpool2d_forward(float* y, int32_t* argmax, const float* x, const Pool2dShape& s) {
  const size_t total = (size_t)s.N * s.C * s.OH() * s.OW();
  maxpool_forward_kernel<<<blocks_for(total), kThreads, 0, stream()>>>(
      y, argmax, x, s, s.OH(), s.OW(), total, false);
  return last_error();
}
int relu_maxpool2d_forward(float* y, int32_t* argmax, const float* x, const Pool2dShape& s) {
  const size_t total = (size_t)s.N * s.C * s.OH() * s.OW();
  maxpool_forward_kernel<<<blocks_for(total), kThreads, 0, stream()>>>(
      y, argmax, x, s, s.OH(), s.OW(), total, true);
  return last_error();
}
int relu_maxpool2d_backward(float* dx, const float* dy, const float* y, const int32_t* argmax,
                            const Pool2dShape& s) {
  const size_t total = (size_t)s.N * s.C * s.H * s.W;
  maxpool_backward_kernel<<<blocks_for(total), kThreads, 0, stream()>>>(
      dx, dy, argmax, y, s, s.OH(), s.OW(), total);
  return last_error();
}
int maxpool2d_backward(float* dx, const float* dy, const int32_t* argmax, const Pool2dShape& s) {
  const size_t total = (size_t)s.N * s.C * s.H * s.W;
  maxpool_backward_kernel<<<blocks_for(total), kThreads, 0, stream()>>>(
      dx, dy, argmax, nullptr, s, s.OH(), s.OW(), total);
  return last_error();
}
int avgpool2d_forward(float* y, const float* x, const Pool2dShape& s) {
  const size_t total = (size_t)s.N * s.C * s.OH() * s.OW();
  avgpool_forward_kernel<<<blocks_for(total), kThreads, 0, stream()>>>(
      y, x, s, s.OH(), s.OW(), total);
  return last_error();
}
int avgpool2d_backward(float* dx, const float* dy, const Pool2dShape& s) {
  const size_t total = (size_t)s.N * s.C * s.H * s.W;
  avgpool_backward_kernel<<<blocks_for(total), kThreads, 0, stream()>>>(
      dx, dy, s, s.OH(), s.OW(), total);
  return last_error();
}

}  // namespace cuda
}  // namespace nnfast
