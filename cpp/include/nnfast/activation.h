// Elementwise activations over n floats, and softmax / log-softmax over rows.
// Backward functions overwrite dx; dx may alias dy. NaN and inf propagate as in PyTorch: a NaN
// input gives a NaN output (ReLU and Threshold included) and, backward, receives dy where PyTorch
// passes it (where NOT x <= threshold for ReLU / Threshold; slope * dy for LeakyReLU).
#pragma once
#include "nnfast/common.h"

namespace nnfast {

// The activations a kernel can apply to a block of its output while it is in cache.
enum class Activation { none, relu, sigmoid };

inline namespace NNFAST_ISA {

// y = max(x, 0) (NaN kept, -0 gives +0); dx = dy where not x <= 0 else 0.
void relu_forward(float* y, const float* x, size_t n);
void relu_backward(float* dx, const float* dy, const float* x, size_t n);

// y = x if x > 0 else slope * x; dx = dy if x > 0 else slope * dy.
void leaky_relu_forward(float* y, const float* x, size_t n, float slope);
void leaky_relu_backward(float* dx, const float* dy, const float* x, size_t n, float slope);

// y = 1 / (1 + exp(-x)) (stable for any x); dx = dy * y * (1 - y), from the output y.
void sigmoid_forward(float* y, const float* x, size_t n);

// An activation applied in place on the calling thread, number for number as relu_forward /
// sigmoid_forward: for kernels that finish a block of output while it is in cache (Linear).
void activation_span(Activation a, float* y, size_t n);
// dx = dx * a'(x) in place on the calling thread, from the activation's output y = a(x), number
// for number as activation_backward (for kernels that finish a block of a gradient in cache).
void activation_backward_span(Activation a, float* dx, const float* y, size_t n);
// activation_span (act_out null) or activation_backward_span (from the output act_out, rows
// ld_act apart) on `rows` rows of ncols floats of C, rows ldc apart: a GEMM's finished tile,
// while it is in L1.
void activation_rows(Activation a, float* C, std::ptrdiff_t ldc, const float* act_out,
                     std::ptrdiff_t ld_act, int rows, int ncols);
void sigmoid_backward(float* dx, const float* dy, const float* y, size_t n);
// dx = dy * a'(x) from the activation's output y = a(x): relu_backward (y <= 0 exactly where
// x <= 0, NaN where x is NaN) or sigmoid_backward; a copy for Activation::none. dx may alias dy.
void activation_backward(Activation a, float* dx, const float* dy, const float* y, size_t n);

// y = tanh(x); dx = dy * (1 - y^2), from the output y.
void tanh_forward(float* y, const float* x, size_t n);
void tanh_backward(float* dx, const float* dy, const float* y, size_t n);

// PyTorch's Threshold: y = value if x <= threshold else x; dx = 0 where x <= threshold else dy
// (a NaN x stays NaN and passes dy).
void threshold_forward(float* y, const float* x, size_t n, float threshold, float value);
void threshold_backward(float* dx, const float* dy, const float* x, size_t n, float threshold);

// Softmax over the last axis of a (rows, cols) matrix, max-subtracted (stable for any logits).
// dx = y * (dy - sum_j dy_j y_j), from the output y.
void softmax_forward(float* y, const float* x, int rows, int cols);
void softmax_backward(float* dx, const float* dy, const float* y, int rows, int cols);

// y = x - logsumexp(x) over the last axis; dx = dy - exp(y) * sum_j dy_j, from the output y.
void log_softmax_forward(float* y, const float* x, int rows, int cols);
void log_softmax_backward(float* dx, const float* dy, const float* y, int rows, int cols);

}  // namespace NNFAST_ISA
}  // namespace nnfast
