// Losses with mean reduction (the CPU's loss.h): softmax-cross-entropy with integer labels, and
// MSE. The forward kernels leave the mean in one device double; its sum has a fixed order (per
// block partial sums in a grid of fixed size for the shape, then one block adding them), so the
// result does not depend on timing.
#include "common.cuh"

namespace nnfast {
namespace cuda {

// One block per row i of logits (N,C): m = max_j z_ij (NaN-propagating), s = sum_j exp(z_ij - m),
// probs_i = exp(z_i - m) / s, row_loss[i] = m + log s - z_i[y_i] (in double, as the CPU).
__global__ void cross_entropy_rows_kernel(double* row_loss, float* probs, const float* logits,
                                          const int64_t* labels, int C) {
  const size_t row = blockIdx.x;
  const float* z = logits + row * C;
  float* p = probs + row * C;
  float m = -INFINITY;
  for (int j = threadIdx.x; j < C; j += blockDim.x) m = MaxOp()(m, z[j]);
  m = block_reduce(m, MaxOp());
  float s = 0.0f;
  for (int j = threadIdx.x; j < C; j += blockDim.x) {
    const float e = expf(z[j] - m);
    p[j] = e;
    s += e;
  }
  s = block_reduce(s, SumOp());
  const float inv = 1.0f / s;
  for (int j = threadIdx.x; j < C; j += blockDim.x) p[j] *= inv;
  if (threadIdx.x == 0) row_loss[row] = (double)m + log((double)s) - (double)z[labels[row]];
}

// *out = (sum of parts[0..count)) / divisor, by one block: each thread adds its strided share in
// order, then the block's tree.
__global__ void mean_of_parts_kernel(double* out, const double* parts, size_t count,
                                     double divisor) {
  double s = 0.0;
  for (size_t i = threadIdx.x; i < count; i += blockDim.x) s += parts[i];
  s = block_reduce(s, SumOp());
  if (threadIdx.x == 0) *out = s / divisor;
}

size_t cross_entropy_workspace_size(int N) { return N > 0 ? (size_t)N : 1; }

int cross_entropy_forward(double* loss, float* probs, const float* logits, const int64_t* labels,
                          int N, int C, double* workspace) {
  if (N > 0) cross_entropy_rows_kernel<<<N, kThreads>>>(workspace, probs, logits, labels, C);
  mean_of_parts_kernel<<<1, kThreads>>>(loss, workspace, (size_t)N, (double)N);
  return last_error();
}

// dlogits = k probs - k onehot(labels), k = scale / N
__global__ void cross_entropy_backward_kernel(float* dlogits, const float* probs,
                                              const int64_t* labels, int N, int C, float k) {
  NNFAST_GRID_LOOP(i, (size_t)N * C) {
    const size_t row = i / C;
    const int j = (int)(i % C);
    dlogits[i] = k * probs[i] - (j == labels[row] ? k : 0.0f);
  }
}

int cross_entropy_backward(float* dlogits, const float* probs, const int64_t* labels, int N, int C,
                           float scale) {
  const size_t n = (size_t)N * C;
  cross_entropy_backward_kernel<<<blocks_for(n), kThreads>>>(dlogits, probs, labels, N, C,
                                                             scale / N);
  return last_error();
}

// Blocks of the MSE partial sums: a function of n only, so the order of the sum is too.
static unsigned mse_blocks(size_t n) {
  const size_t b = (n + kThreads - 1) / kThreads;
  return (unsigned)(b == 0 ? 1 : (b < 1024 ? b : 1024));
}

// parts[block] = sum over the block's grid-stride share of (p - t)^2, in double
__global__ void mse_parts_kernel(double* parts, const float* pred, const float* target, size_t n) {
  double s = 0.0;
  NNFAST_GRID_LOOP(i, n) {
    const double d = (double)pred[i] - target[i];
    s += d * d;
  }
  s = block_reduce(s, SumOp());
  if (threadIdx.x == 0) parts[blockIdx.x] = s;
}

size_t mse_workspace_size(size_t n) { return mse_blocks(n); }

int mse_forward(double* loss, const float* pred, const float* target, size_t n, double* workspace) {
  const unsigned blocks = mse_blocks(n);
  mse_parts_kernel<<<blocks, kThreads>>>(workspace, pred, target, n);
  mean_of_parts_kernel<<<1, kThreads>>>(loss, workspace, blocks, (double)n);
  return last_error();
}

// dp = k (p - t), k = 2 scale / n
__global__ void mse_backward_kernel(float* dpred, const float* pred, const float* target,
                                    size_t n, float k) {
  NNFAST_GRID_LOOP(i, n) dpred[i] = k * (pred[i] - target[i]);
}

int mse_backward(float* dpred, const float* pred, const float* target, size_t n, float scale) {
  mse_backward_kernel<<<blocks_for(n), kThreads>>>(dpred, pred, target, n, 2.0f * scale / n);
  return last_error();
}

}  // namespace cuda
}  // namespace nnfast
