// Max and average pooling over NCHW planes (see pool.h). Each (n, c) plane is independent, so
// planes are split across threads; backward writes only its own plane (no races, same bits).
#include "nnfast/pool.h"

#include "simd.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

namespace nnfast {
inline namespace NNFAST_ISA {

static inline int plane_threads(const Pool2dShape& s) {
  return (size_t)s.N * s.C * s.H * s.W >= (size_t(1) << 15) ? get_num_threads() : 1;
}

// Window maximum of one output element, in row-major window order: a candidate replaces the best
// when it is larger or when it is NaN (PyTorch's `val > maxval || isnan(val)`): the first of equal
// maxima wins, and of NaNs the last, so the argmax, and where backward sends the gradient, are
// PyTorch's.
static inline bool takes_over(float v, float best) { return v > best || v != v; }

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

// The 2 x 2, stride 2, unpadded window (every LeNet), W outputs of a row at a time (simd.h): the
// two input rows' 2W floats are split into even and odd columns, giving the four window
// candidates in window order, and the running maximum takes each over with the same rule as
// takes_over (greater, or NaN).
static inline bool is_2x2_stride_2(const Pool2dShape& s) {
  return s.KH == 2 && s.KW == 2 && s.SH == 2 && s.SW == 2 && s.PH == 0 && s.PW == 0;
}
// The first n lanes, n clamped to [0, W].
static inline simd::Mask first_lanes(int n) { return simd::first(std::clamp(n, 0, simd::W)); }

static void maxpool_2x2_plane(float* y, int32_t* am, const float* xp, int IW, int OH, int OW) {
  using namespace simd;
  const VI two_j = addi(iota(), iota());
  for (int oh = 0; oh < OH; oh++) {
    const float* r0 = xp + (size_t)2 * oh * IW;
    const float* r1 = r0 + IW;
    for (int j0 = 0; j0 < OW; j0 += W) {
      const int n = std::min(W, OW - j0);
      const Mask lo = first_lanes(2 * n), hi = first_lanes(2 * n - W);
      const float* a = r0 + 2 * j0;
      const float* b = r1 + 2 * j0;
      V cand[4];
      deinterleave(loadu(lo, a), loadu(hi, a + W), cand[0], cand[1]);
      deinterleave(loadu(lo, b), loadu(hi, b + W), cand[2], cand[3]);
      const int offset[4] = {0, 1, IW, IW + 1};
      V best = cand[0];
      VI off = set1i(0);
      for (int c = 1; c < 4; c++) {
        const Mask take = mask_or(gt(cand[c], best), isnan(cand[c]));
        best = select(take, best, cand[c]);
        off = selecti(take, off, set1i(offset[c]));
      }
      const VI base = addi(set1i(2 * oh * IW + 2 * j0), two_j);
      storeu(y + (size_t)oh * OW + j0, first_lanes(n), best);
      storeu(am + (size_t)oh * OW + j0, first_lanes(n), addi(base, off));
    }
  }
}

// Backward of one plane for the same window: each pair of input rows is written once, dy going to
// the argmax candidate of its window and zeros elsewhere (rows / columns no window covers, when
// H or W is odd, get zeros). Returns false if an argmax lies outside its window (only possible
// for an argmax array that maxpool2d_forward did not make): the caller then redoes the plane.
static bool maxpool_2x2_plane_backward(float* dxp, const float* dyp, const int32_t* ap, int H,
                                       int IW, int OH, int OW) {
  using namespace simd;
  const VI two_j = addi(iota(), iota());
  for (int oh = 0; oh < OH; oh++)
    for (int j0 = 0; j0 < OW; j0 += W) {
      const int n = std::min(W, OW - j0);
      const Mask valid = first_lanes(n);
      const VI base = addi(set1i(2 * oh * IW + 2 * j0), two_j);
      const VI off = subi(loadu(valid, ap + (size_t)oh * OW + j0), base);
      const V g = loadu(valid, dyp + (size_t)oh * OW + j0);
      const Mask m00 = mask_and(eqi(off, set1i(0)), valid);
      const Mask m01 = mask_and(eqi(off, set1i(1)), valid);
      const Mask m10 = mask_and(eqi(off, set1i(IW)), valid);
      const Mask m11 = mask_and(eqi(off, set1i(IW + 1)), valid);
      if (bits(mask_or(mask_or(m00, m01), mask_or(m10, m11))) != bits(valid)) return false;
      const V rows[2][2] = {{maskz(m00, g), maskz(m01, g)}, {maskz(m10, g), maskz(m11, g)}};
      const Mask lo = first_lanes(2 * n), hi = first_lanes(2 * n - W);
      for (int r = 0; r < 2; r++) {
        float* d = dxp + (size_t)(2 * oh + r) * IW + 2 * j0;
        V first_half, second_half;
        interleave(rows[r][0], rows[r][1], first_half, second_half);
        storeu(d, lo, first_half);
        storeu(d + W, hi, second_half);
      }
    }
  // the last column (odd W) and the last row (odd H) belong to no window
  if (IW % 2)
    for (int h = 0; h < 2 * OH; h++) dxp[(size_t)h * IW + IW - 1] = 0.0f;
  if (H % 2) std::fill(dxp + (size_t)(H - 1) * IW, dxp + (size_t)H * IW, 0.0f);
  return true;
}

// One (n, c) plane: y[oh,ow] = max of the window at (oh*SH - PH, ow*SW - PW); argmax = h*W + w of
// the first maximum, or of the last NaN where the window holds one (takes_over: NaN propagates,
// as in PyTorch). Interior windows vectorised across each output row, border windows one by one.
void maxpool2d_plane(float* yp, int32_t* ap, const float* xp, const Pool2dShape& s) {
  const int OH = s.OH(), OW = s.OW();
  if (is_2x2_stride_2(s)) return maxpool_2x2_plane(yp, ap, xp, s.W, OH, OW);
  const auto [lo, hi] = interior_cols(s);
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

// Every plane, planes in parallel.
void maxpool2d_forward(float* y, int32_t* argmax, const float* x, const Pool2dShape& s) {
  const size_t out = (size_t)s.OH() * s.OW();
  const long planes = (long)s.N * s.C;
  parallel_parts(plane_threads(s), planes, 1, [=](size_t p0, size_t p1) {
    for (size_t pl = p0; pl < p1; pl++)
      maxpool2d_plane(y + pl * out, argmax + pl * out, x + pl * s.H * s.W, s);
  });
}

// One plane: dxp (H,W) = 0, then dxp[argmax] += dy for every output element, in order.
void maxpool2d_plane_backward(float* dxp, const float* dyp, const int32_t* ap, const Pool2dShape& s) {
  if (is_2x2_stride_2(s) && maxpool_2x2_plane_backward(dxp, dyp, ap, s.H, s.W, s.OH(), s.OW()))
    return;
  const int P = s.OH() * s.OW();
  std::fill(dxp, dxp + (size_t)s.H * s.W, 0.0f);
  for (int i = 0; i < P; i++) dxp[ap[i]] += dyp[i];
}

// Every plane, planes in parallel.
void maxpool2d_backward(float* dx, const float* dy, const int32_t* argmax, const Pool2dShape& s) {
  const size_t P = (size_t)s.OH() * s.OW();
  const long planes = (long)s.N * s.C;
  parallel_parts(plane_threads(s), planes, 1, [=](size_t p0, size_t p1) {
    for (size_t pl = p0; pl < p1; pl++)
      maxpool2d_plane_backward(dx + pl * s.H * s.W, dy + pl * P, argmax + pl * P, s);
  });
}

// Branch-free over all entries (vectorised, on every thread): the bindings call it on an argmax
// array from Python before any kernel indexes with it.
bool argmax_in_range(const int32_t* argmax, size_t n, int32_t plane) {
  int outside = 0;
  parallel_region(elementwise_threads(n), [&] {
#pragma omp for simd schedule(static) reduction(| : outside)
    for (size_t i = 0; i < n; i++) outside |= (argmax[i] < 0) | (argmax[i] >= plane);
  });
  return outside == 0;
}

// y = sum of the window (padding counts as zeros) / (KH * KW)
void avgpool2d_forward(float* y, const float* x, const Pool2dShape& s) {
  const int OH = s.OH(), OW = s.OW();
  const float inv = 1.0f / (float)(s.KH * s.KW);
  const long planes = (long)s.N * s.C;
  parallel_parts(plane_threads(s), planes, 1, [=](size_t p0, size_t p1) {
    for (size_t pl = p0; pl < p1; pl++) {
      const float* xp = x + pl * s.H * s.W;
      float* yp = y + pl * OH * OW;
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
  });
}
// dx = 0, then each dy / (KH * KW) added to every in-image element of its window.
void avgpool2d_backward(float* dx, const float* dy, const Pool2dShape& s) {
  const int OH = s.OH(), OW = s.OW();
  const float inv = 1.0f / (float)(s.KH * s.KW);
  const long planes = (long)s.N * s.C;
  parallel_parts(plane_threads(s), planes, 1, [=](size_t p0, size_t p1) {
    for (size_t pl = p0; pl < p1; pl++) {
      float* dxp = dx + pl * s.H * s.W;
      const float* dyp = dy + pl * OH * OW;
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
  });
}

}  // namespace NNFAST_ISA
}  // namespace nnfast
