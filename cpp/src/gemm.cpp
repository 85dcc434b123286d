// SGEMM (packed panels + register-blocked AVX-512 / AVX2 micro-kernel), matmul and Linear.
//
// Layout: row-major throughout. sgemm computes C = alpha * op(A) op(B) + beta * C.
// The fast path follows the GotoBLAS/BLIS scheme:
//   for each NC-wide column block of B:
//     for each KC-deep slice of K:
//       pack op(B)[kc, nc] into NR-wide column panels (k-major inside a panel)
//       for each MC-tall row block of A (in parallel over threads):
//         pack op(A)[mc, kc] into MR-tall row panels (k-major inside a panel)
//         for each MR x NR tile: micro-kernel accumulates kc rank-1 updates in registers
// Packing absorbs the transpositions, so one micro-kernel serves all four cases, and pads
// edges with zeros so the micro-kernel never reads out of bounds. Threads split the M (and N)
// tiles, never K, so each C element is summed in the same order for any thread count.
#include "nnfast/gemm.h"

#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace nnfast {

// ---------------------------------------------------------------------------------------------
// Reference: the plain triple loop.
void sgemm_reference(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A,
                     int lda, const float* B, int ldb, float beta, float* C, int ldc) {
  for (int i = 0; i < M; i++) {
    for (int j = 0; j < N; j++) {
      float acc = 0.0f;
      for (int k = 0; k < K; k++) {
        float a = trans_a ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k];
        float b = trans_b ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j];
        acc += a * b;
      }
      float* c = &C[(size_t)i * ldc + j];
      *c = (beta == 0.0f ? 0.0f : beta * *c) + alpha * acc;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Micro-kernel geometry. MR rows of A x NR columns of B held in registers.
#if defined(__AVX512F__)
static constexpr int MR = 8;
static constexpr int NR = 32;  // two zmm per row: 8 x 2 = 16 accumulators
#elif defined(__AVX2__) && defined(__FMA__)
static constexpr int MR = 6;
static constexpr int NR = 16;  // two ymm per row: 6 x 2 = 12 accumulators
#else
static constexpr int MR = 4;
static constexpr int NR = 8;
#endif
static constexpr int KC = 256;   // depth of a packed slice (A panel MR*KC*4 B = 8 KB fits L1)
static constexpr int MC = 128;   // rows of A per block (MC*KC*4 = 128 KB in L2)
static constexpr int NC = 2048;  // columns of B per block (KC*NC*4 = 2 MB, L2/L3)

// Pack op(A)[i0:i0+mc, k0:k0+kc] into ceil(mc/MR) panels; panel p holds, for each k,
// the MR values op(A)[i0+p*MR+r, k0+k] (zero past mc).
static void pack_a(float* dst, bool trans_a, const float* A, int lda, int i0, int mc, int k0,
                   int kc) {
  for (int p = 0; p < mc; p += MR) {
    int rows = std::min(MR, mc - p);
    for (int k = 0; k < kc; k++) {
      for (int r = 0; r < rows; r++) {
        int i = i0 + p + r, kk = k0 + k;
        dst[r] = trans_a ? A[(size_t)kk * lda + i] : A[(size_t)i * lda + kk];
      }
      for (int r = rows; r < MR; r++) dst[r] = 0.0f;
      dst += MR;
    }
  }
}

// Pack op(B)[k0:k0+kc, j0:j0+nc] into ceil(nc/NR) panels; panel q holds, for each k,
// the NR values op(B)[k0+k, j0+q*NR+c] (zero past nc).
static void pack_b(float* dst, bool trans_b, const float* B, int ldb, int k0, int kc, int j0,
                   int nc) {
  for (int q = 0; q < nc; q += NR) {
    int cols = std::min(NR, nc - q);
    if (!trans_b && cols == NR) {
      for (int k = 0; k < kc; k++) {
        std::memcpy(dst, &B[(size_t)(k0 + k) * ldb + j0 + q], NR * sizeof(float));
        dst += NR;
      }
      continue;
    }
    for (int k = 0; k < kc; k++) {
      for (int c = 0; c < cols; c++) {
        int j = j0 + q + c, kk = k0 + k;
        dst[c] = trans_b ? B[(size_t)j * ldb + kk] : B[(size_t)kk * ldb + j];
      }
      for (int c = cols; c < NR; c++) dst[c] = 0.0f;
      dst += NR;
    }
  }
}

// Micro-kernel: acc (MR x NR) = sum_k a[k*MR + r] * b[k*NR + c]; then
// C[r, c] = (first ? beta * C : C) + alpha * acc for r < mr, c < nr.
// `first` is true for the first K slice (apply beta), false afterwards (accumulate).
static void micro_kernel(int kc, const float* a, const float* b, float* C, int ldc, int mr, int nr,
                         float alpha, float beta, bool first) {
#if defined(__AVX512F__)
  __m512 acc[MR][2];
  for (int r = 0; r < MR; r++) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
  for (int k = 0; k < kc; k++) {
    __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16);
    for (int r = 0; r < MR; r++) {
      __m512 ar = _mm512_set1_ps(a[r]);
      acc[r][0] = _mm512_fmadd_ps(ar, b0, acc[r][0]);
      acc[r][1] = _mm512_fmadd_ps(ar, b1, acc[r][1]);
    }
    a += MR;
    b += NR;
  }
  const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
  const __mmask16 m0 = nr >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << nr) - 1);
  const __mmask16 m1 = nr >= 32 ? (__mmask16)0xFFFF
                       : nr > 16 ? (__mmask16)((1u << (nr - 16)) - 1) : (__mmask16)0;
  for (int r = 0; r < mr; r++) {
    float* c = C + (size_t)r * ldc;
    __m512 r0 = _mm512_mul_ps(va, acc[r][0]), r1 = _mm512_mul_ps(va, acc[r][1]);
    if (!first) {
      r0 = _mm512_add_ps(r0, _mm512_maskz_loadu_ps(m0, c));
      r1 = _mm512_add_ps(r1, _mm512_maskz_loadu_ps(m1, c + 16));
    } else if (beta != 0.0f) {
      r0 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m0, c), r0);
      r1 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m1, c + 16), r1);
    }
    _mm512_mask_storeu_ps(c, m0, r0);
    _mm512_mask_storeu_ps(c + 16, m1, r1);
  }
