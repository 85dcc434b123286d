// Losses with mean reduction (see loss.h). Means are accumulated in double, serially in index
// order, so the value never depends on the thread count; gradients are elementwise and may be
// computed in parallel.
#include "nnfast/loss.h"

#include <algorithm>
#include <cmath>

#include "nnfast/activation.h"
#include "vmath.h"

namespace nnfast {
inline namespace NNFAST_ISA {

// Cross-entropy is taken as logsumexp(z) - z[y] rather than -log softmax(z)[y], so it stays
// exact where the probability underflows to 0 (logits of +-1e4); softmax_row gives both. A NaN
// logit makes its row's logsumexp and probabilities NaN (row_max keeps it), hence a NaN loss
// and NaN gradients in that row, as PyTorch; +inf logits give NaN the same way (inf - inf).

// probs = softmax(logits); loss = mean_i (logsumexp(z_i) - z_i[y_i])
double cross_entropy_forward(float* probs, const float* logits, const int64_t* labels, int N,
                             int C) {
  double total = 0.0;
  for (int i = 0; i < N; i++) {
    const float* z = logits + (size_t)i * C;
    total += softmax_row(probs + (size_t)i * C, z, C) - (double)z[labels[i]];
  }
  return total / N;
}
// dlogits = scale * (probs - onehot) / N
void cross_entropy_backward(float* dlogits, const float* probs, const int64_t* labels, int N,
                            int C, float scale) {
  const float k = scale / N;
  for (int i = 0; i < N; i++) {
    const float* p = probs + (size_t)i * C;
    float* d = dlogits + (size_t)i * C;
    for (int j = 0; j < C; j++) d[j] = k * p[j];
    d[labels[i]] -= k;
  }
}

// probs = softmax(logits); loss = mean_i sum_j t_ij (logsumexp(z_i) - z_ij), every term added (a
// zero target's too: 0 * inf = NaN for a -inf logit, as PyTorch)
double cross_entropy_soft_forward(float* probs, const float* logits, const float* targets, int N,
                                  int C) {
  double total = 0.0;
  for (int i = 0; i < N; i++) {
    const float* z = logits + (size_t)i * C;
    const float* t = targets + (size_t)i * C;
    const double lse = softmax_row(probs + (size_t)i * C, z, C);
    for (int j = 0; j < C; j++) total += (double)t[j] * (lse - (double)z[j]);
  }
  return total / N;
}
// dlogits = scale * (probs * sum_j t_ij - t) / N
void cross_entropy_soft_backward(float* dlogits, const float* probs, const float* targets, int N,
                                 int C, float scale) {
  const float k = scale / N;
  for (int i = 0; i < N; i++) {
    const float* p = probs + (size_t)i * C;
    const float* t = targets + (size_t)i * C;
    float* d = dlogits + (size_t)i * C;
    float tsum = 0.0f;
    for (int j = 0; j < C; j++) tsum += t[j];
    for (int j = 0; j < C; j++) d[j] = k * (p[j] * tsum - t[j]);
  }
}

// loss = -mean_i logp[i, y_i]
double nll_forward(const float* logp, const int64_t* labels, int N, int C) {
  double total = 0.0;
  for (int i = 0; i < N; i++) total -= logp[(size_t)i * C + labels[i]];
  return total / N;
}
// dlogp[i, y_i] = -scale / N, zero elsewhere
void nll_backward(float* dlogp, const int64_t* labels, int N, int C, float scale) {
  std::fill(dlogp, dlogp + (size_t)N * C, 0.0f);
  for (int i = 0; i < N; i++) dlogp[(size_t)i * C + labels[i]] = -scale / N;
}

// loss = mean (p - t)^2
double mse_forward(const float* pred, const float* target, size_t n) {
  double total = 0.0;
  for (size_t i = 0; i < n; i++) {
    double d = (double)pred[i] - target[i];
    total += d * d;
  }
  return total / n;
}
// dp = scale * 2 (p - t) / n
void mse_backward(float* dpred, const float* pred, const float* target, size_t n, float scale) {
  const float k = 2.0f * scale / n;
  parallel_elements(n, [=](size_t i) { dpred[i] = k * (pred[i] - target[i]); });
}

// loss = mean |p - t|
double l1_forward(const float* pred, const float* target, size_t n) {
  double total = 0.0;
  for (size_t i = 0; i < n; i++) total += std::fabs((double)pred[i] - target[i]);
  return total / n;
}
// dp = scale * sign(p - t) / n, sign(0) = sign(NaN) = 0 (PyTorch's sign)
void l1_backward(float* dpred, const float* pred, const float* target, size_t n, float scale) {
  const float k = scale / n;
  parallel_elements(n, [=](size_t i) {
    float d = pred[i] - target[i];
    dpred[i] = d > 0.0f ? k : (d < 0.0f ? -k : 0.0f);
  });
}

// loss = mean -(t log p + (1 - t) log(1 - p)), logs clamped at -100 (PyTorch's BCELoss)
double bce_forward(const float* p, const float* target, size_t n) {
  double total = 0.0;
  for (size_t i = 0; i < n; i++) {
    double lp = std::max(std::log((double)p[i]), -100.0);
    double l1p = std::max(std::log1p(-(double)p[i]), -100.0);
    total -= target[i] * lp + (1.0 - target[i]) * l1p;
  }
  return total / n;
}
// dp = scale * (p - t) / max(p (1 - p), 1e-12) / n
void bce_backward(float* dp, const float* p, const float* target, size_t n, float scale) {
  const float k = scale / n;
  parallel_elements(n, [=](size_t i) {
    dp[i] = k * (p[i] - target[i]) / std::max(p[i] * (1.0f - p[i]), 1e-12f);
  });
}

// loss = mean max(z, 0) - z t + log(1 + exp(-|z|))
double bce_with_logits_forward(const float* z, const float* target, size_t n) {
  double total = 0.0;
  for (size_t i = 0; i < n; i++) {
    double zi = z[i];
    total += std::max(zi, 0.0) - zi * target[i] + std::log1p(std::exp(-std::fabs(zi)));
  }
  return total / n;
}
// dz = scale * (sigmoid(z) - t) / n
void bce_with_logits_backward(float* dz, const float* z, const float* target, size_t n,
                              float scale) {
  const float k = scale / n;
  parallel_elements(n, [=](size_t i) {
    float e = std::exp(-std::fabs(z[i]));
    float s = z[i] >= 0.0f ? 1.0f / (1.0f + e) : e / (1.0f + e);
    dz[i] = k * (s - target[i]);
  });
}

}  // namespace NNFAST_ISA
}  // namespace nnfast
