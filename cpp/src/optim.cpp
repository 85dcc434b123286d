// Fused in-place optimizer updates, one pass over a parameter tensor (PyTorch semantics, see
// optim.h). Elementwise, so parallel loops give the same bits for any thread count.
#include "nnfast/optim.h"

#include <omp.h>

#include <algorithm>
#include <cmath>

namespace nnfast {
inline namespace NNFAST_ISA {

// p -= lr * g, g = grad + wd p, with optional (nesterov) momentum buffer; elements [i0, i1)
static inline void sgd_range(float* param, const float* grad, float* momentum_buf, size_t i0,
                             size_t i1, float lr, float momentum, float dampening,
                             float weight_decay, bool nesterov, bool first_step) {
#pragma omp simd
  for (size_t i = i0; i < i1; i++) {
    float g = grad[i] + weight_decay * param[i];
    if (momentum != 0.0f) {
      float b = first_step ? g : momentum * momentum_buf[i] + (1.0f - dampening) * g;
      momentum_buf[i] = b;
      g = nesterov ? g + momentum * b : b;
    }
    param[i] -= lr * g;
  }
}

void sgd_update(float* param, const float* grad, float* momentum_buf, size_t n, float lr,
                float momentum, float dampening, float weight_decay, bool nesterov,
                bool first_step) {
  const SgdTensor one{param, grad, momentum_buf, n};
  sgd_update_all(&one, 1, lr, momentum, dampening, weight_decay, nesterov, first_step);
}

// Thread t takes the t-th of T equal parts of every tensor (cut at 16-float boundaries, whole cache
// lines): the half of a weight that thread t updates is, but for a few rows, the half the Linear
// kernels' thread t reads and writes (they cut its rows at a multiple of 16 rows: row 384 of 784
// where this cuts at 392), wherever it sits in the list, so the weights do not cross between cores
// from one step to the next. (Splitting the tensors laid end to end instead would put up to a third
// of a weight's rows on the other core on MLP 784-256-128-10, whose first weight is 85% of its
// parameters.) A tensor below kSmallTensor elements (a bias, a small output layer) goes whole to
// the first thread, the calling one, which runs the single-threaded kernels that use it.
static constexpr size_t kSmallTensor = 16384;
void sgd_update_all(const SgdTensor* tensors, size_t count, float lr, float momentum,
                    float dampening, float weight_decay, bool nesterov, bool first_step) {
  size_t total = 0;
  for (size_t j = 0; j < count; j++) total += tensors[j].n;
  parallel_region(elementwise_threads(total), [&] {
    const int T = omp_get_num_threads(), t = omp_get_thread_num();
    for (size_t j = 0; j < count; j++) {
      const SgdTensor& s = tensors[j];
      auto [a, b] = part_of((long)s.n, t, T, 16);
      if (s.n < kSmallTensor) a = 0, b = t == 0 ? (long)s.n : 0;
      if (a < b)
        sgd_range(s.param, s.grad, s.momentum_buf, (size_t)a, (size_t)b, lr, momentum, dampening,
                  weight_decay, nesterov, first_step);
    }
  });
}

// Adam / AdamW with bias correction at step `step` (>= 1)
void adam_update(float* param, const float* grad, float* m, float* v, size_t n, float lr,
                 float beta1, float beta2, float eps, float weight_decay, long step,
                 bool decoupled) {
  const float bc1 = 1.0f - (float)std::pow((double)beta1, (double)step);
  const float bc2 = 1.0f - (float)std::pow((double)beta2, (double)step);
  const float step_size = lr / bc1;
  const float inv_sqrt_bc2 = 1.0f / std::sqrt(bc2);
  parallel_elements(n, [=](size_t i) {
    float g = grad[i];
    if (decoupled) param[i] *= 1.0f - lr * weight_decay;
    else g += weight_decay * param[i];
    m[i] = beta1 * m[i] + (1.0f - beta1) * g;
    v[i] = beta2 * v[i] + (1.0f - beta2) * g * g;
    param[i] -= step_size * m[i] / (std::sqrt(v[i]) * inv_sqrt_bc2 + eps);
  });
}

// RMSprop, PyTorch's order of operations (its centered mean is a lerp)
void rmsprop_update(float* param, const float* grad, float* square_avg, float* momentum_buf,
                    float* grad_avg, size_t n, float lr, float alpha, float eps,
                    float weight_decay, float momentum, bool centered) {
  parallel_elements(n, [=](size_t i) {
    const float g = grad[i] + weight_decay * param[i];
    square_avg[i] = square_avg[i] * alpha + (1.0f - alpha) * g * g;
    float avg;
    if (centered) {
      grad_avg[i] += (1.0f - alpha) * (g - grad_avg[i]);
      avg = std::sqrt(square_avg[i] - grad_avg[i] * grad_avg[i]) + eps;
    } else {
      avg = std::sqrt(square_avg[i]) + eps;
    }
    if (momentum > 0.0f) {
      momentum_buf[i] = momentum_buf[i] * momentum + g / avg;
      param[i] -= lr * momentum_buf[i];
    } else {
      param[i] -= lr * (g / avg);
    }
  });
}

// Adagrad at step `step` (>= 1)
void adagrad_update(float* param, const float* grad, float* sum, size_t n, float lr,
                    float lr_decay, float weight_decay, float eps, long step) {
  const float clr = lr / (1.0f + (float)(step - 1) * lr_decay);
  parallel_elements(n, [=](size_t i) {
    const float g = grad[i] + weight_decay * param[i];
    sum[i] += g * g;
    param[i] -= clr * (g / (std::sqrt(sum[i]) + eps));
  });
}

// Adadelta
void adadelta_update(float* param, const float* grad, float* square_avg, float* acc_delta,
                     size_t n, float lr, float rho, float eps, float weight_decay) {
  parallel_elements(n, [=](size_t i) {
    const float g = grad[i] + weight_decay * param[i];
    square_avg[i] = square_avg[i] * rho + (1.0f - rho) * g * g;
    const float delta = std::sqrt(acc_delta[i] + eps) / std::sqrt(square_avg[i] + eps) * g;
    acc_delta[i] = acc_delta[i] * rho + (1.0f - rho) * delta * delta;
    param[i] -= lr * delta;
  });
}

}  // namespace NNFAST_ISA
}  // namespace nnfast