#else
  float acc[MR][NR] = {};
  for (int k = 0; k < kc; k++) {
    for (int r = 0; r < MR; r++) {
      const float ar = a[r];
#pragma omp simd
      for (int c = 0; c < NR; c++) acc[r][c] += ar * b[c];
    }
    a += MR;
    b += NR;
  }
  for (int r = 0; r < mr; r++) {
    float* c = C + (size_t)r * ldc;
    for (int j = 0; j < nr; j++) {
      float v = alpha * acc[r][j];
      if (!first) v += c[j];
      else if (beta != 0.0f) v += beta * c[j];
      c[j] = v;
    }
  }
#endif
}

// Per-thread packing buffers, grown once and reused (no allocation in steady state).
struct PackBuffer {
  float* data = nullptr;
  size_t size = 0;
  float* get(size_t n) {
    if (n > size) {
      std::free(data);
      size = (n + 15) & ~size_t(15);
      data = static_cast<float*>(std::aligned_alloc(64, size * sizeof(float)));
    }
    return data;
  }
  ~PackBuffer() { std::free(data); }
};

static void scale_c(int M, int N, float beta, float* C, int ldc) {
  for (int i = 0; i < M; i++) {
    float* c = C + (size_t)i * ldc;
    if (beta == 0.0f) std::fill(c, c + N, 0.0f);
    else for (int j = 0; j < N; j++) c[j] *= beta;
  }
}

