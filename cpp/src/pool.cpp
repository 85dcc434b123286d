// Max and average pooling over NCHW planes (see pool.h). Each (n, c) plane is independent, so
// planes are split across threads; backward writes only its own plane (no races, same bits).
#include "nnfast/pool.h"

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

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

#if defined(__AVX512F__)
// The 2 x 2, stride 2, unpadded window (every LeNet), 16 outputs of a row at a time: the two input
// rows' 32 floats are split into even and odd columns, giving the four window candidates in
// window order, and the running maximum takes each over with the same rule as takes_over.
static inline bool is_2x2_stride_2(const Pool2dShape& s) {
  return s.KH == 2 && s.KW == 2 && s.SH == 2 && s.SW == 2 && s.PH == 0 && s.PW == 0;
}
static const __m512i kEven = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26,
                                               28, 30);
static const __m512i kOdd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27,
                                              29, 31);
static inline __mmask16 lanes(int n) { return (__mmask16)((1u << std::clamp(n, 0, 16)) - 1); }

static void maxpool_2x2_plane(float* y, int32_t* am, const float* xp, int W, int OH, int OW) {
  const __m512i two_j = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  for (int oh = 0; oh < OH; oh++) {
    const float* r0 = xp + (size_t)2 * oh * W;
    const float* r1 = r0 + W;
    for (int j0 = 0; j0 < OW; j0 += 16) {
      const int n = std::min(16, OW - j0);
      const __mmask16 lo = lanes(2 * n), hi = lanes(2 * n - 16);
      const float* a = r0 + 2 * j0;
      const float* b = r1 + 2 * j0;
      const __m512 a0 = _mm512_maskz_loadu_ps(lo, a), a1 = _mm512_maskz_loadu_ps(hi, a + 16);
      const __m512 b0 = _mm512_maskz_loadu_ps(lo, b), b1 = _mm512_maskz_loadu_ps(hi, b + 16);
      const __m512 cand[4] = {_mm512_permutex2var_ps(a0, kEven, a1),
                              _mm512_permutex2var_ps(a0, kOdd, a1),
                              _mm512_permutex2var_ps(b0, kEven, b1),
                              _mm512_permutex2var_ps(b0, kOdd, b1)};
      const int offset[4] = {0, 1, W, W + 1};
      __m512 best = cand[0];
      __m512i off = _mm512_setzero_si512();
      for (int c = 1; c < 4; c++) {
        const __mmask16 best_nan = _mm512_cmp_ps_mask(best, best, _CMP_UNORD_Q);
        const __mmask16 take = _mm512_cmp_ps_mask(cand[c], best, _CMP_GT_OQ) |
                               (_mm512_cmp_ps_mask(cand[c], cand[c], _CMP_UNORD_Q) & ~best_nan);
        best = _mm512_mask_blend_ps(take, best, cand[c]);
        off = _mm512_mask_blend_epi32(take, off, _mm512_set1_epi32(offset[c]));
      }
      const __m512i base = _mm512_add_epi32(_mm512_set1_epi32(2 * oh * W + 2 * j0), two_j);
      _mm512_mask_storeu_ps(y + (size_t)oh * OW + j0, lanes(n), best);
      _mm512_mask_storeu_epi32(am + (size_t)oh * OW + j0, lanes(n), _mm512_add_epi32(base, off));
    }
  }
}

// Backward of one plane for the same window: each pair of input rows is written once, dy going to
// the argmax candidate of its window and zeros elsewhere (rows / columns no window covers, when
// H or W is odd, get zeros). Returns false if an argmax lies outside its window (only possible
// for an argmax array that maxpool2d_forward did not make): the caller then redoes the plane.
static bool maxpool_2x2_plane_backward(float* dxp, const float* dyp, const int32_t* ap, int H,
                                       int W, int OH, int OW) {
  const __m512i two_j = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  // interleave(e, o) lanes 0..15 = e0 o0 e1 o1 ... e7 o7, lanes 16..31 = e8 o8 ... e15 o15
  const __m512i lo_idx = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  const __m512i hi_idx = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15,
                                           31);
  for (int oh = 0; oh < OH; oh++)
    for (int j0 = 0; j0 < OW; j0 += 16) {
      const int n = std::min(16, OW - j0);
      const __mmask16 valid = lanes(n);
      const __m512i base = _mm512_add_epi32(_mm512_set1_epi32(2 * oh * W + 2 * j0), two_j);
      const __m512i off =
          _mm512_sub_epi32(_mm512_maskz_loadu_epi32(valid, ap + (size_t)oh * OW + j0), base);
      const __m512 g = _mm512_maskz_loadu_ps(valid, dyp + (size_t)oh * OW + j0);
      const __mmask16 m00 = _mm512_cmpeq_epi32_mask(off, _mm512_setzero_si512()) & valid;
      const __mmask16 m01 = _mm512_cmpeq_epi32_mask(off, _mm512_set1_epi32(1)) & valid;
      const __mmask16 m10 = _mm512_cmpeq_epi32_mask(off, _mm512_set1_epi32(W)) & valid;
      const __mmask16 m11 = _mm512_cmpeq_epi32_mask(off, _mm512_set1_epi32(W + 1)) & valid;
      if ((__mmask16)(m00 | m01 | m10 | m11) != valid) return false;
      const __m512 rows[2][2] = {{_mm512_maskz_mov_ps(m00, g), _mm512_maskz_mov_ps(m01, g)},
                                 {_mm512_maskz_mov_ps(m10, g), _mm512_maskz_mov_ps(m11, g)}};
      const __mmask16 lo = lanes(2 * n), hi = lanes(2 * n - 16);
      for (int r = 0; r < 2; r++) {
        float* d = dxp + (size_t)(2 * oh + r) * W + 2 * j0;
        _mm512_mask_storeu_ps(d, lo, _mm512_permutex2var_ps(rows[r][0], lo_idx, rows[r][1]));
        _mm512_mask_storeu_ps(d + 16, hi, _mm512_permutex2var_ps(rows[r][0], hi_idx, rows[r][1]));
      }
    }
  // the last column (odd W) and the last row (odd H) belong to no window
  if (W % 2)
    for (int h = 0; h < 2 * OH; h++) dxp[(size_t)h * W + W - 1] = 0.0f;
  if (H % 2) std::fill(dxp + (size_t)(H - 1) * W, dxp + (size_t)H * W, 0.0f);
  return true;
}
#endif

// One (n, c) plane: y[oh,ow] = max of the window at (oh*SH - PH, ow*SW - PW); argmax = h*W + w of
// the first maximum (a NaN is taken as the maximum, so it propagates as in PyTorch). Interior
// windows vectorised across each output row, border windows one by one.
void maxpool2d_plane(float* yp, int32_t* ap, const float* xp, const Pool2dShape& s) {
  const int OH = s.OH(), OW = s.OW();
#if defined(__AVX512F__)
  if (is_2x2_stride_2(s)) return maxpool_2x2_plane(yp, ap, xp, s.W, OH, OW);
#endif
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
#if defined(__AVX512F__)
  if (is_2x2_stride_2(s) && maxpool_2x2_plane_backward(dxp, dyp, ap, s.H, s.W, s.OH(), s.OW()))
    return;
#endif
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

}  // namespace nnfast
