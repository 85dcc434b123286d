// Inverted dropout with a counter-based generator (the CPU's dropout.h, bit for bit): element i
// is kept iff uniform(seed, i) >= p, uniform the top 24 bits of splitmix64(seed + (i+1) * golden
// ratio) in [0, 1): a pure function of (seed, i), so no generator state and any grid gives the
// same mask. y = x * mask / (1 - p); dx = dy * mask / (1 - p); mask uint8 (1 kept).
#include "common.cuh"

namespace nnfast {
namespace cuda {

__device__ inline float dropout_uniform(uint64_t seed, uint64_t i) {
  uint64_t z = seed + (i + 1) * 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return (float)(z >> 40) * (1.0f / 16777216.0f);
}

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
  dropout_forward_kernel<<<blocks_for(n), kThreads>>>(y, mask, x, n, p, 1.0f / (1.0f - p), seed);
  return last_error();
}

int dropout_backward(float* dx, const float* dy, const uint8_t* mask, size_t n, float p) {
  dropout_backward_kernel<<<blocks_for(n), kThreads>>>(dx, dy, mask, n, 1.0f / (1.0f - p));
  return last_error();
}

}  // namespace cuda
}  // namespace nnfast
