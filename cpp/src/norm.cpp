// Batch normalisation, forward and backward (see norm.h). Channels are independent: threads take
// whole channels, each summing its channel's values in a fixed order (double accumulators), so
// the results are the same bits for any thread count.
#include "nnfast/norm.h"

#include <omp.h>

#include <cmath>

namespace nnfast {
inline namespace NNFAST_ISA {

// Sum over the N * S values of channel c of f(value index in x, position in the plane).
template <typename F>
static inline double channel_sum(int N, int C, int S, int c, F&& f) {
  double sum = 0.0;
  for (int n = 0; n < N; n++) {
    const size_t base = ((size_t)n * C + c) * S;
    for (int s = 0; s < S; s++) sum += f(base + s);
  }
  return sum;
}

// Runs body(c) for every channel, the channels shared out among the threads.
template <typename Body>
static inline void for_channels(int N, int C, int S, Body&& body) {
  const int nt = elementwise_threads((size_t)N * C * S) > 1 && C > 1 ? get_num_threads() : 1;
  parallel_region(nt, [&] {
    const auto [c0, c1] = part_of(C, omp_get_thread_num(), omp_get_num_threads());
    for (long c = c0; c < c1; c++) body((int)c);
  });
}

void batchnorm_forward(float* y, float* mean, float* invstd, const float* x, const float* gamma,
                       const float* beta, float* running_mean, float* running_var, int N, int C,
                       int S, bool training, float momentum, float eps) {
  const double count = (double)N * S;
  for_channels(N, C, S, [&](int c) {
    float m, is;
    if (training) {
      const double mu = channel_sum(N, C, S, c, [&](size_t i) { return (double)x[i]; }) / count;
      const double var = channel_sum(N, C, S, c, [&](size_t i) {
                           const double d = x[i] - mu;
                           return d * d;
                         }) / count;
      m = (float)mu;
      is = (float)(1.0 / std::sqrt(var + eps));
      if (running_mean) {
        running_mean[c] = (1.0f - momentum) * running_mean[c] + momentum * m;
        running_var[c] = (1.0f - momentum) * running_var[c] +
                         momentum * (float)(var * count / (count - 1.0));
      }
    } else {
      m = running_mean[c];
      is = 1.0f / std::sqrt(running_var[c] + eps);
    }
    mean[c] = m, invstd[c] = is;
    const float scale = is * (gamma ? gamma[c] : 1.0f), shift = beta ? beta[c] : 0.0f;
    for (int n = 0; n < N; n++) {
      const size_t base = ((size_t)n * C + c) * S;
#pragma omp simd
      for (int s = 0; s < S; s++) y[base + s] = (x[base + s] - m) * scale + shift;
    }
  });
}

void batchnorm_backward(float* dx, float* dgamma, float* dbeta, const float* dy, const float* x,
                        const float* gamma, const float* mean, const float* invstd, int N, int C,
                        int S, bool training, bool accumulate) {
  const double count = (double)N * S;
  for_channels(N, C, S, [&](int c) {
    const float m = mean[c], is = invstd[c];
    const double sum_dy = channel_sum(N, C, S, c, [&](size_t i) { return (double)dy[i]; });
    const double sum_dy_xhat =
        channel_sum(N, C, S, c, [&](size_t i) { return (double)dy[i] * ((x[i] - m) * is); });
    if (dgamma) dgamma[c] = (accumulate ? dgamma[c] : 0.0f) + (float)sum_dy_xhat;
    if (dbeta) dbeta[c] = (accumulate ? dbeta[c] : 0.0f) + (float)sum_dy;
    if (!dx) return;
    const float k = is * (gamma ? gamma[c] : 1.0f);
    if (!training) {  // dx = k * dy, whatever x holds (an inf x must not give inf * 0 = NaN)
      for (int n = 0; n < N; n++) {
        const size_t base = ((size_t)n * C + c) * S;
#pragma omp simd
        for (int s = 0; s < S; s++) dx[base + s] = k * dy[base + s];
      }
      return;
    }
    const float mean_dy = (float)(sum_dy / count), mean_dy_xhat = (float)(sum_dy_xhat / count);
    for (int n = 0; n < N; n++) {
      const size_t base = ((size_t)n * C + c) * S;
#pragma omp simd
      for (int s = 0; s < S; s++) {
        const float xhat = (x[base + s] - m) * is;
        dx[base + s] = k * (dy[base + s] - mean_dy - xhat * mean_dy_xhat);
      }
    }
  });
}

}  // namespace NNFAST_ISA
}  // namespace nnfast
