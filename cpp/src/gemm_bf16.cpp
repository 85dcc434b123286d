// The bfloat16 GEMM of nnfast.set_precision("bf16") (gemm.h): operands rounded to bf16, products
// summed in float32 by vdpbf16ps (AVX512_BF16), two k at a time. Only the avx512 copy holds it,
// compiled for that instruction with a target attribute, and it runs only where the CPU has it;
// the other copies say it is not there. Its plain version is the NumPy reference's bf16 Linear
// (python/nnfast/backend/reference.py): the same rounding of the operands, then a float32 product.
//
// Layout. K is taken in pairs, Kp = ceil(K / 2) of them (an odd K's last pair has a zero second
// half). A 32-bit word holds a pair: the bf16 of k = 2p in its low half, of k = 2p + 1 in its high
// half, which is how vdpbf16ps reads a lane. op(B) is packed in panels of NR = 32 columns, a
// panel's word (p, c) at [p * NR + c]. op(A) is packed in panels of MR rows: an A stored (M, K)
// becomes rows of Kp words, word (r, p) at [r * Kp + p] (a plain conversion, no transpose); an A
// stored (K, M) becomes word (p, r) at [p * MR + r]. Rows and columns past the matrix are packed
// as zeros. A tile (MR rows, one B panel) keeps its 2 * MR sums in registers over a block of KB
// pairs: per pair, two B vectors are loaded and each row's word is broadcast into two dot
// products. The blocks of K keep a tile's A in L1 and the B panels in L2.
#include "nnfast/gemm.h"

#include <algorithm>

#include "simd.h"

