// Activations: elementwise over n floats, and softmax / log-softmax over the rows of a
// (rows, cols) matrix. Loops are written for auto-vectorisation; OpenMP only above
// kParallelMin elements (below that, thread start-up costs more than the work).
#include "nnfast/activation.h"

#include <algorithm>
#include <cmath>

namespace nnfast {

static constexpr size_t kParallelMin = size_t(1) << 16;
static inline int threads_for(size_t n) { return n >= kParallelMin ? get_num_threads() : 1; }

// y = max(x, 0)
void relu_forward(float* y, const float* x, size_t n) {
#pragma omp parallel for simd num_threads(threads_for(n)) schedule(static)
  for (size_t i = 0; i < n; i++) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}
// dx = dy * (x > 0)
void relu_backward(float* dx, const float* dy, const float* x, size_t n) {
#pragma omp parallel for simd num_threads(threads_for(n)) schedule(static)
  for (size_t i = 0; i < n; i++) dx[i] = x[i] > 0.0f ? dy[i] : 0.0f;
}

// y = x > 0 ? x : slope * x
void leaky_relu_forward(float* y, const float* x, size_t n, float slope) {
#pragma omp parallel for simd num_threads(threads_for(n)) schedule(static)
  for (size_t i = 0; i < n; i++) y[i] = x[i] > 0.0f ? x[i] : slope * x[i];
}
// dx = x > 0 ? dy : slope * dy
void leaky_relu_backward(float* dx, const float* dy, const float* x, size_t n, float slope) {
#pragma omp parallel for simd num_threads(threads_for(n)) schedule(static)
  for (size_t i = 0; i < n; i++) dx[i] = x[i] > 0.0f ? dy[i] : slope * dy[i];
}

// y = 1 / (1 + exp(-x)), through exp(-|x|) so it never overflows.
void sigmoid_forward(float* y, const float* x, size_t n) {
#pragma omp parallel for simd num_threads(threads_for(n)) schedule(static)
  for (size_t i = 0; i < n; i++) {
    float e = std::exp(-std::fabs(x[i]));
    float s = 1.0f / (1.0f + e);
    y[i] = x[i] >= 0.0f ? s : e * s;
  }
}
// dx = dy * y * (1 - y)
void sigmoid_backward(float* dx, const float* dy, const float* y, size_t n) {
#pragma omp parallel for simd num_threads(threads_for(n)) schedule(static)
  for (size_t i = 0; i < n; i++) dx[i] = dy[i] * y[i] * (1.0f - y[i]);
}

// y = tanh(x)
void tanh_forward(float* y, const float* x, size_t n) {
#pragma omp parallel for simd num_threads(threads_for(n)) schedule(static)
  for (size_t i = 0; i < n; i++) y[i] = std::tanh(x[i]);
}
// dx = dy * (1 - y^2)
void tanh_backward(float* dx, const float* dy, const float* y, size_t n) {
#pragma omp parallel for simd num_threads(threads_for(n)) schedule(static)
  for (size_t i = 0; i < n; i++) dx[i] = dy[i] * (1.0f - y[i] * y[i]);
}

// y = x > threshold ? x : value
void threshold_forward(float* y, const float* x, size_t n, float threshold, float value) {
#pragma omp parallel for simd num_threads(threads_for(n)) schedule(static)
  for (size_t i = 0; i < n; i++) y[i] = x[i] > threshold ? x[i] : value;
}
// dx = x > threshold ? dy : 0
void threshold_backward(float* dx, const float* dy, const float* x, size_t n, float threshold) {
#pragma omp parallel for simd num_threads(threads_for(n)) schedule(static)
  for (size_t i = 0; i < n; i++) dx[i] = x[i] > threshold ? dy[i] : 0.0f;
}

// Row maximum (NaN-propagating, so a NaN row gives NaN outputs, never a silent finite value).
static inline float row_max(const float* x, int cols) {
  float m = x[0];
  for (int j = 1; j < cols; j++) m = (x[j] > m || std::isnan(x[j])) ? x[j] : m;
  return m;
}

// Softmax of each row: y = exp(x - max) / sum exp(x - max).
void softmax_forward(float* y, const float* x, int rows, int cols) {
#pragma omp parallel for num_threads(threads_for((size_t)rows * cols)) schedule(static)
  for (int r = 0; r < rows; r++) {
    const float* xr = x + (size_t)r * cols;
    float* yr = y + (size_t)r * cols;
    const float m = row_max(xr, cols);
    float s = 0.0f;
    for (int j = 0; j < cols; j++) s += (yr[j] = std::exp(xr[j] - m));
    const float inv = 1.0f / s;
    for (int j = 0; j < cols; j++) yr[j] *= inv;
  }
}
// dx = y * (dy - sum_j dy_j y_j)
void softmax_backward(float* dx, const float* dy, const float* y, int rows, int cols) {
#pragma omp parallel for num_threads(threads_for((size_t)rows * cols)) schedule(static)
  for (int r = 0; r < rows; r++) {
    const float* yr = y + (size_t)r * cols;
    const float* gr = dy + (size_t)r * cols;
    float* dr = dx + (size_t)r * cols;
    float dot = 0.0f;
    for (int j = 0; j < cols; j++) dot += gr[j] * yr[j];
    for (int j = 0; j < cols; j++) dr[j] = yr[j] * (gr[j] - dot);
  }
}

// Log-softmax of each row: y = x - max - log sum exp(x - max).
void log_softmax_forward(float* y, const float* x, int rows, int cols) {
#pragma omp parallel for num_threads(threads_for((size_t)rows * cols)) schedule(static)
  for (int r = 0; r < rows; r++) {
    const float* xr = x + (size_t)r * cols;
    float* yr = y + (size_t)r * cols;
    const float m = row_max(xr, cols);
    float s = 0.0f;
    for (int j = 0; j < cols; j++) s += std::exp(xr[j] - m);
    const float lse = m + std::log(s);
    for (int j = 0; j < cols; j++) yr[j] = xr[j] - lse;
  }
}
// dx = dy - exp(y) * sum_j dy_j
void log_softmax_backward(float* dx, const float* dy, const float* y, int rows, int cols) {
#pragma omp parallel for num_threads(threads_for((size_t)rows * cols)) schedule(static)
  for (int r = 0; r < rows; r++) {
    const float* yr = y + (size_t)r * cols;
    const float* gr = dy + (size_t)r * cols;
    float* dr = dx + (size_t)r * cols;
    float s = 0.0f;
    for (int j = 0; j < cols; j++) s += gr[j];
    for (int j = 0; j < cols; j++) dr[j] = gr[j] - std::exp(yr[j]) * s;
  }
}

}  // namespace nnfast
