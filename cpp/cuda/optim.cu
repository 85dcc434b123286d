// Optimizer updates in place, PyTorch's semantics (the CPU's optim.h), for all the parameters of a
// step in one launch: the grid's y index picks the tensor of the device-side table, its x blocks
// stride over that tensor's elements (a grid sized for the largest tensor; blocks beyond a small
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

// The grid: x blocks for the largest tensor, y one per tensor (at most 65,535 tensors).
static dim3 update_grid(int count, size_t max_n) { return dim3(blocks_for(max_n), count); }

int sgd_update_all(const SgdTensor* tensors, int count, size_t max_n, float lr, float momentum,
                   float dampening, float weight_decay, bool nesterov, bool first_step) {
  if (count <= 0) return 0;
  if (count > 65535) return (int)cudaErrorInvalidConfiguration;
  sgd_kernel<<<update_grid(count, max_n), kThreads>>>(tensors, lr, momentum, dampening,
                                                      weight_decay, nesterov, first_step);
  return last_error();
}

int adam_update_all(const AdamTensor* tensors, int count, size_t max_n, float lr, float beta1,
                    float beta2, float eps, float weight_decay, long step, bool decoupled) {
  if (count <= 0) return 0;
  if (count > 65535) return (int)cudaErrorInvalidConfiguration;
  const float bc1 = 1.0f - (float)std::pow((double)beta1, (double)step);
  const float bc2 = 1.0f - (float)std::pow((double)beta2, (double)step);
  adam_kernel<<<update_grid(count, max_n), kThreads>>>(tensors, lr, beta1, beta2, eps,
                                                       weight_decay, lr / bc1,
                                                       1.0f / std::sqrt(bc2), decoupled);
  return last_error();
}

}  // namespace cuda
}  // namespace nnfast
