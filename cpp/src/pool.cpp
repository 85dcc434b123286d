// Max and average pooling over NCHW planes (see pool.h). Each (n, c) plane is independent, so
// planes are split across threads; backward writes only its own plane (no races, same bits).
#include "nnfast/pool.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace nnfast {

static inline int plane_threads(const Pool2dShape& s) {
  return (size_t)s.N * s.C * s.H * s.W >= (size_t(1) << 15) ? get_num_threads() : 1;
}

// y[n,c,oh,ow] = max of the window at (oh*SH - PH, ow*SW - PW); argmax = h*W + w of the first
// maximum (a NaN is taken as the maximum, so it propagates as in PyTorch).
void maxpool2d_forward(float* y, int32_t* argmax, const float* x, const Pool2dShape& s) {
  const int OH = s.OH(), OW = s.OW();
  const long planes = (long)s.N * s.C;
#pragma omp parallel for num_threads(plane_threads(s)) schedule(static)
  for (long pl = 0; pl < planes; pl++) {
    const float* xp = x + (size_t)pl * s.H * s.W;
    float* yp = y + (size_t)pl * OH * OW;
    int32_t* ap = argmax + (size_t)pl * OH * OW;
    for (int oh = 0; oh < OH; oh++) {
      const int h0 = oh * s.SH - s.PH, h_lo = std::max(h0, 0), h_hi = std::min(h0 + s.KH, s.H);
      for (int ow = 0; ow < OW; ow++) {
        const int w0 = ow * s.SW - s.PW, w_lo = std::max(w0, 0), w_hi = std::min(w0 + s.KW, s.W);
        float best = -std::numeric_limits<float>::infinity();
        int32_t best_i = h_lo * s.W + w_lo;  // padding <= kernel/2: every window meets the image
        for (int h = h_lo; h < h_hi; h++)
          for (int w = w_lo; w < w_hi; w++) {
            const float v = xp[h * s.W + w];
            if (v > best || std::isnan(v)) {
              best = v;
              best_i = h * s.W + w;
              if (std::isnan(v)) goto done;
            }
          }
      done:
        yp[oh * OW + ow] = best;
        ap[oh * OW + ow] = best_i;
      }
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
