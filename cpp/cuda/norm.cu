// Batch normalisation over x (N, C, S), S the product of the spatial sizes (1 for (N, C)), as the
// CPU's norm.h: one block per channel, its N * S values summed in double in a fixed order (each
// thread its strided share, then the block's tree), so results do not depend on timing.
#include "common.cuh"

namespace nnfast {
namespace cuda {

// The value i of channel c's N * S values.
__device__ inline size_t channel_index(size_t i, int c, int C, size_t S) {
  return ((i / S) * C + c) * S + i % S;
}

// training: mean, var of the batch (two passes), running stats (if given) updated with momentum
// and the unbiased variance; else the running ones. y = (x - mean) invstd gamma + beta.
__global__ void batchnorm_forward_kernel(float* y, float* mean_out, float* invstd_out,
                                         const float* x, const float* gamma, const float* beta,
                                         float* running_mean, float* running_var, int C, size_t N,
                                         size_t S, bool training, float momentum, float eps) {
  const int c = blockIdx.x;
  const size_t count = N * S;
  double mean, var;
  if (training) {
    double s = 0.0;
    for (size_t i = threadIdx.x; i < count; i += blockDim.x) s += x[channel_index(i, c, C, S)];
    mean = block_reduce(s, SumOp()) / (double)count;
    double q = 0.0;
    for (size_t i = threadIdx.x; i < count; i += blockDim.x) {
      const double d = x[channel_index(i, c, C, S)] - mean;
      q += d * d;
    }
    var = block_reduce(q, SumOp()) / (double)count;
    if (running_mean && threadIdx.x == 0) {
      running_mean[c] = (float)((1.0 - momentum) * running_mean[c] + momentum * mean);
      running_var[c] = (float)((1.0 - momentum) * running_var[c] +
                               momentum * var * count / (double)(count - 1));
    }
  } else {
    mean = running_mean[c];
    var = running_var[c];
  }
  const float m = (float)mean, invstd = (float)(1.0 / sqrt(var + eps));
  const float g = gamma ? gamma[c] : 1.0f, b = beta ? beta[c] : 0.0f;
  for (size_t i = threadIdx.x; i < count; i += blockDim.x) {
    const size_t j = channel_index(i, c, C, S);
    y[j] = (x[j] - m) * invstd * g + b;
  }
  if (threadIdx.x == 0) {
    mean_out[c] = m;
    invstd_out[c] = invstd;
  }
}

// xhat = (x - mean) invstd; dgamma (+)= sum dy xhat, dbeta (+)= sum dy; dx = k (dy - mean(dy)
// - xhat mean(dy xhat)) when training, else k dy, k = invstd gamma.
__global__ void batchnorm_backward_kernel(float* dx, float* dgamma, float* dbeta, const float* dy,
                                          const float* x, const float* gamma, const float* mean,
                                          const float* invstd, int C, size_t N, size_t S,
                                          bool training, bool accumulate) {
  const int c = blockIdx.x;
  const size_t count = N * S;
  const float m = mean[c], is = invstd[c];
  double sdy = 0.0, sdyx = 0.0;
  for (size_t i = threadIdx.x; i < count; i += blockDim.x) {
    const size_t j = channel_index(i, c, C, S);
    sdy += dy[j];
    sdyx += (double)dy[j] * ((x[j] - m) * is);
  }
  sdy = block_reduce(sdy, SumOp());
  sdyx = block_reduce(sdyx, SumOp());
  if (dgamma && threadIdx.x == 0) {
    dgamma[c] = (accumulate ? dgamma[c] : 0.0f) + (float)sdyx;
    dbeta[c] = (accumulate ? dbeta[c] : 0.0f) + (float)sdy;
  }
  if (!dx) return;
  const float k = is * (gamma ? gamma[c] : 1.0f);
  const float mdy = (float)(sdy / count), mdyx = (float)(sdyx / count);
  for (size_t i = threadIdx.x; i < count; i += blockDim.x) {
    const size_t j = channel_index(i, c, C, S);
    dx[j] = training ? k * (dy[j] - mdy - (x[j] - m) * is * mdyx) : k * dy[j];
  }
}

int batchnorm_forward(float* y, float* mean, float* invstd, const float* x, const float* gamma,
                      const float* beta, float* running_mean, float* running_var, int C, size_t N,
                      size_t S, bool training, float momentum, float eps) {
  if (C > 0)
    batchnorm_forward_kernel<<<C, kThreads, 0, stream()>>>(
        y, mean, invstd, x, gamma, beta, running_mean, running_var, C, N, S, training, momentum,
        eps);
  return last_error();
}

int batchnorm_backward(float* dx, float* dgamma, float* dbeta, const float* dy, const float* x,
                       const float* gamma, const float* mean, const float* invstd, int C,
                       size_t N, size_t S, bool training, bool accumulate) {
  if (C > 0)
    batchnorm_backward_kernel<<<C, kThreads, 0, stream()>>>(
        dx, dgamma, dbeta, dy, x, gamma, mean, invstd, C, N, S, training, accumulate);
  return last_error();
}

}  // namespace cuda
}  // namespace nnfast