namespace nnfast {
inline namespace NNFAST_ISA {

#if defined(__AVX512F__) && defined(__x86_64__)
#define NNFAST_BF16 __attribute__((target("avx512bf16")))

namespace {

constexpr int MR = 10;  // rows of a tile: 2 * MR sums + 2 B vectors + a broadcast in 32 registers
constexpr int NR = 32;  // columns of a tile: two vectors of 16 lanes
constexpr int KB = 256;  // pairs of a block of K: a tile's A (10 KB) in L1, its B panel in L2

using simd::first;
using idx = std::ptrdiff_t;

int ceil_div(int a, int b) { return (a + b - 1) / b; }

// The words of op(A)'s packed panels: mp panels of MR rows, Kp words a row (a multiple of 16,
// so that op(B)'s panels after them start on a cache line).
size_t a_words(int M, int K) { return round16((size_t)ceil_div(M, MR) * MR * ceil_div(K, 2)); }

// The words of two rows of float32 (r0: k even, r1: k odd), 16 columns: lane c is the pair
// (bf16(r0[c]), bf16(r1[c])). vcvtne2ps2bf16 rounds to nearest even (NaN stays NaN); the
// permutation interleaves its two halves.
NNFAST_BF16 __m512i pair_words(__m512 r0, __m512 r1) {
  const __m512i interleave = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25,
                                              9, 24, 8, 23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2,
                                              17, 1, 16, 0);
  return _mm512_permutexvar_epi16(interleave, (__m512i)_mm512_cvtne2ps_pbh(r1, r0));
}

// The 16 words of pairs [p, p + 16) of a row stored along k (row at its k = 2p, k floats left
// from there; none past them read), zero past the row's end: 32 bf16 in order.
NNFAST_BF16 __m512i row_words(const float* row, int k) {
  const __m512 lo = _mm512_maskz_loadu_ps(first(std::clamp(k, 0, 16)), row);
  const __m512 hi = _mm512_maskz_loadu_ps(first(std::clamp(k - 16, 0, 16)), row + 16);
  return (__m512i)_mm512_cvtne2ps_pbh(hi, lo);
}

// A panel of w columns [c0, c0 + w) of a matrix whose rows are k (src (K, cols), rows ld apart):
// word (p, c) = (src[2p][c0 + c], src[2p + 1][c0 + c]), zero past column `cols` or row K.
NNFAST_BF16 void pack_across_rows(uint32_t* dst, int w, const float* src, idx ld, int K, int c0,
                                  int cols) {
  const int Kp = ceil_div(K, 2);
  for (int p = 0; p < Kp; p++) {
    const float* r0 = src + (idx)(2 * p) * ld;
    const bool odd = 2 * p + 1 < K;
    for (int c = 0; c < w; c += 16) {
      const simd::Mask load = first(std::clamp(cols - c0 - c, 0, 16));
      const __m512 v0 = _mm512_maskz_loadu_ps(load, r0 + c0 + c);
      const __m512 v1 = odd ? _mm512_maskz_loadu_ps(load, r0 + ld + c0 + c) : _mm512_setzero_ps();
      _mm512_mask_storeu_epi32(dst + (idx)p * w + c, first(std::min(w - c, 16)),
                               pair_words(v0, v1));
    }
  }
}

// A panel of w lines [l0, l0 + w) of a matrix whose rows are those lines, k along each row
// (src (lines, K), rows ld apart): word (p, l) = (src[l0 + l][2p], src[l0 + l][2p + 1]), zero
// past line `lines` or column K. Sixteen pairs of sixteen lines are converted, then transposed.
NNFAST_BF16 void pack_along_rows(uint32_t* dst, int w, const float* src, idx ld, int K, int l0,
                                 int lines) {
  const int Kp = ceil_div(K, 2);
  alignas(64) float words[16 * 16];  // 16 lines x 16 words, as float bits for transpose_block
  for (int p0 = 0; p0 < Kp; p0 += 16)
    for (int l = 0; l < w; l += 16) {
      const int nl = std::min(w - l, 16);
      for (int i = 0; i < nl; i++) {
        const int line = l0 + l + i;
        const __m512i v = line < lines ? row_words(src + (idx)line * ld + 2 * p0, K - 2 * p0)
                                       : _mm512_setzero_si512();
        _mm512_store_si512(words + 16 * i, v);
      }
      simd::transpose_block(reinterpret_cast<float*>(dst) + (idx)p0 * w + l, w, words, 16, nl,
                            std::min(Kp - p0, 16));
    }
}

// Rows [i0, i0 + MR) of an A stored (M, K) as rows of Kp words: word (r, p) at [r * Kp + p].
NNFAST_BF16 void pack_a_rows(uint32_t* dst, const float* A, idx lda, int M, int K, int i0) {
  const int Kp = ceil_div(K, 2);
  for (int r = 0; r < MR; r++) {
    const float* row = A + (idx)(i0 + r) * lda;
    for (int p = 0; p < Kp; p += 16)
      _mm512_mask_storeu_epi32(dst + (idx)r * Kp + p, first(std::min(Kp - p, 16)),
                               i0 + r < M ? row_words(row + 2 * p, K - 2 * p)
                                          : _mm512_setzero_si512());
  }
}

// The packed panel of op(A)'s rows [i0, i0 + MR), or op(B)'s columns [j0, j0 + NR).
NNFAST_BF16 void pack_a_panel(uint32_t* dst, bool trans_a, const float* A, int lda, int M, int K,
                              int i0) {
  if (trans_a) pack_across_rows(dst, MR, A, lda, K, i0, M);  // A (K, M)
  else pack_a_rows(dst, A, lda, M, K, i0);                   // A (M, K)
}
NNFAST_BF16 void pack_b_panel(uint32_t* dst, bool trans_b, const float* B, int ldb, int N, int K,
                              int j0) {
  if (trans_b) pack_along_rows(dst, NR, B, ldb, K, j0, N);  // B (N, K)
  else pack_across_rows(dst, NR, B, ldb, K, j0, N);         // B (K, N)
}

// One tile over pairs [p0, p1): C's rows [0, rows) and columns [0, ncols) (pointers at the tile's
// corner, the bias at its first column), rows <= MR, ncols <= 16 * NV: NV vectors of 16 columns.
// a: the A panel, word (r, p) at a[r * ars + p * aps]; b: the B panel. add_c: the sums are added
// to C; last: the block that ends K, which adds the bias and applies the activation.
template <int NV>
NNFAST_BF16 void tile(int p0, int p1, const uint32_t* a, idx ars, idx aps, const uint32_t* b,
                      float* C, idx ldc, int rows, int ncols, bool add_c, bool last,
                      const GemmEpilogue& e, const float* act_out) {
  __m512 sum[MR][NV];
#pragma GCC unroll 10
  for (int r = 0; r < MR; r++)
#pragma GCC unroll 2
    for (int v = 0; v < NV; v++) sum[r][v] = _mm512_setzero_ps();
  for (int p = p0; p < p1; p++) {
    __m512bh bv[NV];
#pragma GCC unroll 2
    for (int v = 0; v < NV; v++) bv[v] = (__m512bh)_mm512_load_si512(b + (idx)p * NR + 16 * v);
#pragma GCC unroll 10
    for (int r = 0; r < MR; r++) {
      const __m512bh av = (__m512bh)_mm512_set1_epi32((int)a[r * ars + p * aps]);
#pragma GCC unroll 2
      for (int v = 0; v < NV; v++) sum[r][v] = _mm512_dpbf16_ps(sum[r][v], av, bv[v]);
    }
  }
  for (int r = 0; r < rows; r++)
#pragma GCC unroll 2
    for (int v = 0; v < NV; v++) {
      const int n = ncols - 16 * v;
      if (n <= 0) break;
      const simd::Mask m = first(std::min(n, 16));
      float* c = C + r * ldc + 16 * v;
      __m512 out = sum[r][v];
      if (add_c) out = _mm512_add_ps(out, _mm512_maskz_loadu_ps(m, c));
      if (last && e.col_bias)
        out = _mm512_add_ps(out, _mm512_maskz_loadu_ps(m, e.col_bias + 16 * v));
      _mm512_mask_storeu_ps(c, m, out);
    }
  if (last) activation_rows(e.act, C, ldc, act_out, e.ld_act_output, rows, ncols);
}

// The tile's two layouts of A, as tile's compile-time strides.
template <int NV, bool TRANS_A>
NNFAST_BF16 void tile_of(int Kp, int p0, int p1, const uint32_t* a, const uint32_t* b, float* C,
                         idx ldc, int rows, int ncols, bool add_c, bool last,
                         const GemmEpilogue& e, const float* act_out) {
  tile<NV>(p0, p1, a, TRANS_A ? 1 : Kp, TRANS_A ? MR : 1, b, C, ldc, rows, ncols, add_c, last, e,
           act_out);
}

using TileFn = decltype(&tile_of<1, false>);

}  // namespace

bool gemm_bf16_available() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512bf16");
}

