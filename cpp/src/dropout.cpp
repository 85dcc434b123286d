// Inverted dropout with a counter-based generator (see dropout.h): the mask of element i is a
// pure function of (seed, i), so it is the same for any thread count and reproducible in NumPy.
#include "nnfast/dropout.h"

#include "nnfast/dropout_hash.h"

namespace nnfast {
inline namespace NNFAST_ISA {

// A dropped element: x * 0 as PyTorch computes it, but +0 for every finite x (x - x), NaN for NaN
// and +-inf.
static inline float dropped(float x) { return x - x; }

// y = x * mask / (1 - p), mask[i] = uniform(seed, i) >= p
void dropout_forward(float* y, uint8_t* mask, const float* x, size_t n, float p, uint64_t seed) {
  const float scale = 1.0f / (1.0f - p);
  const int nt = n >= (size_t(1) << 15) ? get_num_threads() : 1;
  parallel_parts(nt, n, 16, [=](size_t i0, size_t i1) {
    for (size_t i = i0; i < i1; i++) {
      const uint8_t keep = dropout_uniform(seed, i) >= p;
      mask[i] = keep;
      y[i] = keep ? x[i] * scale : dropped(x[i]);
    }
  });
}
// dx = dy * mask / (1 - p)
void dropout_backward(float* dx, const float* dy, const uint8_t* mask, size_t n, float p) {
  const float scale = 1.0f / (1.0f - p);
  const int nt = n >= (size_t(1) << 15) ? get_num_threads() : 1;
  parallel_parts(nt, n, 16, [=](size_t i0, size_t i1) {
#pragma omp simd
    for (size_t i = i0; i < i1; i++) dx[i] = mask[i] ? dy[i] * scale : dropped(dy[i]);
  });
}

}  // namespace NNFAST_ISA
}  // namespace nnfast
