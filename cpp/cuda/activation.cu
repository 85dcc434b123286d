// Activations, forward and backward. Elementwise ones over n contiguous floats (any shape
// flattened): one thread per element in a grid-stride loop; their backward kernels take the
// forward's input x (relu, leaky_relu, threshold) or output y (sigmoid, tanh), as the CPU kernels
// do; dx may alias dy. Softmax and log-softmax over the rows of (N, C): one block per row.
#include "common.cuh"

namespace nnfast {
namespace cuda {

// y = a + b (also a graph's gradients from two branches summed), y = a * b, y = alpha * a
__global__ void add_kernel(float* y, const float* a, const float* b, size_t n) {
  NNFAST_GRID_LOOP(i, n) y[i] = a[i] + b[i];
}
__global__ void mul_kernel(float* y, const float* a, const float* b, size_t n) {
  NNFAST_GRID_LOOP(i, n) y[i] = a[i] * b[i];
}
__global__ void scale_kernel(float* y, const float* a, size_t n, float alpha) {
  NNFAST_GRID_LOOP(i, n) y[i] = alpha * a[i];
}

// y = 0 where x <= 0, else x (NaN kept); dx = 0 where x <= 0, else dy (a NaN x passes dy)
__global__ void relu_forward_kernel(float* y, const float* x, size_t n) {
  NNFAST_GRID_LOOP(i, n) y[i] = x[i] <= 0.0f ? 0.0f : x[i];
}
__global__ void relu_backward_kernel(float* dx, const float* dy, const float* x, size_t n) {
  NNFAST_GRID_LOOP(i, n) dx[i] = x[i] <= 0.0f ? 0.0f : dy[i];
}

// y = value where x <= threshold, else x; dx = 0 where x <= threshold, else dy
__global__ void threshold_forward_kernel(float* y, const float* x, size_t n, float threshold,
                                         float value) {
  NNFAST_GRID_LOOP(i, n) y[i] = x[i] <= threshold ? value : x[i];
}
__global__ void threshold_backward_kernel(float* dx, const float* dy, const float* x, size_t n,
                                          float threshold) {
  NNFAST_GRID_LOOP(i, n) dx[i] = x[i] <= threshold ? 0.0f : dy[i];
}

// Row r of x (N, C): m = max (NaN-propagating), s = sum exp(x - m); softmax y = exp(x - m) / s,
// log-softmax y = x - m - log s.
__global__ void softmax_rows_kernel(float* y, const float* x, int C, bool log_softmax) {
  const float* xr = x + (size_t)blockIdx.x * C;
  float* yr = y + (size_t)blockIdx.x * C;
  float m = -INFINITY;
  for (int j = threadIdx.x; j < C; j += blockDim.x) m = MaxOp()(m, xr[j]);
  m = block_reduce(m, MaxOp());
  float s = 0.0f;
  for (int j = threadIdx.x; j < C; j += blockDim.x) s += expf(xr[j] - m);
  s = block_reduce(s, SumOp());
  const float shift = m + logf(s), inv = 1.0f / s;
  for (int j = threadIdx.x; j < C; j += blockDim.x)
    yr[j] = log_softmax ? xr[j] - shift : expf(xr[j] - m) * inv;
}

// Row r: softmax dx = y (dy - sum dy y); log-softmax dx = dy - exp(y) sum dy
__global__ void softmax_rows_backward_kernel(float* dx, const float* dy, const float* y, int C,
                                             bool log_softmax) {
  const size_t base = (size_t)blockIdx.x * C;
  float dot = 0.0f;
  for (int j = threadIdx.x; j < C; j += blockDim.x)
    dot += log_softmax ? dy[base + j] : dy[base + j] * y[base + j];
  dot = block_reduce(dot, SumOp());
  for (int j = threadIdx.x; j < C; j += blockDim.x) {
    const size_t i = base + j;
    dx[i] = log_softmax ? dy[i] - expf(y[i]) * dot : y[i] * (dy[i] - dot);
  }
}

// y = x > 0 ? x : slope x; dx = x > 0 ? dy : slope dy
__global__ void leaky_relu_forward_kernel(float* y, const float* x, size_t n, float slope) {
  NNFAST_GRID_LOOP(i, n) y[i] = x[i] > 0.0f ? x[i] : slope * x[i];
}
__global__ void leaky_relu_backward_kernel(float* dx, const float* dy, const float* x, size_t n,
                                           float slope) {
  NNFAST_GRID_LOOP(i, n) dx[i] = x[i] > 0.0f ? dy[i] : slope * dy[i];
}

// y = sigmoid(x) (the stable form of common.cuh); dx = dy y (1 - y)
__global__ void sigmoid_forward_kernel(float* y, const float* x, size_t n) {
  NNFAST_GRID_LOOP(i, n) y[i] = sigmoid(x[i]);
}
__global__ void sigmoid_backward_kernel(float* dx, const float* dy, const float* y, size_t n) {
  NNFAST_GRID_LOOP(i, n) dx[i] = dy[i] * y[i] * (1.0f - y[i]);
}

// y = tanh(x); dx = dy (1 - y^2)
__global__ void tanh_forward_kernel(float* y, const float* x, size_t n) {
  NNFAST_GRID_LOOP(i, n) y[i] = tanhf(x[i]);
}
__global__ void tanh_backward_kernel(float* dx, const float* dy, const float* y, size_t n) {
  NNFAST_GRID_LOOP(i, n) dx[i] = dy[i] * (1.0f - y[i] * y[i]);
}

int add(float* y, const float* a, const float* b, size_t n) {
  return launch_elementwise(add_kernel, n, y, a, b, n);
}
int mul(float* y, const float* a, const float* b, size_t n) {
  return launch_elementwise(mul_kernel, n, y, a, b, n);
}
int scale(float* y, const float* a, size_t n, float alpha) {
  return launch_elementwise(scale_kernel, n, y, a, n, alpha);
}
int relu_forward(float* y, const float* x, size_t n) {
  return launch_elementwise(relu_forward_kernel, n, y, x, n);
}
int relu_backward(float* dx, const float* dy, const float* x, size_t n) {
  return launch_elementwise(relu_backward_kernel, n, dx, dy, x, n);
}
int leaky_relu_forward(float* y, const float* x, size_t n, float slope) {
  return launch_elementwise(leaky_relu_forward_kernel, n, y, x, n, slope);
}
int leaky_relu_backward(float* dx, const float* dy, const float* x, size_t n, float slope) {
  return launch_elementwise(leaky_relu_backward_kernel, n, dx, dy, x, n, slope);
}
int sigmoid_forward(float* y, const float* x, size_t n) {
  return launch_elementwise(sigmoid_forward_kernel, n, y, x, n);
}
int sigmoid_backward(float* dx, const float* dy, const float* y, size_t n) {
  return launch_elementwise(sigmoid_backward_kernel, n, dx, dy, y, n);
}
int tanh_forward(float* y, const float* x, size_t n) {
  return launch_elementwise(tanh_forward_kernel, n, y, x, n);
}
int tanh_backward(float* dx, const float* dy, const float* y, size_t n) {
  return launch_elementwise(tanh_backward_kernel, n, dx, dy, y, n);
}
int threshold_forward(float* y, const float* x, size_t n, float threshold, float value) {
  return launch_elementwise(threshold_forward_kernel, n, y, x, n, threshold, value);
}
int threshold_backward(float* dx, const float* dy, const float* x, size_t n, float threshold) {
  return launch_elementwise(threshold_backward_kernel, n, dx, dy, x, n, threshold);
}
int softmax_forward(float* y, const float* x, int N, int C, bool log_softmax) {
  if (N > 0) softmax_rows_kernel<<<N, kThreads, 0, stream()>>>(y, x, C, log_softmax);
  return last_error();
}
int softmax_backward(float* dx, const float* dy, const float* y, int N, int C, bool log_softmax) {
  if (N > 0) softmax_rows_backward_kernel<<<N, kThreads, 0, stream()>>>(dx, dy, y, C, log_softmax);
  return last_error();
}

}  // namespace cuda
}  // namespace nnfast
