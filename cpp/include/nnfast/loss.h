// Losses with mean reduction. Each *_forward returns the mean loss (accumulated in double, in an
// order that does not depend on the thread count); each *_backward writes d(scale * loss)/d(input)
// into dx (overwritten), where scale is the upstream gradient (1.0 for a plain loss.backward()).
// Callers guarantee labels lie in [0, C).
#pragma once
#include "nnfast/common.h"

namespace nnfast {
inline namespace NNFAST_ISA {

// Softmax + cross-entropy fused, integer labels. logits (N,C); probs (N,C) receives softmax(logits)
// for backward. loss = mean_i (logsumexp(z_i) - z_i[y_i]), stable for any finite logits.
double cross_entropy_forward(float* probs, const float* logits, const int64_t* labels, int N, int C);
// dlogits = scale * (probs - onehot(labels)) / N.
void cross_entropy_backward(float* dlogits, const float* probs, const int64_t* labels, int N, int C,
                            float scale);

// Same with target distributions (one-hot or probabilities) t (N,C):
// loss = mean_i sum_j -t_ij * log_softmax(z_i)_j; dlogits = scale * (probs * sum_j t_ij - t) / N.
double cross_entropy_soft_forward(float* probs, const float* logits, const float* targets, int N,
                                  int C);
void cross_entropy_soft_backward(float* dlogits, const float* probs, const float* targets, int N,
                                 int C, float scale);

// NLL on log-probabilities logp (N,C): loss = -mean_i logp[i, y_i]; dlogp[i, y_i] = -scale / N, 0 elsewhere.
double nll_forward(const float* logp, const int64_t* labels, int N, int C);
void nll_backward(float* dlogp, const int64_t* labels, int N, int C, float scale);

// MSE over n elements: mean (p - t)^2; dp = scale * 2 (p - t) / n.
double mse_forward(const float* pred, const float* target, size_t n);
void mse_backward(float* dpred, const float* pred, const float* target, size_t n, float scale);

// L1 over n elements: mean |p - t|; dp = scale * sign(p - t) / n (sign(0) = sign(NaN) = 0).
double l1_forward(const float* pred, const float* target, size_t n);
void l1_backward(float* dpred, const float* pred, const float* target, size_t n, float scale);

// Binary cross-entropy on probabilities p in [0,1] (PyTorch's BCELoss: logs clamped at -100):
// mean -(t log p + (1-t) log(1-p)); dp = scale * (p - t) / max(p (1-p), 1e-12) / n.
// A NaN p or t gives a NaN loss and gradient (PyTorch refuses a NaN p instead).
double bce_forward(const float* p, const float* target, size_t n);
void bce_backward(float* dp, const float* p, const float* target, size_t n, float scale);

// BCE on logits z, stable for any z: mean max(z,0) - z t + log(1 + exp(-|z|));
// dz = scale * (sigmoid(z) - t) / n.
double bce_with_logits_forward(const float* z, const float* target, size_t n);
void bce_with_logits_backward(float* dz, const float* z, const float* target, size_t n, float scale);

}  // namespace NNFAST_ISA
}  // namespace nnfast
