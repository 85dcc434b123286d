// Fused, in-place optimizer updates over one parameter tensor of n floats (PyTorch semantics).
#pragma once
#include "nnfast/common.h"

namespace nnfast {

// One tensor of sgd_update_all's list.
struct SgdTensor {
  float* param;
  const float* grad;
  float* momentum_buf;  // null when momentum == 0
  size_t n;
};

inline namespace NNFAST_ISA {

// SGD: g = grad + weight_decay * p;
// if momentum != 0: buf = first_step ? g : momentum * buf + (1 - dampening) * g;
//                   g = nesterov ? g + momentum * buf : buf;
// p -= lr * g. buf may be null when momentum == 0.
void sgd_update(float* param, const float* grad, float* momentum_buf, size_t n, float lr,
                float momentum, float dampening, float weight_decay, bool nesterov,
                bool first_step);

// The same update for a list of tensors (a model's parameters) in one parallel region: each
// thread takes its share of every tensor.
void sgd_update_all(const SgdTensor* tensors, size_t count, float lr, float momentum,
                    float dampening, float weight_decay, bool nesterov, bool first_step);

// Adam (step counts from 1): if decoupled (AdamW): p *= 1 - lr * weight_decay, else
// g = grad + weight_decay * p; m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
// p -= lr * (m / (1 - b1^step)) / (sqrt(v / (1 - b2^step)) + eps).
void adam_update(float* param, const float* grad, float* m, float* v, size_t n, float lr,
                 float beta1, float beta2, float eps, float weight_decay, long step,
                 bool decoupled);

// RMSprop: g = grad + weight_decay * p; sq = alpha sq + (1 - alpha) g^2;
// centered: ga += (1 - alpha) (g - ga), avg = sqrt(sq - ga^2) + eps; else avg = sqrt(sq) + eps;
// momentum > 0: buf = momentum buf + g / avg, p -= lr buf; else p -= lr g / avg.
// momentum_buf is null when momentum == 0, grad_avg unless centered.
void rmsprop_update(float* param, const float* grad, float* square_avg, float* momentum_buf,
                    float* grad_avg, size_t n, float lr, float alpha, float eps,
                    float weight_decay, float momentum, bool centered);

// Adagrad (step counts from 1): g = grad + weight_decay * p; sum += g^2;
// p -= lr / (1 + (step - 1) lr_decay) * g / (sqrt(sum) + eps).
void adagrad_update(float* param, const float* grad, float* sum, size_t n, float lr,
                    float lr_decay, float weight_decay, float eps, long step);

// Adadelta: g = grad + weight_decay * p; sq = rho sq + (1 - rho) g^2;
// delta = sqrt(acc + eps) / sqrt(sq + eps) * g; acc = rho acc + (1 - rho) delta^2;
// p -= lr delta.
void adadelta_update(float* param, const float* grad, float* square_avg, float* acc_delta,
                     size_t n, float lr, float rho, float eps, float weight_decay);

}  // namespace NNFAST_ISA
}  // namespace nnfast
