// Linear (fully connected) layers: y (B,OUT) = x (B,IN) @ w^T + bias, w (OUT,IN) as PyTorch
// stores it, and the gradients dx = dy @ w, dw (+)= dy^T @ x, dbias (+)= column sums of dy.
//
// Dense inputs go through sgemm. Inputs that are mostly zeros (MNIST images are about 81% zero
// pixels) take a sparse-input path (AVX-512 builds) that only touches x's nonzero entries:
//   forward:  y[i,:]  = bias + sum over k with x[i,k] != 0 of x[i,k] * wT[k,:]   (wT = w^T)
//   backward: dw[:,k] (+)= sum over i with x[i,k] != 0 of x[i,k] * dy[i,:]
// These are the GEMM's sums without their zero terms. A zero term only matters when its other
// factor is inf or NaN (0 * inf = NaN), so the path is taken only when w (forward) or dy
// (backward) is all finite; otherwise the GEMM keeps IEEE semantics. dx = dy @ w has no zero
// to skip and always uses the GEMM. Every output element is summed by one thread in ascending
// k (or i) order, so any thread count gives the same bits; which path runs depends on the data
// (its zeros), never on the thread count.
#include "nnfast/gemm.h"

#include "pack_buffer.h"
#include "sparse_rows.h"

#if defined(__AVX512F__)
#include <immintrin.h>
#endif
#include <omp.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <utility>

namespace nnfast {

using idx = std::ptrdiff_t;

#if defined(__AVX512F__)
// The sparse path pays a transpose of w (forward) or of x (backward) and the index lists; on
// 100 x 784 inputs it beats the GEMM below about 29% nonzeros, and for dw only from 32 outputs
// up (benchmarks/gemm.py, "sparse-input Linear" rows).
static constexpr double SPARSE_MAX_DENSITY = 0.25;
static constexpr int SPARSE_DW_MIN_OUT = 32;
using sparse::all_finite;
using sparse::count_nonzero;
using sparse::nonzero_indices;
using sparse::sum_rows_all;

static bool sparse_enough(const float* x, int B, int IN) {
  const size_t n = (size_t)B * IN;
  return n >= 4096 && (double)count_nonzero(x, n) <= SPARSE_MAX_DENSITY * (double)n;
}

static int sparse_threads(int B, int IN, int OUT) {
  return 2.0 * SPARSE_MAX_DENSITY * B * (double)IN * OUT < 2e5 ? 1 : get_num_threads();
}

// Forward through wT: returns false (y untouched) when w is not all finite.
static bool linear_forward_sparse(float* y, const float* x, const float* w, const float* bias,
                                  int B, int IN, int OUT) {
  static thread_local PackBuffer wt_buf, bias_buf;
  const idx ld = (OUT + 15) / 16 * 16;
  float* wt = wt_buf.get((size_t)IN * ld);
  float* b = bias_buf.get(ld);
  std::fill(b, b + ld, 0.0f);
  if (bias) std::memcpy(b, bias, OUT * sizeof(float));
  const int nt = sparse_threads(B, IN, OUT);
  bool finite = true;
#pragma omp parallel num_threads(nt) if (nt > 1) reduction(&& : finite)
  {
    const int t = omp_get_thread_num(), T = omp_get_num_threads();
    const int k0 = (int)((long)IN * t / T), k1 = (int)((long)IN * (t + 1) / T);
    transpose(wt + k0 * ld, ld, w + k0, IN, OUT, k1 - k0);  // wT rows k0..k1
    const __mmask16 pad = (__mmask16)~((1u << (OUT - (ld - 16))) - 1);
    for (int k = k0; k < k1; k++) _mm512_mask_storeu_ps(wt + k * ld + ld - 16, pad, _mm512_setzero_ps());
    finite = all_finite(wt + k0 * ld, (size_t)(k1 - k0) * ld);
  }
  if (!finite) return false;
#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    static thread_local PackBuffer ids_buf, out_buf;
    int* ids = reinterpret_cast<int*>(ids_buf.get(IN + 16));
    float* out = out_buf.get(ld);
#pragma omp for schedule(static)
    for (int i = 0; i < B; i++) {
      const float* xi = x + (idx)i * IN;
      sum_rows_all(out, b, ids, xi, nonzero_indices(ids, xi, IN), wt, ld);
      std::memcpy(y + (idx)i * OUT, out, OUT * sizeof(float));
    }
  }
  return true;
}

