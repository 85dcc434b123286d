// Activations: elementwise over n floats, and softmax / log-softmax over the rows of a
// (rows, cols) matrix. Loops are written for auto-vectorisation; OpenMP only from 65,536
// elements (elementwise_threads, common.h: below that, thread start-up costs more than the work).
#include "nnfast/activation.h"

#include "vmath.h"

#include <algorithm>
#include <cmath>

namespace nnfast {
inline namespace NNFAST_ISA {

// y = max(x, 0), NaN kept (relu_value, vmath.h)
void relu_forward(float* y, const float* x, size_t n) {
  parallel_elements(n, [=](size_t i) { y[i] = relu_value(x[i]); });
}
// dx = dy where not x <= 0 (a NaN x passes dy), else 0
void relu_backward(float* dx, const float* dy, const float* x, size_t n) {
  parallel_elements(n, [=](size_t i) { dx[i] = relu_grad(x[i], dy[i]); });
}

// y = x > 0 ? x : slope * x (a NaN x gives slope * NaN = NaN)
void leaky_relu_forward(float* y, const float* x, size_t n, float slope) {
  parallel_elements(n, [=](size_t i) { y[i] = x[i] > 0.0f ? x[i] : slope * x[i]; });
}
// dx = x > 0 ? dy : slope * dy (a NaN x takes slope * dy, as PyTorch)
void leaky_relu_backward(float* dx, const float* dy, const float* x, size_t n, float slope) {
  parallel_elements(n, [=](size_t i) { dx[i] = x[i] > 0.0f ? dy[i] : slope * dy[i]; });
}

// y = 1 / (1 + exp(-x)), through e = exp(-|x|) so it never overflows: y = 1/(1+e) for x >= 0,
// e/(1+e) below. sigmoid_block: elements [i, i + W) of it, or fewer at the end.
static inline void sigmoid_block(float* y, const float* x, size_t i, size_t n) {
  using namespace simd;
  const bool whole = n - i >= (size_t)W;
  const Mask m = whole ? all() : first((int)(n - i));
  const V v = whole ? loadu(x + i) : loadu(m, x + i);
  const V e = exp_v(sub(zero(), abs(v)));
  const V s = div(set1(1.0f), add(set1(1.0f), e));
  const V out = select(lt(v, zero()), s, mul(e, s));
  if (whole) storeu(y + i, out);
  else storeu(y + i, m, out);
}

void sigmoid_forward(float* y, const float* x, size_t n) {
  const size_t blocks = (n + simd::W - 1) / simd::W;
  parallel_parts(elementwise_threads(n), blocks, 1, [=](size_t b0, size_t b1) {
    for (size_t b = b0; b < b1; b++) sigmoid_block(y, x, b * simd::W, n);
  });
}

void activation_span(Activation a, float* y, size_t n) {
  if (a == Activation::relu) {
#pragma omp simd
    for (size_t i = 0; i < n; i++) y[i] = relu_value(y[i]);  // as relu_forward
  } else if (a == Activation::sigmoid) {
    for (size_t i = 0; i < n; i += simd::W) sigmoid_block(y, y, i, n);
  }
}
void activation_backward_span(Activation a, float* dx, const float* y, size_t n) {
  if (a == Activation::relu) {
#pragma omp simd
    for (size_t i = 0; i < n; i++) dx[i] = relu_grad(y[i], dx[i]);  // as relu_backward
  } else if (a == Activation::sigmoid) {
#pragma omp simd
    for (size_t i = 0; i < n; i++) dx[i] = dx[i] * y[i] * (1.0f - y[i]);  // as sigmoid_backward
  }
}

void activation_rows(Activation a, float* C, std::ptrdiff_t ldc, const float* act_out,
                     std::ptrdiff_t ld_act, int rows, int ncols) {
  if (a == Activation::none) return;
  for (int r = 0; r < rows; r++) {
    if (act_out) activation_backward_span(a, C + r * ldc, act_out + r * ld_act, ncols);
    else activation_span(a, C + r * ldc, ncols);
  }
}
// dx = dy * y * (1 - y)
void sigmoid_backward(float* dx, const float* dy, const float* y, size_t n) {
  parallel_elements(n, [=](size_t i) { dx[i] = dy[i] * y[i] * (1.0f - y[i]); });
}

void activation_backward(Activation a, float* dx, const float* dy, const float* y, size_t n) {
  if (a == Activation::relu) relu_backward(dx, dy, y, n);
  else if (a == Activation::sigmoid) sigmoid_backward(dx, dy, y, n);
  else if (dx != dy) std::copy(dy, dy + n, dx);
}

// y = tanh(x)
void tanh_forward(float* y, const float* x, size_t n) {
  parallel_elements(n, [=](size_t i) { y[i] = std::tanh(x[i]); });
}
// dx = dy * (1 - y^2)
void tanh_backward(float* dx, const float* dy, const float* y, size_t n) {
  parallel_elements(n, [=](size_t i) { dx[i] = dy[i] * (1.0f - y[i] * y[i]); });
}

// y = x <= threshold ? value : x (NaN kept)
void threshold_forward(float* y, const float* x, size_t n, float threshold, float value) {
  parallel_elements(n, [=](size_t i) { y[i] = threshold_value(x[i], threshold, value); });
}
// dx = x <= threshold ? 0 : dy (a NaN x passes dy)
void threshold_backward(float* dx, const float* dy, const float* x, size_t n, float threshold) {
  parallel_elements(n, [=](size_t i) { dx[i] = threshold_grad(x[i], dy[i], threshold); });
}

// Softmax of each row: y = exp(x - max) / sum exp(x - max).
void softmax_forward(float* y, const float* x, int rows, int cols) {
  parallel_parts(elementwise_threads((size_t)rows * cols), rows, 1, [=](size_t r0, size_t r1) {
    for (size_t r = r0; r < r1; r++) softmax_row(y + r * cols, x + r * cols, cols);
  });
}
// dx = y * (dy - sum_j dy_j y_j)
void softmax_backward(float* dx, const float* dy, const float* y, int rows, int cols) {
  parallel_parts(elementwise_threads((size_t)rows * cols), rows, 1, [=](size_t r0, size_t r1) {
    for (size_t r = r0; r < r1; r++) {
      const float* yr = y + r * cols;
      const float* gr = dy + r * cols;
      float* dr = dx + r * cols;
      float dot = 0.0f;
      for (int j = 0; j < cols; j++) dot += gr[j] * yr[j];
      for (int j = 0; j < cols; j++) dr[j] = yr[j] * (gr[j] - dot);
    }
  });
}

// Log-softmax of each row: y = x - max - log sum exp(x - max).
void log_softmax_forward(float* y, const float* x, int rows, int cols) {
  parallel_parts(elementwise_threads((size_t)rows * cols), rows, 1, [=](size_t r0, size_t r1) {
    for (size_t r = r0; r < r1; r++) {
      const float* xr = x + r * cols;
      float* yr = y + r * cols;
      const float m = row_max(xr, cols);
      const float lse = m + std::log(exp_shifted(yr, xr, m, cols));  // yr: scratch
      for (int j = 0; j < cols; j++) yr[j] = xr[j] - lse;
    }
  });
}
// dx = dy - exp(y) * sum_j dy_j
void log_softmax_backward(float* dx, const float* dy, const float* y, int rows, int cols) {
  parallel_parts(elementwise_threads((size_t)rows * cols), rows, 1, [=](size_t r0, size_t r1) {
    for (size_t r = r0; r < r1; r++) {
      const float* yr = y + r * cols;
      const float* gr = dy + r * cols;
      float* dr = dx + r * cols;
      float s = 0.0f;
      for (int j = 0; j < cols; j++) s += gr[j];
      for (int j = 0; j < cols; j++) dr[j] = gr[j] - std::exp(yr[j]) * s;
    }
  });
}

}  // namespace NNFAST_ISA
}  // namespace nnfast
