// Losses with mean reduction (the CPU's loss.h): softmax-cross-entropy with integer labels or
// probability targets, negative log-likelihood, and the pointwise losses (MSE, L1, BCE, BCE with
// logits). The forward kernels leave the mean in one device double; its sum has a fixed order (per
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
  if (N > 0) cross_entropy_rows_kernel<<<N, kThreads, 0, stream()>>>(
      workspace, probs, logits, labels, C);
  mean_of_parts_kernel<<<1, kThreads, 0, stream()>>>(loss, workspace, (size_t)N, (double)N);
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
  return launch_elementwise(cross_entropy_backward_kernel, n, dlogits, probs, labels, N, C,
                            scale / N);
}

// Blocks of the pointwise losses' partial sums: a function of n only, so the order of the sum
// is too.
static unsigned pointwise_blocks(size_t n) {
  const size_t b = (n + kThreads - 1) / kThreads;
  return (unsigned)(b == 0 ? 1 : (b < 1024 ? b : 1024));
}

// max(v, floor) that keeps a NaN v (as NumPy's maximum), in either precision
template <typename T>
__device__ inline T floor_at(T v, T floor) { return v < floor ? floor : v; }

// The loss term of one element (pred p, target t), in double.
__device__ inline double pointwise_term(PointwiseLoss kind, float pf, float tf) {
  const double p = pf, t = tf, d = p - t;
  switch (kind) {
    case PointwiseLoss::mse: return d * d;
    case PointwiseLoss::l1: return fabs(d);
    case PointwiseLoss::bce:   // logs clamped at -100, as PyTorch
      return -(t * floor_at(log(p), -100.0) + (1.0 - t) * floor_at(log1p(-p), -100.0));
    case PointwiseLoss::bce_with_logits:   // stable for any z = p
      return (p > 0.0 ? p : 0.0) - p * t + log1p(exp(-fabs(p)));
  }
  return 0.0;
}

// d loss / d p of one element, k = scale / n.
__device__ inline float pointwise_grad(PointwiseLoss kind, float p, float t, float k) {
  const float d = p - t;
  switch (kind) {
    case PointwiseLoss::mse: return 2.0f * k * d;
    case PointwiseLoss::l1: return k * ((d > 0.0f ? 1.0f : 0.0f) - (d < 0.0f ? 1.0f : 0.0f));
    case PointwiseLoss::bce: return k * d / floor_at(p * (1.0f - p), 1e-12f);
    case PointwiseLoss::bce_with_logits: return k * (sigmoid(p) - t);
  }
  return 0.0f;
}

// parts[block] = sum over the block's grid-stride share of the terms, in double
__global__ void pointwise_parts_kernel(double* parts, PointwiseLoss kind, const float* pred,
                                       const float* target, size_t n) {
  double s = 0.0;
  NNFAST_GRID_LOOP(i, n) s += pointwise_term(kind, pred[i], target[i]);
  s = block_reduce(s, SumOp());
  if (threadIdx.x == 0) parts[blockIdx.x] = s;
}

__global__ void pointwise_backward_kernel(float* dpred, PointwiseLoss kind, const float* pred,
                                          const float* target, size_t n, float k) {
  NNFAST_GRID_LOOP(i, n) dpred[i] = pointwise_grad(kind, pred[i], target[i], k);
}

size_t pointwise_loss_workspace_size(size_t n) { return pointwise_blocks(n); }

int pointwise_loss_forward(PointwiseLoss kind, double* loss, const float* pred,
                           const float* target, size_t n, double* workspace) {
  const unsigned blocks = pointwise_blocks(n);
  pointwise_parts_kernel<<<blocks, kThreads, 0, stream()>>>(workspace, kind, pred, target, n);
  mean_of_parts_kernel<<<1, kThreads, 0, stream()>>>(loss, workspace, blocks, (double)n);
  return last_error();
}

int pointwise_loss_backward(PointwiseLoss kind, float* dpred, const float* pred,
                            const float* target, size_t n, float scale) {
  return launch_elementwise(pointwise_backward_kernel, n, dpred, kind, pred, target, n,
                            scale / (float)n);
}

