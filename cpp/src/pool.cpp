// Max and average pooling over NCHW planes (see pool.h). Each (n, c) plane is independent, so
// planes are split across threads; backward writes only its own plane (no races, same bits).
#include "nnfast/pool.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

namespace nnfast {

static inline int plane_threads(const Pool2dShape& s) {
  return (size_t)s.N * s.C * s.H * s.W >= (size_t(1) << 15) ? get_num_threads() : 1;
}

// Window maximum of one output element, in row-major window order: a candidate replaces the best
// when it is larger, or when it is NaN and the best is not (so the first NaN wins, as in PyTorch).
static inline bool takes_over(float v, float best) {
  return v > best || (v != v && best == best);
}

// The reference form: one output element at a time, window clipped to the image.
static inline void maxpool_window(float* y, int32_t* am, const float* xp, const Pool2dShape& s,
                                  int oh, int ow) {
  const int h0 = oh * s.SH - s.PH, h_lo = std::max(h0, 0), h_hi = std::min(h0 + s.KH, s.H);
  const int w0 = ow * s.SW - s.PW, w_lo = std::max(w0, 0), w_hi = std::min(w0 + s.KW, s.W);
  // padding <= kernel/2, so every window meets the image: start from its first element
  float best = xp[h_lo * s.W + w_lo];
  int32_t best_i = h_lo * s.W + w_lo;
  for (int h = h_lo; h < h_hi; h++)
    for (int w = w_lo; w < w_hi; w++) {
      const float v = xp[h * s.W + w];
      if (takes_over(v, best)) {
        best = v;
        best_i = h * s.W + w;
      }
    }
  *y = best;
  *am = best_i;
}

// Output columns [lo, hi) whose windows lie inside the image horizontally.
static inline std::pair<int, int> interior_cols(const Pool2dShape& s) {
  const int OW = s.OW();
  const int lo = std::min(OW, (s.PW + s.SW - 1) / s.SW);            // ow*SW - PW >= 0
  const int last = s.W + s.PW - s.KW;                                // ow*SW - PW + KW <= W
  const int hi = std::max(lo, std::min(OW, last < 0 ? 0 : last / s.SW + 1));
  return {lo, hi};
}

// The interior of one output row, vectorised across output columns (SW_ > 0: the stride as a
// compile-time constant, so the compiler can vectorise the strided loads; 0: s.SW at run time).
template <int SW_>
static void maxpool_row_interior(float* y, int32_t* am, const float* xp, const Pool2dShape& s,
                                 int oh, int lo, int hi) {
  const int SW = SW_ > 0 ? SW_ : s.SW;
  const int h0 = oh * s.SH - s.PH, h_lo = std::max(h0, 0), h_hi = std::min(h0 + s.KH, s.H);
  const int W = s.W;
  constexpr int B = 64;
  float best[B];
  int32_t bi[B];
  for (int o0 = lo; o0 < hi; o0 += B) {
    const int n = std::min(B, hi - o0);
    const int wbase = o0 * SW - s.PW;  // input column of the window start of output o0
    {
      const float* xr = xp + (size_t)h_lo * W + wbase;
      const int32_t ib = h_lo * W + wbase;
#pragma omp simd
      for (int j = 0; j < n; j++) {
        best[j] = xr[j * SW];
        bi[j] = ib + j * SW;
      }
    }
    for (int h = h_lo; h < h_hi; h++)
      for (int kw = (h == h_lo ? 1 : 0); kw < s.KW; kw++) {
        const float* xr = xp + (size_t)h * W + wbase + kw;
        const int32_t ib = h * W + wbase + kw;
#pragma omp simd
        for (int j = 0; j < n; j++) {
          const float v = xr[j * SW];
          const bool t = takes_over(v, best[j]);
          best[j] = t ? v : best[j];
          bi[j] = t ? ib + j * SW : bi[j];
        }
      }
    std::copy(best, best + n, y + o0);
    std::copy(bi, bi + n, am + o0);
  }
}

// y[n,c,oh,ow] = max of the window at (oh*SH - PH, ow*SW - PW); argmax = h*W + w of the first
// maximum (a NaN is taken as the maximum, so it propagates as in PyTorch). Planes in parallel;
// interior windows vectorised across each output row, border windows one by one.
void maxpool2d_forward(float* y, int32_t* argmax, const float* x, const Pool2dShape& s) {
  const int OH = s.OH(), OW = s.OW();
  const long planes = (long)s.N * s.C;
  const auto [lo, hi] = interior_cols(s);
#pragma omp parallel for num_threads(plane_threads(s)) schedule(static)
  for (long pl = 0; pl < planes; pl++) {
    const float* xp = x + (size_t)pl * s.H * s.W;
    float* yp = y + (size_t)pl * OH * OW;
    int32_t* ap = argmax + (size_t)pl * OH * OW;
    for (int oh = 0; oh < OH; oh++) {
      float* yr = yp + (size_t)oh * OW;
      int32_t* ar = ap + (size_t)oh * OW;
      for (int ow = 0; ow < lo; ow++) maxpool_window(yr + ow, ar + ow, xp, s, oh, ow);
      if (s.SW == 1) maxpool_row_interior<1>(yr, ar, xp, s, oh, lo, hi);
      else if (s.SW == 2) maxpool_row_interior<2>(yr, ar, xp, s, oh, lo, hi);
      else maxpool_row_interior<0>(yr, ar, xp, s, oh, lo, hi);
      for (int ow = hi; ow < OW; ow++) maxpool_window(yr + ow, ar + ow, xp, s, oh, ow);
    }
  }
}
// dx = 0, then dx[argmax] += dy for every output element of the plane.
void maxpool2d_backward(float* dx, const float* dy, const int32_t* argmax, const Pool2dShape& s) {
  const int P = s.OH() * s.OW();
  const long planes = (long)s.N * s.C;
#pragma omp parallel for num_threads(plane_threads(s)) schedule(static)
  for (long pl = 0; pl < planes; pl++) {
    float* dxp = dx + (size_t)pl * s.H * s.W;
    const float* dyp = dy + (size_t)pl * P;
    const int32_t* ap = argmax + (size_t)pl * P;
    std::fill(dxp, dxp + (size_t)s.H * s.W, 0.0f);
    for (int i = 0; i < P; i++) dxp[ap[i]] += dyp[i];
  }
}

// y = sum of the window (padding counts as zeros) / (KH * KW)
void avgpool2d_forward(float* y, const float* x, const Pool2dShape& s) {
  const int OH = s.OH(), OW = s.OW();
  const float inv = 1.0f / (float)(s.KH * s.KW);
  const long planes = (long)s.N * s.C;
#pragma omp parallel for num_threads(plane_threads(s)) schedule(static)
  for (long pl = 0; pl < planes; pl++) {
    const float* xp = x + (size_t)pl * s.H * s.W;
    float* yp = y + (size_t)pl * OH * OW;
    for (int oh = 0; oh < OH; oh++) {
      const int h0 = oh * s.SH - s.PH, h_lo = std::max(h0, 0), h_hi = std::min(h0 + s.KH, s.H);
      for (int ow = 0; ow < OW; ow++) {
        const int w0 = ow * s.SW - s.PW, w_lo = std::max(w0, 0), w_hi = std::min(w0 + s.KW, s.W);
        float sum = 0.0f;
        for (int h = h_lo; h < h_hi; h++)
          for (int w = w_lo; w < w_hi; w++) sum += xp[h * s.W + w];
        yp[oh * OW + ow] = sum * inv;
      }
    }
  }
}
// dx = 0, then each dy / (KH * KW) added to every in-image element of its window.
void avgpool2d_backward(float* dx, const float* dy, const Pool2dShape& s) {
  const int OH = s.OH(), OW = s.OW();
  const float inv = 1.0f / (float)(s.KH * s.KW);
  const long planes = (long)s.N * s.C;
#pragma omp parallel for num_threads(plane_threads(s)) schedule(static)
  for (long pl = 0; pl < planes; pl++) {
    float* dxp = dx + (size_t)pl * s.H * s.W;
    const float* dyp = dy + (size_t)pl * OH * OW;
    std::fill(dxp, dxp + (size_t)s.H * s.W, 0.0f);
    for (int oh = 0; oh < OH; oh++) {
      const int h0 = oh * s.SH - s.PH, h_lo = std::max(h0, 0), h_hi = std::min(h0 + s.KH, s.H);
      for (int ow = 0; ow < OW; ow++) {
        const int w0 = ow * s.SW - s.PW, w_lo = std::max(w0, 0), w_hi = std::min(w0 + s.KW, s.W);
        const float g = dyp[oh * OW + ow] * inv;
        for (int h = h_lo; h < h_hi; h++)
          for (int w = w_lo; w < w_hi; w++) dxp[h * s.W + w] += g;
      }
    }
  }
}

}  // namespace nnfast
