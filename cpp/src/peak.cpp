// fma_peak: independent FMA chains per thread (nnfast/peak.h).
#include "nnfast/peak.h"

#include "simd.h"

namespace nnfast {
inline namespace NNFAST_ISA {

namespace {

using simd::V;
constexpr int kChains = 12;   // two FMA units x up to 6 cycles of latency

// One thread's rounds: acc[c] = acc[c] * a + b for every chain, `iterations` times.
float chains(int64_t iterations, float seed) {
  V acc[kChains];
  for (int c = 0; c < kChains; ++c) acc[c] = simd::set1(seed + 0.001f * c);
  const V a = simd::set1(0.999999f), b = simd::set1(1e-7f);
  for (int64_t i = 0; i < iterations; ++i)
    for (int c = 0; c < kChains; ++c) acc[c] = simd::fmadd(acc[c], a, b);
  V total = acc[0];
  for (int c = 1; c < kChains; ++c) total = simd::add(total, acc[c]);
  return simd::reduce_add(total);
}

}  // namespace

int fma_peak_chains() { return kChains; }

float fma_peak(int64_t iterations, double* flops) {
  const int threads = get_num_threads();
  float sum = 0.0f;
#pragma omp parallel for num_threads(threads) reduction(+ : sum) schedule(static, 1)
  for (int t = 0; t < threads; ++t) sum += chains(iterations, 1.0f + t);
  *flops = 2.0 * kChains * simd::W * static_cast<double>(iterations) * threads;
  return sum;
}

}  // namespace NNFAST_ISA
}  // namespace nnfast