// parts[i] = -logp[i, labels[i]]
__global__ void nll_rows_kernel(double* parts, const float* logp, const int64_t* labels, int N,
                                int C) {
  NNFAST_GRID_LOOP(i, (size_t)N) parts[i] = -(double)logp[i * C + labels[i]];
}

int nll_forward(double* loss, const float* logp, const int64_t* labels, int N, int C,
                double* workspace) {
  if (N > 0) nll_rows_kernel<<<blocks_for((size_t)N), kThreads, 0, stream()>>>(
      workspace, logp, labels, N, C);
  mean_of_parts_kernel<<<1, kThreads, 0, stream()>>>(loss, workspace, (size_t)N, (double)N);
  return last_error();
}

// dlogp = -k onehot(labels), k = scale / N
__global__ void nll_backward_kernel(float* dlogp, const int64_t* labels, int N, int C, float k) {
  NNFAST_GRID_LOOP(i, (size_t)N * C) dlogp[i] = (int)(i % C) == labels[i / C] ? -k : 0.0f;
}

int nll_backward(float* dlogp, const int64_t* labels, int N, int C, float scale) {
  const size_t n = (size_t)N * C;
  return launch_elementwise(nll_backward_kernel, n, dlogp, labels, N, C, scale / N);
}

// One block per row i of logits (N, C) with probability targets t: probs_i = softmax(z_i),
// row_loss[i] = -sum_j t_ij (z_ij - m - log s), every term summed (0 * inf = NaN, as PyTorch).
__global__ void cross_entropy_soft_rows_kernel(double* row_loss, float* probs, const float* logits,
                                               const float* targets, int C) {
  const size_t base = (size_t)blockIdx.x * C;
  float m = -INFINITY;
  for (int j = threadIdx.x; j < C; j += blockDim.x) m = MaxOp()(m, logits[base + j]);
  m = block_reduce(m, MaxOp());
  float s = 0.0f;
  for (int j = threadIdx.x; j < C; j += blockDim.x) {
    const float e = expf(logits[base + j] - m);
    probs[base + j] = e;
    s += e;
  }
  s = block_reduce(s, SumOp());
  const float inv = 1.0f / s;
  const double shift = (double)m + log((double)s);
  double row = 0.0;
  for (int j = threadIdx.x; j < C; j += blockDim.x) {
    probs[base + j] *= inv;
    row -= (double)targets[base + j] * ((double)logits[base + j] - shift);
  }
  row = block_reduce(row, SumOp());
  if (threadIdx.x == 0) row_loss[blockIdx.x] = row;
}

int cross_entropy_soft_forward(double* loss, float* probs, const float* logits,
                               const float* targets, int N, int C, double* workspace) {
  if (N > 0) cross_entropy_soft_rows_kernel<<<N, kThreads, 0, stream()>>>(
      workspace, probs, logits, targets, C);
  mean_of_parts_kernel<<<1, kThreads, 0, stream()>>>(loss, workspace, (size_t)N, (double)N);
  return last_error();
}

// Row i: dlogits = k (probs * sum_j t_ij - t), k = scale / N
__global__ void cross_entropy_soft_backward_kernel(float* dlogits, const float* probs,
                                                   const float* targets, int C, float k) {
  const size_t base = (size_t)blockIdx.x * C;
  float total = 0.0f;
  for (int j = threadIdx.x; j < C; j += blockDim.x) total += targets[base + j];
  total = block_reduce(total, SumOp());
  for (int j = threadIdx.x; j < C; j += blockDim.x)
    dlogits[base + j] = k * (probs[base + j] * total - targets[base + j]);
}

int cross_entropy_soft_backward(float* dlogits, const float* probs, const float* targets, int N,
                                int C, float scale) {
  if (N > 0)
    cross_entropy_soft_backward_kernel<<<N, kThreads, 0, stream()>>>(
        dlogits, probs, targets, C, scale / N);
  return last_error();
}

}  // namespace cuda
}  // namespace nnfast
