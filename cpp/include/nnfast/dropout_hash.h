// The counter-based generator behind dropout's masks, shared by the CPU kernels (src/dropout.cpp)
// and the CUDA ones (cuda/dropout.cu) so that both draw the same mask: uniform(seed, i) is the
// top 24 bits of splitmix64(seed + (i+1) * golden ratio), as a float in [0, 1). Internal to each
// file that includes it (static), so no copy of the kernels shares its symbol.
#pragma once
#include <cstdint>

#ifdef __CUDACC__
#define NNFAST_HOST_DEVICE __host__ __device__
#else
#define NNFAST_HOST_DEVICE
#endif

namespace nnfast {

static inline NNFAST_HOST_DEVICE float dropout_uniform(uint64_t seed, uint64_t i) {
  uint64_t z = seed + (i + 1) * 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return (float)(z >> 40) * (1.0f / 16777216.0f);
}

}  // namespace nnfast
