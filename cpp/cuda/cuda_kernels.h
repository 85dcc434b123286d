// nnfast's CUDA kernels: the host launchers of cpp/cuda/*.cu, one family per file, declared in
// plain C++ (no CUDA types) so that the bindings compile with the host compiler.
//
// Conventions, as the CPU kernels' (cpp/include/nnfast/common.h) wherever they apply:
// - Every pointer is device memory (float32 data, int64 labels and row indices, int32 argmax,
//   uint8 dropout masks); row-major; images NCHW; the same argument order as the CPU function of
//   the same name (kernels.h), the shape structs (Conv2dShape, Pool2dShape) and Activation shared.
// - Backward launchers OVERWRITE dx and ACCUMULATE into parameter gradients (dw, db) unless
//   `accumulate` is false; a null dx / dw / db skips it.
// - No allocation: scratch space is a caller-owned device workspace of *_workspace_size() elements.
// - Launchers run on nnfast's stream (common.cuh's stream(), non-blocking), asynchronously, and
//   never throw: each returns 0 or the cudaError_t value of the first failure (a bad launch, no
//   device), as an int.
// - Results do not depend on timing: no atomics; every sum has a fixed order.
#pragma once
#include <cstddef>
#include <cstdint>

#include "nnfast/activation.h"
#include "nnfast/conv.h"
#include "nnfast/optim.h"
#include "nnfast/pool.h"

