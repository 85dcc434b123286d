// The geometry rules of the windowed kernels (conv.h, pool.h): which shapes they can run on. One
// copy for every instruction set (no vector code), in the common part of the kernel library, so
// that the bindings, the C++ tests and any other caller check shapes by the same rules.
#include <algorithm>
#include <climits>
#include <cstdint>
#include <initializer_list>

#include "nnfast/conv.h"
#include "nnfast/pool.h"

namespace nnfast {

namespace {

constexpr size_t kIntMax = (size_t)INT_MAX;

// The product of non-negative factors, SIZE_MAX where it overflows.
size_t product(std::initializer_list<size_t> factors) {
  size_t p = 1;
  for (size_t f : factors)
    if (__builtin_mul_overflow(p, f, &p)) return SIZE_MAX;
  return p;
}

// A GeometryCheck for `what` = value when that is over 2^31-1, else ok.
GeometryCheck int_sized(const char* what, size_t value) {
  if (value <= kIntMax) return {};
  return {GeometryCheck::too_large, what, value};
}

// The rule conv2d and pooling share: the window fits in the padded input (sides in long, so
// that a large padding cannot overflow).
bool window_fits(long H, long W, long KH, long KW, long PH, long PW) {
  return H + 2 * PH >= KH && W + 2 * PW >= KW;
}

}  // namespace

GeometryCheck check_pool2d(const Pool2dShape& s) {
  if (s.KH < 1 || s.KW < 1) return {GeometryCheck::kernel_below_1};
  if (s.SH < 1 || s.SW < 1) return {GeometryCheck::stride_below_1};
  if (s.PH < 0 || s.PW < 0 || 2L * s.PH > s.KH || 2L * s.PW > s.KW)
    return {GeometryCheck::padding_outside_half_kernel};
  if (!window_fits(s.H, s.W, s.KH, s.KW, s.PH, s.PW)) return {GeometryCheck::kernel_over_input};
  return int_sized("N * C * H * W", product({(size_t)s.N, (size_t)s.C, (size_t)s.H, (size_t)s.W}));
}

GeometryCheck check_conv2d(const Conv2dShape& s) {
  if (s.SH < 1 || s.SW < 1) return {GeometryCheck::stride_below_1};
  if (s.PH < 0 || s.PW < 0) return {GeometryCheck::padding_negative};
  if (!window_fits(s.H, s.W, s.KH, s.KW, s.PH, s.PW)) return {GeometryCheck::kernel_over_input};
  const size_t padded = std::max((size_t)s.H + 2 * (size_t)s.PH, (size_t)s.W + 2 * (size_t)s.PW);
  const size_t ckk = product({(size_t)s.C, (size_t)s.KH, (size_t)s.KW});
  for (GeometryCheck c : {int_sized("the padded input's height or width", padded),
                          int_sized("in_channels * kh * kw", ckk)})
    if (c.issue != GeometryCheck::ok) return c;
  // OH, OW < 2^31 now (the padded sides are), so p cannot overflow, nor N * p.
  const size_t p = (size_t)s.OH() * (size_t)s.OW();
  for (GeometryCheck c : {int_sized("out_h * out_w", p), int_sized("N * out_h * out_w", s.N * p)})
    if (c.issue != GeometryCheck::ok) return c;
  // Scratch per thread: one image's im2col (ckk * p) and dy^T (p * OC); per batch chunk: dW.
  // Each factor is < 2^31, so these products cannot overflow; 2^31 floats is 8 GiB.
  const size_t limit = size_t(1) << 31;
  if ((ckk + s.OC) * p > limit || ckk * s.OC > limit) return {GeometryCheck::workspace_too_large};
  return {};
}

}  // namespace nnfast
