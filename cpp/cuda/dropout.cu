// Inverted dropout with the CPU's counter-based generator (nnfast/dropout_hash.h, bit for bit):
// element i is kept iff uniform(seed, i) >= p, a pure function of (seed, i), so no generator
// state and any grid gives the same mask. y = x * mask / (1 - p); dx = dy * mask / (1 - p); mask uint8 (1 kept).
#include "common.cuh"
#include "nnfast/dropout_hash.h"

namespace nnfast {
namespace cuda {

__global__ void dropout_forward_kernel(float* y, uint8_t* mask, const float* x, size_t n, float p,
                                       float scale, uint64_t seed) {
  NNFAST_GRID_LOOP(i, n) {
    const uint8_t keep = dropout_uniform(seed, i) >= p;
    mask[i] = keep;
    y[i] = keep ? x[i] * scale : 0.0f;
  }
}

__global__ void dropout_backward_kernel(float* dx, const float* dy, const uint8_t* mask, size_t n,
                                        float scale) {
  NNFAST_GRID_LOOP(i, n) dx[i] = mask[i] ? dy[i] * scale : 0.0f;
}

int dropout_forward(float* y, uint8_t* mask, const float* x, size_t n, float p, uint64_t seed) {
  return launch_elementwise(dropout_forward_kernel, n, y, mask, x, n, p, 1.0f / (1.0f - p), seed);
}

int dropout_backward(float* dx, const float* dy, const uint8_t* mask, size_t n, float p) {
  return launch_elementwise(dropout_backward_kernel, n, dx, dy, mask, n, 1.0f / (1.0f - p));
}

}  // namespace cuda
}  // namespace nnfast
