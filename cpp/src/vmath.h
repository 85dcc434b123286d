// Vectorised single-precision exp for the elementwise kernels (activation.cpp, loss.cpp).
//
// std::exp in a loop does not vectorise without -ffast-math (glibc's vector expf is only declared
// under it), and -ffast-math would change NaN / inf semantics everywhere. exp16 follows the
// classic scheme: n = round(x / ln2), r = x - n ln2 (ln2 split in two, Cody-Waite, so r is exact
// enough), e^r by the Cephes expf polynomial on |r| <= ln2/2, then scaling by 2^n with vscalefps,
// which rounds once into the subnormals and gives +inf / 0 past the ends of the range. Accuracy:
// within 2 ulp of the correctly rounded result over the whole range (tested against float64).
// NaN propagates; exp(+inf) = +inf; exp(-inf) = 0.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace nnfast {

#if defined(__AVX512F__)
// GCC 12 warns that the intrinsics' internal _mm512_undefined_ps() "may be used uninitialized" (a
// known false positive of its self-initialised placeholder).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
static inline __m512 exp16(__m512 x) {
  // Clamp so that r stays small (e^-104 and e^89 are already 0 and inf in float); min / max
  // return their second operand when it is NaN, so a NaN x survives the clamp.
  x = _mm512_min_ps(_mm512_set1_ps(89.0f), _mm512_max_ps(_mm512_set1_ps(-104.0f), x));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  return _mm512_scalef_ps(p, n);
}

// y[i] = exp(x[i] - shift) for i < n; returns the sum of the y[i] (summed in a fixed order).
static inline float exp_shifted(float* y, const float* x, float shift, int n) {
  const __m512 s = _mm512_set1_ps(shift);
  __m512 acc = _mm512_setzero_ps();
  for (int i = 0; i < n; i += 16) {
    const __mmask16 m = (__mmask16)((1u << std::min(16, n - i)) - 1);
    const __m512 e = _mm512_maskz_mov_ps(m, exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), s)));
    _mm512_mask_storeu_ps(y + i, m, e);
    acc = _mm512_add_ps(acc, e);
  }
  return _mm512_reduce_add_ps(acc);
}
#pragma GCC diagnostic pop
#else
static inline float exp_shifted(float* y, const float* x, float shift, int n) {
  float sum = 0.0f;
  for (int i = 0; i < n; i++) sum += (y[i] = std::exp(x[i] - shift));
  return sum;
}
#endif

// Row maximum (NaN-propagating, so a NaN row gives NaN outputs, never a silent finite value).
static inline float row_max(const float* x, int cols) {
  float m = x[0];
  for (int j = 1; j < cols; j++) m = (x[j] > m || std::isnan(x[j])) ? x[j] : m;
  return m;
}

// y = softmax(x) over one row of cols values; returns log sum exp(x) = max + log sum exp(x - max)
// in double (what cross-entropy subtracts the target logit from).
static inline double softmax_row(float* y, const float* x, int cols) {
  const float m = row_max(x, cols);
  const float s = exp_shifted(y, x, m, cols);
  const float inv = 1.0f / s;
  for (int j = 0; j < cols; j++) y[j] *= inv;
  return (double)m + std::log((double)s);
}

}  // namespace nnfast