// dw (OUT,IN) (+)= dy^T @ x, sixteen columns of dw at a time: transpose x[:, k0:k0+16] so that
// each k's nonzeros are contiguous, sum the dy rows they pick into a 16 x OUT tile (started from
// dw's own columns when accumulating), and transpose the tile back into dw.
static void linear_backward_dw_sparse(float* dw, const float* dy, const float* x, int B, int IN,
                                      int OUT, bool accumulate) {
  static thread_local PackBuffer dy_buf;
  const idx ld = (OUT + 15) / 16 * 16, ldx = (B + 15) / 16 * 16;
  float* dyp = dy_buf.get((size_t)B * ld);  // dy with rows padded to ld
  for (int i = 0; i < B; i++) {
    std::memcpy(dyp + i * ld, dy + (idx)i * OUT, OUT * sizeof(float));
    std::fill(dyp + i * ld + OUT, dyp + (i + 1) * ld, 0.0f);
  }
  const int groups = (IN + 15) / 16, nt = sparse_threads(B, IN, OUT);
#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    static thread_local PackBuffer xt_buf, tile_buf, ids_buf;
    float* xt = xt_buf.get(16 * ldx);
    float* tile = tile_buf.get(16 * ld);
    int* ids = reinterpret_cast<int*>(ids_buf.get(B + 16));
    std::fill(tile, tile + 16 * ld, 0.0f);  // the pad columns stay zero
#pragma omp for schedule(static)  // contiguous groups: threads share no dw cache lines
    for (int g = 0; g < groups; g++) {
      const int k0 = g * 16, kw = std::min(16, IN - k0);
      transpose(xt, ldx, x + k0, IN, B, kw);
      if (accumulate) transpose(tile, ld, dw + k0, IN, OUT, kw);
      for (int kk = 0; kk < kw; kk++) {
        const float* xk = xt + kk * ldx;
        float* row = tile + kk * ld;
        sum_rows_all(row, accumulate ? row : nullptr, ids, xk, nonzero_indices(ids, xk, B), dyp, ld);
      }
      transpose(dw + k0, IN, tile, ld, kw, OUT);
    }
  }
}
#endif

void linear_forward(float* y, const float* x, const float* w, const float* bias, int B, int IN,
                    int OUT) {
#if defined(__AVX512F__)
  if (sparse_enough(x, B, IN) && linear_forward_sparse(y, x, w, bias, B, IN, OUT)) return;
#endif
  if (bias) {
    for (int i = 0; i < B; i++) std::memcpy(y + (size_t)i * OUT, bias, OUT * sizeof(float));
    sgemm(false, true, B, OUT, IN, 1.0f, x, IN, w, IN, 1.0f, y, OUT);
  } else {
    sgemm(false, true, B, OUT, IN, 1.0f, x, IN, w, IN, 0.0f, y, OUT);
  }
}

void linear_backward(float* dx, float* dw, float* dbias, const float* dy, const float* x,
                     const float* w, int B, int IN, int OUT, bool accumulate) {
  if (dx) sgemm(false, false, B, IN, OUT, 1.0f, dy, OUT, w, IN, 0.0f, dx, IN);
  if (dw) {
#if defined(__AVX512F__)
    if (OUT >= SPARSE_DW_MIN_OUT && sparse_enough(x, B, IN) && all_finite(dy, (size_t)B * OUT))
      linear_backward_dw_sparse(dw, dy, x, B, IN, OUT, accumulate);
    else
#endif
      sgemm(true, false, OUT, IN, B, 1.0f, dy, OUT, x, IN, accumulate ? 1.0f : 0.0f, dw, IN);
  }
  if (dbias) {
    if (!accumulate) std::fill(dbias, dbias + OUT, 0.0f);
    // Rows in order for every column: the sum order never depends on the thread count.
    for (int i = 0; i < B; i++) {
      const float* row = dy + (size_t)i * OUT;
#pragma omp simd
      for (int j = 0; j < OUT; j++) dbias[j] += row[j];
    }
  }
}

}  // namespace nnfast
