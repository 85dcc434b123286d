// Vectorised single-precision exp for the elementwise kernels (activation.cpp, loss.cpp), in
// simd.h's vectors, and the scalar threshold / ReLU rules that the elementwise loops, the fused
// epilogues (gemm.cpp, linear.cpp) and conv2d_relu_maxpool share.
//
// std::exp in a loop does not vectorise without -ffast-math (glibc's vector expf is only declared
// under it), and -ffast-math would change NaN / inf semantics everywhere. exp_v follows the
// classic scheme: n = round(x / ln2), r = x - n ln2 (ln2 split in two, Cody-Waite, so r is exact
// enough), e^r by the Cephes expf polynomial on |r| <= ln2/2, then scaling by 2^n
// (simd::scale_pow2), which rounds once into the subnormals and gives +inf / 0 past the ends of
// the range. Accuracy: within 2 ulp of the correctly rounded result over the whole range (tested
// against float64). NaN propagates; exp(+inf) = +inf; exp(-inf) = 0.
#pragma once
#include "simd.h"

#include <algorithm>
#include <cmath>
#include <cstddef>

namespace nnfast {
inline namespace NNFAST_ISA {

// Threshold and ReLU as PyTorch computes them: the value (or the gradient) passes where NOT
// x <= threshold, so a NaN x passes (NaN stays NaN forward, and receives its gradient backward,
// as threshold_backward), while x <= threshold, -0 included, gives `value` (+0 for the ReLU).
// Loops over them vectorise to a compare (unordered not-less-equal) and a mask or blend on every
// ISA.
static inline float threshold_value(float x, float threshold, float value) {
  return x <= threshold ? value : x;
}
static inline float threshold_grad(float x, float dy, float threshold) {
  return x <= threshold ? 0.0f : dy;
}
static inline float relu_value(float x) { return threshold_value(x, 0.0f, 0.0f); }
static inline float relu_grad(float x, float dy) { return threshold_grad(x, dy, 0.0f); }

static inline simd::V exp_v(simd::V x) {
  using namespace simd;
  // Clamp so that r stays small (e^-104 and e^89 are already 0 and inf in float); min / max
  // return their second operand when it is NaN, so a NaN x survives the clamp.
  x = min(set1(89.0f), max(set1(-104.0f), x));
  const V n = round_nearest(mul(x, set1(1.44269504088896341f)));
  V r = fnmadd(n, set1(0.693359375f), x);
  r = fnmadd(n, set1(-2.12194440e-4f), r);
  V p = set1(1.9875691500e-4f);
  p = fmadd(p, r, set1(1.3981999507e-3f));
  p = fmadd(p, r, set1(8.3334519073e-3f));
  p = fmadd(p, r, set1(4.1665795894e-2f));
  p = fmadd(p, r, set1(1.6666665459e-1f));
  p = fmadd(p, r, set1(5.0000001201e-1f));
  p = fmadd(p, mul(r, r), add(r, set1(1.0f)));
  return scale_pow2(p, n);
}

// y[i] = exp(x[i] - shift) for i < n; returns the sum of the y[i] (lane sums over the vectors,
// then the lanes added: a fixed order).
static inline float exp_shifted(float* y, const float* x, float shift, int n) {
  using namespace simd;
  const V s = set1(shift);
  V acc = zero();
  int i = 0;
  for (; i + W <= n; i += W) {
    const V e = exp_v(sub(loadu(x + i), s));
    storeu(y + i, e);
    acc = add(acc, e);
  }
  if (i < n) {
    const Mask m = first(n - i);
    const V e = maskz(m, exp_v(sub(loadu(m, x + i), s)));
    storeu(y + i, m, e);
    acc = add(acc, e);
  }
  return reduce_add(acc);
}

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

}  // namespace NNFAST_ISA
}  // namespace nnfast
