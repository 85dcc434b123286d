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

}  // namespace NNFAST_ISA
}  // namespace nnfast
