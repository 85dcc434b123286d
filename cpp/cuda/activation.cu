// Elementwise activations, forward and backward, over n contiguous floats (any shape flattened):
// one thread per element in a grid-stride loop. Backward kernels take the forward's input x
// (relu, leaky_relu) or output y (sigmoid, tanh), as the CPU kernels do; dx may alias dy.
#include "common.cuh"

namespace nnfast {
namespace cuda {

// y = max(x, 0); dx = dy where x > 0 else 0
__global__ void relu_forward_kernel(float* y, const float* x, size_t n) {
  NNFAST_GRID_LOOP(i, n) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}
__global__ void relu_backward_kernel(float* dx, const float* dy, const float* x, size_t n) {
  NNFAST_GRID_LOOP(i, n) dx[i] = x[i] > 0.0f ? dy[i] : 0.0f;
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

int relu_forward(float* y, const float* x, size_t n) {
  relu_forward_kernel<<<blocks_for(n), kThreads>>>(y, x, n);
  return last_error();
}
int relu_backward(float* dx, const float* dy, const float* x, size_t n) {
  relu_backward_kernel<<<blocks_for(n), kThreads>>>(dx, dy, x, n);
  return last_error();
}
int leaky_relu_forward(float* y, const float* x, size_t n, float slope) {
  leaky_relu_forward_kernel<<<blocks_for(n), kThreads>>>(y, x, n, slope);
  return last_error();
}
int leaky_relu_backward(float* dx, const float* dy, const float* x, size_t n, float slope) {
  leaky_relu_backward_kernel<<<blocks_for(n), kThreads>>>(dx, dy, x, n, slope);
  return last_error();
}
int sigmoid_forward(float* y, const float* x, size_t n) {
  sigmoid_forward_kernel<<<blocks_for(n), kThreads>>>(y, x, n);
  return last_error();
}
int sigmoid_backward(float* dx, const float* dy, const float* y, size_t n) {
  sigmoid_backward_kernel<<<blocks_for(n), kThreads>>>(dx, dy, y, n);
  return last_error();
}
int tanh_forward(float* y, const float* x, size_t n) {
  tanh_forward_kernel<<<blocks_for(n), kThreads>>>(y, x, n);
  return last_error();
}
int tanh_backward(float* dx, const float* dy, const float* y, size_t n) {
  tanh_backward_kernel<<<blocks_for(n), kThreads>>>(dx, dy, y, n);
  return last_error();
}

}  // namespace cuda
}  // namespace nnfast