namespace nnfast {
namespace cuda {

// ------------------------------------------------------------------------------ device (device.cu)
// Number of CUDA devices; 0 when cudaGetDeviceCount fails (no driver, no device).
int device_count();
// The message of an error code the launchers returned.
const char* error_string(int code);
// cudaMalloc / cudaFree / cudaMemcpyAsync on nnfast's stream (kind: 0 host->device, 1
// device->host, which waits for the copy, 2 device->device) / cudaMemsetAsync on the stream /
// cudaStreamSynchronize of the stream, as error codes.
int device_malloc(void** ptr, size_t bytes);
int device_free(void* ptr);
int memcpy_bytes(void* dst, const void* src, size_t bytes, int kind);
int memset_bytes(void* ptr, int value, size_t bytes);
int synchronize();
// cudaStreamSynchronize of another library's stream, by its __cuda_array_interface__ number (1
// the legacy default stream, 2 the per-thread one, else a cudaStream_t).
int stream_synchronize(int64_t handle);
// nnfast's stream (common.cuh's stream()) as that number.
int64_t stream_handle();
// CUDA graphs of nnfast's stream: capture_begin starts capturing it (relaxed mode: allocating
// meanwhile is allowed); capture_end stops and instantiates, *exec the executable graph (null
// on failure; the capture is over either way); launch replays it on the stream; destroy waits
// for the stream, then frees it.
int graph_capture_begin();
int graph_capture_end(void** exec);
int graph_launch(void* exec);
int graph_destroy(void* exec);
// The device that holds the memory at ptr (cudaPointerGetAttributes), as an error code.
int pointer_device(const void* ptr, int* device);
// The calling thread's current device (cudaGetDevice), as an error code.
int current_device(int* device);

// ---------------------------------------------------------------------------------- dense (gemm.cu)
// The finish applied to each element of C in the GEMM's last step (the CPU's GemmEpilogue, with a
// per-row bias added for conv2d):
//   act_output null: C = act(value + col_bias[j] + row_bias[i])
//   act_output set:  C = value * act'(x) from the activation's output act_output (M x N, rows
//                    ld_act_output apart), as activation_backward.
struct Epilogue {
  const float* col_bias = nullptr;
  const float* row_bias = nullptr;
  Activation act = Activation::none;
  const float* act_output = nullptr;
  std::ptrdiff_t ld_act_output = 0;
};

// C = alpha * op(A) op(B) + beta * C, then the epilogue; op and leading dimensions as the CPU
// sgemm (op(A) M x K: A M x K, or K x M when trans_a; op(B) K x N: B K x N, or N x K when trans_b).
// beta == 0: C is write-only.
int sgemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A, int lda,
          const float* B, int ldb, float beta, float* C, int ldc, const Epilogue& epilogue = {});

// c (M,N) = op(a) op(b), dense operands; backward: da = dc op(b)^T, db = op(a)^T dc, each in its
// operand's own layout, overwritten; either may be null.
int matmul_forward(float* c, const float* a, const float* b, int M, int N, int K, bool trans_a,
                   bool trans_b);
int matmul_backward(float* da, float* db, const float* dc, const float* a, const float* b, int M,
                    int N, int K, bool trans_a, bool trans_b);

// Linear with the CPU layout: y (B,OUT) = act(x (B,IN) @ wt[:, :OUT] + bias), wt (IN, ldw).
// backward: dx (B,IN) = dy wt^T (times dx_act' from x, the activation's output, when dx_act is
// set); dwt (IN,OUT; rows ldw apart, padding never written) += x^T dy; dbias += column sums of dy.
int linear_forward(float* y, const float* x, const float* wt, int ldw, const float* bias, int B,
                   int IN, int OUT, Activation act);
int linear_backward(float* dx, float* dwt, float* dbias, const float* dy, const float* x,
                    const float* wt, int ldw, int B, int IN, int OUT, bool accumulate,
                    Activation dx_act);

// db (cols) += (or = when !accumulate) the column sums of dy (rows, cols); rows summed in order.
int column_sums(float* db, const float* dy, int rows, int cols, bool accumulate);

// ------------------------------------------------------------------- activations (activation.cu)
// y = a + b, y = a * b, y = alpha * a over n floats
int add(float* y, const float* a, const float* b, size_t n);
int mul(float* y, const float* a, const float* b, size_t n);
int scale(float* y, const float* a, size_t n, float alpha);
int relu_forward(float* y, const float* x, size_t n);
int relu_backward(float* dx, const float* dy, const float* x, size_t n);
int leaky_relu_forward(float* y, const float* x, size_t n, float slope);
int leaky_relu_backward(float* dx, const float* dy, const float* x, size_t n, float slope);
int sigmoid_forward(float* y, const float* x, size_t n);
int sigmoid_backward(float* dx, const float* dy, const float* y, size_t n);
int tanh_forward(float* y, const float* x, size_t n);
int tanh_backward(float* dx, const float* dy, const float* y, size_t n);
int threshold_forward(float* y, const float* x, size_t n, float threshold, float value);
int threshold_backward(float* dx, const float* dy, const float* x, size_t n, float threshold);
// Over the rows of (N, C): y = softmax(x), or log_softmax(x) when log_softmax; backward from y.
int softmax_forward(float* y, const float* x, int N, int C, bool log_softmax);
int softmax_backward(float* dx, const float* dy, const float* y, int N, int C, bool log_softmax);

// ---------------------------------------------------------------------------------- losses (loss.cu)
// Doubles of workspace the forward losses need for N rows (cross-entropy, NLL) or n elements
// (the pointwise losses).
size_t cross_entropy_workspace_size(int N);
size_t pointwise_loss_workspace_size(size_t n);
// *loss (one double, device) = mean_i (logsumexp(z_i) - z_i[y_i]); probs (N,C) = softmax(logits).
int cross_entropy_forward(double* loss, float* probs, const float* logits, const int64_t* labels,
                          int N, int C, double* workspace);
// dlogits = scale * (probs - onehot(labels)) / N.
int cross_entropy_backward(float* dlogits, const float* probs, const int64_t* labels, int N, int C,
                           float scale);
// Probability targets t (N,C): *loss = mean_i sum_j -t_ij log_softmax(z)_ij;
// dlogits = scale * (probs * sum_j t_ij - t) / N.
int cross_entropy_soft_forward(double* loss, float* probs, const float* logits,
                               const float* targets, int N, int C, double* workspace);
int cross_entropy_soft_backward(float* dlogits, const float* probs, const float* targets, int N,
                                int C, float scale);
// *loss = mean_i -logp[i, y_i]; dlogp = -scale onehot(labels) / N.
int nll_forward(double* loss, const float* logp, const int64_t* labels, int N, int C,
                double* workspace);
int nll_backward(float* dlogp, const int64_t* labels, int N, int C, float scale);
// Means over n elements of pred p and target t, as the CPU's (loss.h):
//   mse (p - t)^2, l1 |p - t|, bce -(t log p + (1 - t) log(1 - p)) with logs clamped at -100,
//   bce_with_logits max(p, 0) - p t + log(1 + exp(-|p|)) (p the logit);
// backward dp = scale * d term / dp / n (l1's sign 0 at 0 and NaN; bce's divisor >= 1e-12).
enum class PointwiseLoss { mse, l1, bce, bce_with_logits };
int pointwise_loss_forward(PointwiseLoss kind, double* loss, const float* pred,
                           const float* target, size_t n, double* workspace);
int pointwise_loss_backward(PointwiseLoss kind, float* dpred, const float* pred,
                            const float* target, size_t n, float scale);

// ------------------------------------------------------------------- batch norm (norm.cu)
// x (N, C, S): training normalises by the batch's statistics (running_mean / running_var, when
// not null, updated in place with momentum and the unbiased variance), else by the running ones;
// mean and invstd (C) are written for backward; gamma / beta may be null (1 and 0).
int batchnorm_forward(float* y, float* mean, float* invstd, const float* x, const float* gamma,
                      const float* beta, float* running_mean, float* running_var, int C, size_t N,
                      size_t S, bool training, float momentum, float eps);
// dx overwritten (null: skipped); dgamma and dbeta (both or neither) += (= when !accumulate).
int batchnorm_backward(float* dx, float* dgamma, float* dbeta, const float* dy, const float* x,
                       const float* gamma, const float* mean, const float* invstd, int C,
                       size_t N, size_t S, bool training, bool accumulate);

// ------------------------------------------------------------------------------- pooling (pool.cu)
// As the CPU's (pool.h): argmax the flat h*W + w index in the input plane, first maximum in
// row-major window order, NaN wins; avg pooling counts the zero padding.
int maxpool2d_forward(float* y, int32_t* argmax, const float* x, const Pool2dShape& s);
int maxpool2d_backward(float* dx, const float* dy, const int32_t* argmax, const Pool2dShape& s);
// maxpool2d of relu(x); backward with the pooled output y masking the ReLU.
int relu_maxpool2d_forward(float* y, int32_t* argmax, const float* x, const Pool2dShape& s);
int relu_maxpool2d_backward(float* dx, const float* dy, const float* y, const int32_t* argmax,
                            const Pool2dShape& s);
int avgpool2d_forward(float* y, const float* x, const Pool2dShape& s);
int avgpool2d_backward(float* dx, const float* dy, const Pool2dShape& s);

// --------------------------------------------------------------------------- convolution (conv.cu)
// Floats of workspace conv2d_forward / conv2d_backward need (one image's im2col matrix, and for
// backward its gradient).
size_t conv2d_workspace_size(const Conv2dShape& s);
// y (N,OC,OH,OW) = conv(x, w (OC,C,KH,KW)) + bias (may be null), image by image: im2col, GEMM.
int conv2d_forward(float* y, const float* x, const float* w, const float* bias,
                   const Conv2dShape& s, float* workspace);
// dx overwritten; dw, dbias += (= when !accumulate); any may be null.
int conv2d_backward(float* dx, float* dw, float* dbias, const float* dy, const float* x,
                    const float* w, const Conv2dShape& s, float* workspace, bool accumulate);

// Conv2d -> ReLU -> MaxPool2d (the CPU's conv2d_relu_maxpool_*; pool: N = s.N, C = s.OC,
// H = s.OH(), W = s.OW()): the convolution into the workspace, then one pass pooling its ReLU
// (argmax as maxpool2d_forward's); backward: one pass from g (where the pooled y > 0 or NaN)
// to the convolution's output gradient, then conv2d_backward. Workspace of
// conv2d_relu_maxpool_workspace_size floats.
size_t conv2d_relu_maxpool_workspace_size(const Conv2dShape& s);
int conv2d_relu_maxpool_forward(float* y, int32_t* argmax, const float* x, const float* w,
                                const float* bias, const Conv2dShape& s, const Pool2dShape& pool,
                                float* workspace);
int conv2d_relu_maxpool_backward(float* dx, float* dw, float* dbias, const float* g,
                                 const float* y, const int32_t* argmax, const float* x,
                                 const float* w, const Conv2dShape& s, const Pool2dShape& pool,
                                 float* workspace, bool accumulate);

// --------------------------------------------------------------------------- dropout (dropout.cu)
// The CPU's generator: element i kept iff the splitmix64 uniform of (seed, i) >= p, so the masks
// are the CPU's bit for bit. y = x * mask / (1 - p); dx = dy * mask / (1 - p).
int dropout_forward(float* y, uint8_t* mask, const float* x, size_t n, float p, uint64_t seed);
int dropout_backward(float* dx, const float* dy, const uint8_t* mask, size_t n, float p);

// ------------------------------------------------------------------------- optimizers (optim.cu)
// One tensor of adam_update_all's list (device pointers).
struct AdamTensor {
  float* param;
  const float* grad;
  float* m;
  float* v;
  size_t n;
};
// The CPU's sgd_update / adam_update over `count` tensors in one launch; `tensors` is a DEVICE
// array of the table (the caller uploads it), max_n the largest tensor's n.
int sgd_update_all(const SgdTensor* tensors, int count, size_t max_n, float lr, float momentum,
                   float dampening, float weight_decay, bool nesterov, bool first_step);
int adam_update_all(const AdamTensor* tensors, int count, size_t max_n, float lr, float beta1,
                    float beta2, float eps, float weight_decay, long step, bool decoupled);
// One tensor each, in place, as the CPU's rmsprop_update (momentum_buf null without momentum,
// grad_avg null unless centered), adagrad_update (at `step`, from 1) and adadelta_update.
int rmsprop_update(float* param, const float* grad, float* square_avg, float* momentum_buf,
                   float* grad_avg, size_t n, float lr, float alpha, float eps,
                   float weight_decay, float momentum);
int adagrad_update(float* param, const float* grad, float* state_sum, size_t n, float lr,
                   float lr_decay, float weight_decay, float eps, long step);
int adadelta_update(float* param, const float* grad, float* square_avg, float* acc_delta,
                    size_t n, float lr, float rho, float eps, float weight_decay);

// --------------------------------------------------------------------------------- data (data.cu)
// out (n, width) = src[rows[i], :]; rows (device int64) in [0, src_rows) (the caller checks).
int gather_rows(float* out, const float* src, const int64_t* rows, int n, size_t width);
// dst[r * dst_ld + c] = src[r * src_ld + c] for r < rows, c < cols
int copy_columns(float* dst, size_t dst_ld, const float* src, size_t src_ld, size_t rows,
                 size_t cols);

}  // namespace cuda
}  // namespace nnfast