// Small outputs with a long K (a convolution's dW: 16 x 25 summed over K = 57,600 positions):
// the M/N tiles cannot keep the threads busy and K is never split across them, so K is cut into
// fixed chunks instead. Each chunk is multiplied on one thread into its own slice of a buffer,
// and the slices are added in chunk order. The chunks depend only on K, never on the thread
// count, so the result is the same for any number of threads.
static constexpr int KSPLIT_CHUNK = 4096;
static constexpr size_t KSPLIT_MAX_OUTPUT = 1 << 16;  // M * N at most (larger outputs tile well)

// Decided by the shape alone (never by the thread count), so every thread count sums alike.
// A chunk (K <= KSPLIT_CHUNK) never qualifies again, so the split does not recurse.
static bool use_k_split(int M, int N, int K) {
  return K >= 2 * KSPLIT_CHUNK && (size_t)M * N <= KSPLIT_MAX_OUTPUT;
}

static void sgemm_k_split(bool trans_a, bool trans_b, int M, int N, int K, float alpha,
                          const float* A, int lda, const float* B, int ldb, float beta, float* C,
                          int ldc) {
  static thread_local PackBuffer partial_buf;
  const int chunks = (K + KSPLIT_CHUNK - 1) / KSPLIT_CHUNK;
  const size_t mn = (size_t)M * N;
  float* partial = partial_buf.get(chunks * mn);
#pragma omp parallel for num_threads(get_num_threads()) schedule(static)
  for (int c = 0; c < chunks; c++) {
    const int k0 = c * KSPLIT_CHUNK, kc = std::min(KSPLIT_CHUNK, K - k0);
    const float* a = trans_a ? A + (size_t)k0 * lda : A + k0;
    const float* b = trans_b ? B + k0 : B + (size_t)k0 * ldb;
    sgemm(trans_a, trans_b, M, N, kc, 1.0f, a, lda, b, ldb, 0.0f, partial + c * mn, N);
  }
  for (int i = 0; i < M; i++) {
    float* crow = C + (size_t)i * ldc;
    for (int j = 0; j < N; j++) {
      float sum = 0.0f;
      for (int c = 0; c < chunks; c++) sum += partial[c * mn + (size_t)i * N + j];
      crow[j] = (beta == 0.0f ? 0.0f : beta * crow[j]) + alpha * sum;
    }
  }
}

void sgemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A, int lda,
           const float* B, int ldb, float beta, float* C, int ldc) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0 || alpha == 0.0f) {
    scale_c(M, N, beta, C, ldc);
    return;
  }
  if (use_k_split(M, N, K)) {
    sgemm_k_split(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
  static thread_local PackBuffer b_buf;
  const double flops = 2.0 * M * N * (double)K;
  const int nthreads = flops < 2e5 ? 1 : get_num_threads();

  for (int j0 = 0; j0 < N; j0 += NC) {
    const int nc = std::min(NC, N - j0);
    const int npanels = (nc + NR - 1) / NR;
    for (int k0 = 0; k0 < K; k0 += KC) {
      const int kc = std::min(KC, K - k0);
      const bool first = k0 == 0;
      float* bp = b_buf.get((size_t)npanels * NR * kc);
      // Pack B: panels are independent, so threads can share the work.
#pragma omp parallel for num_threads(nthreads) schedule(static) if (nthreads > 1 && npanels > 1)
      for (int q = 0; q < npanels; q++) {
        int cols = std::min(NR, nc - q * NR);
        pack_b(bp + (size_t)q * NR * kc, trans_b, B, ldb, k0, kc, j0 + q * NR, cols);
      }
      // Tiles over (M block, N panel group): threads split M blocks; when M is small (a single
      // block), split the N panels instead so both cores still work.
      const int mblocks = (M + MC - 1) / MC;
      const int ngroups = mblocks >= nthreads ? 1 : std::min(npanels, nthreads);
      const int ntiles = mblocks * ngroups;
#pragma omp parallel num_threads(nthreads) if (nthreads > 1 && ntiles > 1)
      {
        static thread_local PackBuffer a_buf;
        float* ap = a_buf.get((size_t)MC * kc);
#pragma omp for schedule(static)
        for (int t = 0; t < ntiles; t++) {
          const int mb = t / ngroups, g = t % ngroups;
          const int i0 = mb * MC, mc = std::min(MC, M - i0);
          const int q_begin = (int)((long)npanels * g / ngroups);
          const int q_end = (int)((long)npanels * (g + 1) / ngroups);
          pack_a(ap, trans_a, A, lda, i0, mc, k0, kc);
          for (int q = q_begin; q < q_end; q++) {
            const int nr = std::min(NR, nc - q * NR);
            const float* bpanel = bp + (size_t)q * NR * kc;
            for (int p = 0; p < mc; p += MR) {
              const int mr = std::min(MR, mc - p);
              micro_kernel(kc, ap + (size_t)p * kc, bpanel,
                           C + (size_t)(i0 + p) * ldc + j0 + q * NR, ldc, mr, nr, alpha, beta,
                           first);
            }
          }
        }
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// matmul: c (M,N) = op(a) @ op(b).
void matmul_forward(float* c, const float* a, const float* b, int M, int N, int K, bool trans_a,
                    bool trans_b) {
  sgemm(trans_a, trans_b, M, N, K, 1.0f, a, trans_a ? M : K, b, trans_b ? K : N, 0.0f, c, N);
}

// With C = op(A) op(B): dop(A) = dC op(B)^T, dop(B) = op(A)^T dC, each written in the operand's
// own storage layout (a transposed operand gets the transposed product).
void matmul_backward(float* da, float* db, const float* dc, const float* a, const float* b, int M,
                     int N, int K, bool trans_a, bool trans_b) {
  const int lda = trans_a ? M : K, ldb = trans_b ? K : N;
  if (da) {
    if (!trans_a)  // da (M,K) = dC (M,N) @ op(B)^T
      sgemm(false, !trans_b, M, K, N, 1.0f, dc, N, b, ldb, 0.0f, da, K);
    else  // da (K,M) = op(B) (K,N) @ dC^T
      sgemm(trans_b, true, K, M, N, 1.0f, b, ldb, dc, N, 0.0f, da, M);
  }
  if (db) {
    if (!trans_b)  // db (K,N) = op(A)^T (K,M) @ dC
      sgemm(!trans_a, false, K, N, M, 1.0f, a, lda, dc, N, 0.0f, db, N);
    else  // db (N,K) = dC^T (N,M) @ op(A)
      sgemm(true, trans_a, N, K, M, 1.0f, dc, N, a, lda, 0.0f, db, K);
  }
}

// ---------------------------------------------------------------------------------------------
// Linear: y (B,OUT) = x (B,IN) @ w^T + bias, w (OUT,IN).
void linear_forward(float* y, const float* x, const float* w, const float* bias, int B, int IN,
                    int OUT) {
  if (bias) {
    for (int i = 0; i < B; i++) std::memcpy(y + (size_t)i * OUT, bias, OUT * sizeof(float));
    sgemm(false, true, B, OUT, IN, 1.0f, x, IN, w, IN, 1.0f, y, OUT);
  } else {
    sgemm(false, true, B, OUT, IN, 1.0f, x, IN, w, IN, 0.0f, y, OUT);
  }
}

// dx (B,IN) = dy @ w; dw (OUT,IN) += dy^T @ x; dbias (OUT) += column sums of dy.
void linear_backward(float* dx, float* dw, float* dbias, const float* dy, const float* x,
                     const float* w, int B, int IN, int OUT) {
  if (dx) sgemm(false, false, B, IN, OUT, 1.0f, dy, OUT, w, IN, 0.0f, dx, IN);
  if (dw) sgemm(true, false, OUT, IN, B, 1.0f, dy, OUT, x, IN, 1.0f, dw, IN);
  if (dbias) {
    // Rows in order for every column: the sum order never depends on the thread count.
    for (int i = 0; i < B; i++) {
      const float* row = dy + (size_t)i * OUT;
#pragma omp simd
      for (int j = 0; j < OUT; j++) dbias[j] += row[j];
    }
  }
}

}  // namespace nnfast
