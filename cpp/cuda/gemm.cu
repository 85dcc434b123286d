// Dense linear algebra on the GPU: a shared-memory tiled SGEMM with a fused epilogue, and matmul
// and Linear over it (the CPU's gemm.h contracts, row-major).
//
// sgemm_kernel: C (M,N) = epilogue(alpha * op(A) op(B) + beta * C). Each block of 256 threads
// computes a 64 x 64 tile of C; it walks K in steps of 16, staging the 64 x 16 slice of op(A) and
// the 16 x 64 slice of op(B) in shared memory (both stored k-major: As[k][i], Bs[k][j]), reading
// A and B through their transposes on the way in, zeros past the edges. Thread (ty, tx) of the
// 16 x 16 grid owns the 4 x 4 elements (ty + 16 r, tx + 16 c) of the tile, so neighbouring
// threads read neighbouring shared-memory words. Each element's sum runs over k in order.
#include "common.cuh"

namespace nnfast {
namespace cuda {

constexpr int kTile = 64, kTileK = 16, kGemmThreads = 256, kPer = 4;

// Element (i, k) of op(A) and (k, j) of op(B), zero outside the matrices.
__device__ inline float op_a(const float* A, int lda, bool t, int M, int K, int i, int k) {
  if (i >= M || k >= K) return 0.0f;
  return t ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k];
}
__device__ inline float op_b(const float* B, int ldb, bool t, int K, int N, int k, int j) {
  if (k >= K || j >= N) return 0.0f;
  return t ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j];
}

// alpha * acc + beta * C, then the epilogue (cuda_kernels.h), into C(i, j).
__device__ inline void finish(float* C, int ldc, int i, int j, float acc, float alpha, float beta,
                              const Epilogue& e) {
  float v = alpha * acc;
  float* c = C + (size_t)i * ldc + j;
  if (beta != 0.0f) v += beta * *c;
  if (e.act_output) {
    v *= activation_derivative(e.act, e.act_output[(size_t)i * e.ld_act_output + j]);
  } else {
    if (e.col_bias) v += e.col_bias[j];
    if (e.row_bias) v += e.row_bias[i];
    v = apply_activation(e.act, v);
  }
  *c = v;
}

__global__ void __launch_bounds__(kGemmThreads)
sgemm_kernel(bool ta, bool tb, int M, int N, int K, float alpha, const float* __restrict__ A,
             int lda, const float* __restrict__ B, int ldb, float beta, float* C, int ldc,
             Epilogue e) {
  __shared__ float As[kTileK][kTile];
  __shared__ float Bs[kTileK][kTile];
  const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
  const int i0 = blockIdx.y * kTile, j0 = blockIdx.x * kTile;
  float acc[kPer][kPer] = {};
  for (int k0 = 0; k0 < K; k0 += kTileK) {
    // 1024 elements per slice, 4 per thread; consecutive threads take consecutive i (A) / j (B)
    for (int l = tid; l < kTile * kTileK; l += kGemmThreads) {
      const int r = l % kTile, k = l / kTile;
      As[k][r] = op_a(A, lda, ta, M, K, i0 + r, k0 + k);
      Bs[k][r] = op_b(B, ldb, tb, K, N, k0 + k, j0 + r);
    }
    __syncthreads();
#pragma unroll
    for (int k = 0; k < kTileK; k++) {
      float a[kPer], b[kPer];
#pragma unroll
      for (int r = 0; r < kPer; r++) a[r] = As[k][ty + 16 * r];
#pragma unroll
      for (int c = 0; c < kPer; c++) b[c] = Bs[k][tx + 16 * c];
#pragma unroll
      for (int r = 0; r < kPer; r++)
#pragma unroll
        for (int c = 0; c < kPer; c++) acc[r][c] = fmaf(a[r], b[c], acc[r][c]);
    }
    __syncthreads();
  }
  for (int r = 0; r < kPer; r++)
    for (int c = 0; c < kPer; c++) {
      const int i = i0 + ty + 16 * r, j = j0 + tx + 16 * c;
      if (i < M && j < N) finish(C, ldc, i, j, acc[r][c], alpha, beta, e);
    }
}

int sgemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A, int lda,
          const float* B, int ldb, float beta, float* C, int ldc, const Epilogue& epilogue) {
  if (M <= 0 || N <= 0) return 0;
  const dim3 grid((N + kTile - 1) / kTile, (M + kTile - 1) / kTile);
  sgemm_kernel<<<grid, kGemmThreads, 0, stream()>>>(
      trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, epilogue);
  return last_error();
}

int matmul_forward(float* c, const float* a, const float* b, int M, int N, int K, bool trans_a,
                   bool trans_b) {
  return sgemm(trans_a, trans_b, M, N, K, 1.0f, a, trans_a ? M : K, b, trans_b ? K : N, 0.0f, c,
               N);
}

// da = dc op(b)^T in a's layout: (M,K) = dc (M,N) op(b)^T, or its transpose (K,M) = op(b) dc^T.
// db = op(a)^T dc in b's layout: (K,N) = op(a)^T dc, or its transpose (N,K) = dc^T op(a).
int matmul_backward(float* da, float* db, const float* dc, const float* a, const float* b, int M,
                    int N, int K, bool trans_a, bool trans_b) {
  const int lda = trans_a ? M : K, ldb = trans_b ? K : N;
  if (da && !trans_a) NNFAST_CUDA_TRY(sgemm(false, !trans_b, M, K, N, 1.0f, dc, N, b, ldb, 0.0f, da, K));
  if (da && trans_a) NNFAST_CUDA_TRY(sgemm(trans_b, true, K, M, N, 1.0f, b, ldb, dc, N, 0.0f, da, M));
  if (db && !trans_b) NNFAST_CUDA_TRY(sgemm(!trans_a, false, K, N, M, 1.0f, a, lda, dc, N, 0.0f, db, N));
  if (db && trans_b) NNFAST_CUDA_TRY(sgemm(true, trans_a, N, K, M, 1.0f, dc, N, a, lda, 0.0f, db, K));
  return 0;
}

int linear_forward(float* y, const float* x, const float* wt, int ldw, const float* bias, int B,
                   int IN, int OUT, Activation act) {
  Epilogue e;
  e.col_bias = bias;
  e.act = act;
  return sgemm(false, false, B, OUT, IN, 1.0f, x, IN, wt, ldw, 0.0f, y, OUT, e);
}

// db[j] (+)= sum over rows of dy[r][j], one thread per column, rows in order.
__global__ void column_sums_kernel(float* db, const float* dy, int rows, int cols, bool acc) {
  const int j = blockIdx.x * blockDim.x + threadIdx.x;
  if (j >= cols) return;
  float s = 0.0f;
  for (int r = 0; r < rows; r++) s += dy[(size_t)r * cols + j];
  db[j] = acc ? db[j] + s : s;
}

int column_sums(float* db, const float* dy, int rows, int cols, bool accumulate) {
  if (cols <= 0) return 0;
  column_sums_kernel<<<(cols + kThreads - 1) / kThreads, kThreads, 0, stream()>>>(
      db, dy, rows, cols, accumulate);
  return last_error();
}

int linear_backward(float* dx, float* dwt, float* dbias, const float* dy, const float* x,
                    const float* wt, int ldw, int B, int IN, int OUT, bool accumulate,
                    Activation dx_act) {
  if (dx) {  // dx (B,IN) = dy (B,OUT) wt[:, :OUT]^T, times dx_act' from x
    Epilogue e;
    if (dx_act != Activation::none) {
      e.act = dx_act;
      e.act_output = x;
      e.ld_act_output = IN;
    }
    NNFAST_CUDA_TRY(sgemm(false, true, B, IN, OUT, 1.0f, dy, OUT, wt, ldw, 0.0f, dx, IN, e));
  }
  if (dwt)  // dwt (IN,OUT) (+)= x^T dy
    NNFAST_CUDA_TRY(sgemm(true, false, IN, OUT, B, 1.0f, x, IN, dy, OUT, accumulate ? 1.0f : 0.0f,
                          dwt, ldw));
  if (dbias) NNFAST_CUDA_TRY(column_sums(dbias, dy, B, OUT, accumulate));
  return 0;
}

}  // namespace cuda
}  // namespace nnfast
