// Dense linear algebra: SGEMM, matmul and Linear (fully connected) layers.
#pragma once
#include "nnfast/activation.h"
#include "nnfast/common.h"

namespace nnfast {

// A Linear layer's GEMM with its elementwise finish (sgemm_fused), each tile finished while it
// is in cache (no second pass over C, whose halves the threads wrote on different cores):
//   forward  (act_output null): C = act(op(A) op(B) + col_bias)  (col_bias per column, may be null)
//   backward (act_output set):  C = op(A) op(B) * act'(...), the gradient at an activation's input
//            from its output act_output (M x N, rows ld_act_output apart), as activation_backward.
// The same numbers as sgemm followed by those kernels (each element's sum as sgemm's).
struct GemmEpilogue {
  const float* col_bias = nullptr;
  Activation act = Activation::none;
  const float* act_output = nullptr;
  std::ptrdiff_t ld_act_output = 0;
};

// Unpacked GEMM on one thread, the building block of sgemm for operands that fit in cache and of
// conv2d (one image at a time): C (M,N) = alpha * A @ B + beta * C + bias[i] (bias per row of C,
// may be null; beta == 0: C is write-only). A is read in place through strides, A(i,k) =
// A[i*ars + k*aks], so A and A^T need no copy; B rows are contiguous, B(k,j) = B[k*ldb + j].
// Each C element is summed over k in order, whatever the tiling: the same bits however the
// caller splits C. `finish` (default: nothing) is applied to each tile while it is in cache, as
// sgemm_fused describes, its pointers at C's element (0, 0).
struct StridedGemm {
  int M, N, K;
  const float* A;
  std::ptrdiff_t ars, aks;
  const float* B;
  std::ptrdiff_t ldb;
  float* C;
  std::ptrdiff_t ldc;
  float alpha, beta;
  const float* bias;
  GemmEpilogue finish = {};
};

inline namespace NNFAST_ISA {

// C = alpha * op(A) * op(B) + beta * C, single precision, row-major.
// op(A) is M x K: A is M x K (lda >= K) or, if trans_a, K x M (lda >= M).
// op(B) is K x N: B is K x N (ldb >= N) or, if trans_b, N x K (ldb >= K).
// C is M x N (ldc >= N). beta == 0 means C is write-only (may hold NaN garbage).
// Fast path: packed panels, a register-blocked micro-kernel at the ISA's width, cache blocking,
// OpenMP over M/N blocks (never over K, so results do not depend on the thread count).
// workspace: sgemm_workspace_size(...) floats (same shape, leading dimensions and num_threads),
// 64-byte aligned; null when that is 0. num_threads: the most threads it runs on (>= 1).
size_t sgemm_workspace_size(bool trans_a, bool trans_b, int M, int N, int K, int lda, int ldb,
                            int num_threads);
void sgemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A, int lda,
           const float* B, int ldb, float beta, float* C, int ldc, float* workspace,
           int num_threads);

// g on the calling thread; scratch: gemm_strided_workspace_size(g.M, g.K, g.ldb) floats (or
// more), 64-byte aligned. ldb 0 sizes it for any g.ldb; the size holds for any depth up to K
// and any number of columns.
size_t gemm_strided_workspace_size(int M, int K, std::ptrdiff_t ldb);
void gemm_strided(const StridedGemm& g, float* scratch);

// sgemm_fused's workspace is sgemm_fused_workspace_size(...) floats, as sgemm's.
size_t sgemm_fused_workspace_size(bool trans_a, bool trans_b, int M, int N, int K, int lda,
                                  int ldb, int num_threads);
void sgemm_fused(bool trans_a, bool trans_b, int M, int N, int K, const float* A, int lda,
                 const float* B, int ldb, float* C, int ldc, const GemmEpilogue& epilogue,
                 float* workspace, int num_threads);

// The bf16 product (nnfast.set_precision("bf16")): C = op(A) op(B) + beta * C (beta 0 or 1,
// 0: C write-only) with every operand rounded to bfloat16 (to nearest even) and the products
// summed in float32, then the epilogue as sgemm_fused's (op, shapes and leading dimensions as
// sgemm's). Only the avx512 copy has it, on a CPU with AVX512_BF16: gemm_bf16_available() says
// whether this copy runs it here, and nothing may call it where it is false.
// workspace: gemm_bf16_workspace_size(M, N, K) floats, 64-byte aligned.
bool gemm_bf16_available();
size_t gemm_bf16_workspace_size(int M, int N, int K);
void gemm_bf16(bool trans_a, bool trans_b, int M, int N, int K, const float* A, int lda,
               const float* B, int ldb, float beta, float* C, int ldc,
               const GemmEpilogue& finish, float* workspace, int num_threads);

// dst (cols, rows) = src (rows, cols)^T; src rows are lds apart, dst rows ldd apart.
void transpose(float* dst, std::ptrdiff_t ldd, const float* src, std::ptrdiff_t lds, int rows,
               int cols);

// Plain triple loop with the same contract as sgemm (for clarity and tests).
void sgemm_reference(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A,
                     int lda, const float* B, int ldb, float beta, float* C, int ldc);

// matmul: c (M,N) = op(a) @ op(b), with op as in sgemm; a, b, c are dense (no padding).
// workspace and num_threads as sgemm's, the size from the *_workspace_size function.
size_t matmul_forward_workspace_size(int M, int N, int K, bool trans_a, bool trans_b,
                                     int num_threads);
void matmul_forward(float* c, const float* a, const float* b, int M, int N, int K, bool trans_a,
                    bool trans_b, float* workspace, int num_threads);
// Given dc (M,N): da = dc @ op(b)^T in a's own layout, db = op(a)^T @ dc in b's own layout.
// da / db are overwritten (this op has no parameters); either may be null.
size_t matmul_backward_workspace_size(int M, int N, int K, bool trans_a, bool trans_b,
                                      int num_threads);
void matmul_backward(float* da, float* db, const float* dc, const float* a, const float* b, int M,
                     int N, int K, bool trans_a, bool trans_b, float* workspace, int num_threads);

// Linear: y (B,OUT) = x (B,IN) @ wt + bias, with the weight stored transposed: wt (IN,OUT) is
// w^T for PyTorch's w (OUT,IN) (the Python layer shows it as that w, a view of this memory). Rows
// of wt are ldw >= OUT floats apart (the Python layer pads them to 16 floats, 64-byte aligned:
// whole cache lines per vector load). bias may be null. act: an activation applied to y in the
// same pass (number for number as relu_forward / sigmoid_forward after it). Returns the number
// of nonzero entries of x (NaN counted as nonzero) when it counted them to choose the
// zero-skipping path, -1 when it did not; linear_backward can take it instead of counting again.
// workspace: linear_forward_workspace_size(...) floats, 64-byte aligned (null when 0);
// num_threads: the most threads it runs on.
// bf16: the dense product in bfloat16 (gemm_bf16, which must be available); the zero-skipping
// path sums float32 products either way (exactly the nonzero terms).
size_t linear_forward_workspace_size(int B, int IN, int OUT, int ldw, int num_threads,
                                     bool bf16 = false);
long linear_forward(float* y, const float* x, const float* wt, int ldw, const float* bias, int B,
                    int IN, int OUT, float* workspace, int num_threads,
                    Activation act = Activation::none, bool bf16 = false);
// dx (B,IN) = dy @ wt^T (overwritten); dwt (IN,OUT, rows ldw apart; the padding is never
// written) += x^T @ dy; dbias (OUT) += sum over the batch of dy. accumulate == false: dwt and
// dbias are overwritten instead (the first backward after zero_grad, which then needs no pass
// that zeroes them). x_nonzeros: x's nonzero count when the caller has it (linear_forward's
// return value for this x), -1 to count here; it only chooses between two paths that compute
// the same sums (in different orders), so a stale count never makes the result wrong.
// dx_act: the activation (ReLU or Sigmoid) whose output x is: dx is then the gradient at that
// activation's input, activation_backward(dx_act, dx, dy @ wt^T, x) (the same numbers as the
// two steps, without handing the intermediate gradient back and forth).
// workspace / num_threads / bf16 as linear_forward's (bf16: dx's and dwt's dense products), the
// size from linear_backward_workspace_size.
size_t linear_backward_workspace_size(int B, int IN, int OUT, int ldw, int num_threads,
                                      bool bf16 = false);
void linear_backward(float* dx, float* dwt, float* dbias, const float* dy, const float* x,
                     const float* wt, int ldw, int B, int IN, int OUT, float* workspace,
                     int num_threads, bool accumulate = true, long x_nonzeros = -1,
                     Activation dx_act = Activation::none, bool bf16 = false);

}  // namespace NNFAST_ISA
}  // namespace nnfast
