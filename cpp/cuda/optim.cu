// Optimizer updates in place, PyTorch's semantics (the CPU's optim.h). RMSprop, Adagrad and
// Adadelta: one tensor per launch. SGD and Adam: all the parameters of a step in one launch: the
// grid's y index picks the tensor of the device-side table, its x blocks stride over that
// tensor's elements (a grid sized for the largest tensor; blocks beyond a small
// tensor's end exit at once). Elementwise, so the results do not depend on the grid.
#include <cmath>

#include "common.cuh"

namespace nnfast {
namespace cuda {

// g = grad + wd p; with momentum: buf = first ? g : momentum buf + (1 - dampening) g,
// g = nesterov ? g + momentum buf : buf; p -= lr g
__global__ void sgd_kernel(const SgdTensor* tensors, float lr, float momentum, float dampening,
                           float weight_decay, bool nesterov, bool first_step) {
  const SgdTensor t = tensors[blockIdx.y];
  NNFAST_GRID_LOOP(i, t.n) {
    float g = t.grad[i] + weight_decay * t.param[i];
    if (momentum != 0.0f) {
      const float b = first_step ? g : momentum * t.momentum_buf[i] + (1.0f - dampening) * g;
      t.momentum_buf[i] = b;
      g = nesterov ? g + momentum * b : b;
    }
    t.param[i] -= lr * g;
  }
}

// decoupled (AdamW): p *= 1 - lr wd, else g = grad + wd p; m = b1 m + (1-b1) g;
// v = b2 v + (1-b2) g^2; p -= step_size m / (sqrt(v) inv_sqrt_bc2 + eps), as the CPU computes it
__global__ void adam_kernel(const AdamTensor* tensors, float lr, float beta1, float beta2,
                            float eps, float weight_decay, float step_size, float inv_sqrt_bc2,
                            bool decoupled) {
  const AdamTensor t = tensors[blockIdx.y];
  NNFAST_GRID_LOOP(i, t.n) {
    float g = t.grad[i];
    if (decoupled) t.param[i] *= 1.0f - lr * weight_decay;
    else g += weight_decay * t.param[i];
    const float m = beta1 * t.m[i] + (1.0f - beta1) * g;
    const float v = beta2 * t.v[i] + (1.0f - beta2) * g * g;
    t.m[i] = m;
    t.v[i] = v;
    t.param[i] -= step_size * m / (sqrtf(v) * inv_sqrt_bc2 + eps);
  }
}

// g = grad + wd p; sq = alpha sq + (1 - alpha) g^2; centered: ga += (1 - alpha) (g - ga),
// avg = sqrt(sq - ga^2) + eps, else sqrt(sq) + eps; momentum > 0: buf = momentum buf + g / avg,
// p -= lr buf; else p -= lr g / avg
__global__ void rmsprop_kernel(float* param, const float* grad, float* square_avg,
                               float* momentum_buf, float* grad_avg, size_t n, float lr,
                               float alpha, float eps, float weight_decay, float momentum) {
  NNFAST_GRID_LOOP(i, n) {
    const float g = grad[i] + weight_decay * param[i];
    const float sq = alpha * square_avg[i] + (1.0f - alpha) * g * g;
    square_avg[i] = sq;
    float avg;
    if (grad_avg) {
      const float ga = grad_avg[i] + (1.0f - alpha) * (g - grad_avg[i]);   // the CPU's form
      grad_avg[i] = ga;
      avg = sqrtf(sq - ga * ga) + eps;
    } else {
      avg = sqrtf(sq) + eps;
    }
    if (momentum_buf) {
      const float b = momentum * momentum_buf[i] + g / avg;
      momentum_buf[i] = b;
      param[i] -= lr * b;
    } else {
      param[i] -= lr * (g / avg);
    }
  }
}

// g = grad + wd p; sum += g^2; p -= clr g / (sqrt(sum) + eps)
__global__ void adagrad_kernel(float* param, const float* grad, float* state_sum, size_t n,
                               float clr, float weight_decay, float eps) {
  NNFAST_GRID_LOOP(i, n) {
    const float g = grad[i] + weight_decay * param[i];
    const float s = state_sum[i] + g * g;
    state_sum[i] = s;
    param[i] -= clr * (g / (sqrtf(s) + eps));
  }
}

// g = grad + wd p; sq = rho sq + (1 - rho) g^2; delta = sqrt(acc + eps) / sqrt(sq + eps) g;
// acc = rho acc + (1 - rho) delta^2; p -= lr delta
__global__ void adadelta_kernel(float* param, const float* grad, float* square_avg,
                                float* acc_delta, size_t n, float lr, float rho, float eps,
                                float weight_decay) {
  NNFAST_GRID_LOOP(i, n) {
    const float g = grad[i] + weight_decay * param[i];
    const float sq = rho * square_avg[i] + (1.0f - rho) * g * g;
    square_avg[i] = sq;
    const float delta = sqrtf(acc_delta[i] + eps) / sqrtf(sq + eps) * g;
    acc_delta[i] = rho * acc_delta[i] + (1.0f - rho) * delta * delta;
    param[i] -= lr * delta;
  }
}

int rmsprop_update(float* param, const float* grad, float* square_avg, float* momentum_buf,
                   float* grad_avg, size_t n, float lr, float alpha, float eps,
                   float weight_decay, float momentum) {
  return launch_elementwise(rmsprop_kernel, n, param, grad, square_avg, momentum_buf, grad_avg, n,
                            lr, alpha, eps, weight_decay, momentum);
}

int adagrad_update(float* param, const float* grad, float* state_sum, size_t n, float lr,
                   float lr_decay, float weight_decay, float eps, long step) {
  const float clr = lr / (1.0f + (float)(step - 1) * lr_decay);
  return launch_elementwise(adagrad_kernel, n, param, grad, state_sum, n, clr, weight_decay, eps);
}

int adadelta_update(float* param, const float* grad, float* square_avg, float* acc_delta,
                    size_t n, float lr, float rho, float eps, float weight_decay) {
  return launch_elementwise(adadelta_kernel, n, param, grad, square_avg, acc_delta, n, lr, rho, eps,
                            weight_decay);
}

// The grid: x blocks for the largest tensor, y one per tensor (at most 65,535 tensors).
static dim3 update_grid(int count, size_t max_n) { return dim3(blocks_for(max_n), count); }

int sgd_update_all(const SgdTensor* tensors, int count, size_t max_n, float lr, float momentum,
                   float dampening, float weight_decay, bool nesterov, bool first_step) {
  if (count <= 0) return 0;
  if (count > 65535) return (int)cudaErrorInvalidConfiguration;
  sgd_kernel<<<update_grid(count, max_n), kThreads, 0, stream()>>>(
      tensors, lr, momentum, dampening, weight_decay, nesterov, first_step);
  return last_error();
}

int adam_update_all(const AdamTensor* tensors, int count, size_t max_n, float lr, float beta1,
                    float beta2, float eps, float weight_decay, long step, bool decoupled) {
  if (count <= 0) return 0;
  if (count > 65535) return (int)cudaErrorInvalidConfiguration;
  const float bc1 = 1.0f - (float)std::pow((double)beta1, (double)step);
  const float bc2 = 1.0f - (float)std::pow((double)beta2, (double)step);
  adam_kernel<<<update_grid(count, max_n), kThreads, 0, stream()>>>(
      tensors, lr, beta1, beta2, eps, weight_decay, lr / bc1, 1.0f / std::sqrt(bc2), decoupled);
  return last_error();
}

}  // namespace cuda
}  // namespace nnfast