size_t gemm_bf16_workspace_size(int M, int N, int K) {
  return a_words(M, K) + round16((size_t)ceil_div(N, NR) * NR * ceil_div(K, 2));
}

void gemm_bf16(bool trans_a, bool trans_b, int M, int N, int K, const float* A, int lda,
               const float* B, int ldb, float beta, float* C, int ldc,
               const GemmEpilogue& finish, float* workspace, int num_threads) {
  const int Kp = ceil_div(K, 2), mp = ceil_div(M, MR), np = ceil_div(N, NR);
  uint32_t* ap = reinterpret_cast<uint32_t*>(workspace);
  uint32_t* bp = ap + a_words(M, K);
  // One thread per million multiply-adds at most: smaller products do not pay for a second.
  const double most = std::max(num_threads, 1);
  const int nt = (int)std::clamp<double>((double)M * N * K / (1 << 20), 1, most);
  parallel_region(nt, [&] {
#pragma omp for schedule(static)
    for (int i = 0; i < mp; i++) pack_a_panel(ap + (idx)i * MR * Kp, trans_a, A, lda, M, K, MR * i);
#pragma omp for schedule(static)
    for (int j = 0; j < np; j++) pack_b_panel(bp + (idx)j * NR * Kp, trans_b, B, ldb, N, K, NR * j);
    // Each thread takes a share of the A panels and all B panels, the same share in every block
    // of K (so no block waits for another thread's).
    const auto [t0, t1] = part_of((long)mp * np, omp_get_thread_num(), omp_get_num_threads());
    for (int p0 = 0; p0 < Kp; p0 += KB) {
      const int p1 = std::min(p0 + KB, Kp);
      for (long t = t0; t < t1; t++) {
        const int i = (int)(t / np) * MR, j = (int)(t % np) * NR;
        const int rows = std::min(MR, M - i), ncols = std::min(NR, N - j);
        GemmEpilogue e = finish;
        if (e.col_bias) e.col_bias += j;
        const float* act = e.act_output ? e.act_output + (idx)i * e.ld_act_output + j : nullptr;
        const TileFn fn = ncols > 16 ? (trans_a ? tile_of<2, true> : tile_of<2, false>)
                                     : (trans_a ? tile_of<1, true> : tile_of<1, false>);
        fn(Kp, p0, p1, ap + (size_t)i * Kp, bp + (size_t)j * Kp, C + (idx)i * ldc + j, ldc, rows,
           ncols, p0 > 0 || beta != 0.0f, p1 == Kp, e, act);
      }
    }
  });
}

#undef NNFAST_BF16
#else  // copies without AVX-512: no bf16 GEMM (gemm_bf16_available() is false, so never called)

bool gemm_bf16_available() { return false; }
size_t gemm_bf16_workspace_size(int, int, int) { return 0; }
void gemm_bf16(bool, bool, int, int, int, const float*, int, const float*, int, float, float*,
               int, const GemmEpilogue&, float*, int) {}

#endif

}  // namespace NNFAST_ISA
}  // namespace nnfast
