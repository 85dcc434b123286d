// Helpers shared by the CUDA kernel files: launch geometry and error codes.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>

#include "cuda_kernels.h"

namespace nnfast {
namespace cuda {

// nnfast's stream: every launch, copy and memset of the extension goes on it (created once,
// non-blocking: it does not wait for the legacy default stream, nor that for it).
cudaStream_t stream();

// Threads per block of the elementwise kernels.
constexpr int kThreads = 256;

// Blocks for a grid-stride loop over n elements: enough to fill the device, at most 65,535 * 16
// (each thread then loops), at least 1.
inline unsigned blocks_for(size_t n, int threads = kThreads) {
  const size_t b = (n + threads - 1) / threads;
  const size_t cap = size_t(65535) * 16;
  return (unsigned)(b == 0 ? 1 : (b < cap ? b : cap));
}

// The error of the launches so far (cleared), as the launchers return it.
inline int last_error() { return (int)cudaGetLastError(); }

// kernel<<<blocks_for(n), kThreads>>>(args...), for a grid-stride loop over n elements; the
// launch's error code.
template <typename... Params, typename... Args>
int launch_elementwise(void (*kernel)(Params...), size_t n, Args... args) {
  kernel<<<blocks_for(n), kThreads, 0, stream()>>>(args...);
  return last_error();
}

// Returns from the enclosing launcher with the error code of `call` when it fails.
#define NNFAST_CUDA_TRY(call)          \
  do {                                 \
    const int nnfast_err_ = (call);    \
    if (nnfast_err_ != 0) return nnfast_err_; \
  } while (0)

// for (size_t i = first index; i < n; i += grid size): the elementwise kernels' loop.
#define NNFAST_GRID_LOOP(i, n)                                                         \
  for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < (size_t)(n);       \
       i += (size_t)gridDim.x * blockDim.x)

// 1 / (1 + exp(-v)) through e = exp(-|v|), which never overflows: 1/(1+e) for v >= 0, e/(1+e)
// below (the CPU's form).
__device__ inline float sigmoid(float v) {
  const float e = expf(-fabsf(v));
  const float s = 1.0f / (1.0f + e);
  return v < 0.0f ? e * s : s;
}

// The activation of a fused kernel applied to one value, as relu_forward / sigmoid_forward.
__device__ inline float apply_activation(Activation a, float v) {
  if (a == Activation::relu) return v <= 0.0f ? 0.0f : v;   // NaN kept
  if (a == Activation::sigmoid) return sigmoid(v);
  return v;
}
// The derivative of an activation from its output y, as activation_backward (a NaN relu output
// passes the gradient, as the CPU's relu_grad).
__device__ inline float activation_derivative(Activation a, float y) {
  if (a == Activation::relu) return y <= 0.0f ? 0.0f : 1.0f;
  if (a == Activation::sigmoid) return y * (1.0f - y);
  return 1.0f;
}

// Block-wide reductions of one value per thread, for blocks of kThreads threads: a tree over the
// warps' shuffles and then over the warps, the same order every time. Every thread gets the result.
template <typename T, typename Op>
__device__ inline T block_reduce(T v, Op op) {
  __shared__ T partial[kThreads / 32];
  for (int off = 16; off > 0; off /= 2) v = op(v, __shfl_xor_sync(0xffffffffu, v, off));
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  __syncthreads();  // partial may still be read by a previous call
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  v = partial[0];
  for (int w = 1; w < kThreads / 32; w++) v = op(v, partial[w]);
  return v;
}
struct SumOp {
  template <typename T>
  __device__ T operator()(T a, T b) const { return a + b; }
};
// Maximum that propagates NaN (a NaN row gives NaN outputs, as the CPU's row maximum).
struct MaxOp {
  __device__ float operator()(float a, float b) const { return (a != a || a > b) ? a : b; }
};

}  // namespace cuda
}  // namespace nnfast
