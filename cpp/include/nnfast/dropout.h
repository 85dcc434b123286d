// Inverted dropout with a counter-based generator: element i is kept iff
// uniform(seed, i) >= p, where uniform() hashes (seed, i) with splitmix64 into [0,1).
// The mask depends only on (seed, i), never on the thread count.
#pragma once
#include "nnfast/common.h"

namespace nnfast {
inline namespace NNFAST_ISA {

// y = x * mask / (1 - p); mask[i] = 1 kept, 0 dropped. 0 <= p < 1 (p == 0: mask all ones).
// As PyTorch's product with the mask, a dropped NaN or inf gives NaN (0 * inf); a dropped finite
// value gives +0.
void dropout_forward(float* y, uint8_t* mask, const float* x, size_t n, float p, uint64_t seed);
// dx = dy * mask / (1 - p), the dropped elements as in the forward (NaN for a non-finite dy).
void dropout_backward(float* dx, const float* dy, const uint8_t* mask, size_t n, float p);

}  // namespace NNFAST_ISA
}  // namespace nnfast
