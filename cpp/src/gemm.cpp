// SGEMM (packed panels + register-blocked AVX-512 / AVX2 micro-kernel) and matmul.
//
// Layout: row-major throughout. sgemm computes C = alpha * op(A) op(B) + beta * C.
// Two paths, chosen by the shape alone:
//  - unpacked (gemm_strided, AVX-512 builds): when op(B) fits in L2 or A has at most 64 rows,
//    register tiles read op(A) and op(B) in place (with trans_b, each thread transposes its own
//    columns of op(B) once) and sum all of K, a slice at a time for a long K, continued exactly;
//    below that size packing costs as much as the product (see sgemm_strided). With at most 16
//    columns and A's rows in place (a Linear layer with 10 outputs), each row of C is taken as
//    dot products of A's row with op(B)'s columns instead (dot_rows), no lanes idle on N.
//  - packed, for the rest, following the GotoBLAS/BLIS scheme:
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

#include "pack_buffer.h"

#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <utility>
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


// ---------------------------------------------------------------------------------------------
// Unpacked path (gemm_strided): no packing at all. A tile of MR rows x 16*NV columns of C stays
// in registers over the whole of K, broadcasting A(i, k) from wherever it lives and loading
// 16-float pieces of B's row k, then C is written once. Used when B fits in cache (small and
// skinny products: every Linear layer of an MNIST network, a convolution's per-image products),
// where packing would cost as much as the product.

using idx = std::ptrdiff_t;

#if defined(__AVX512F__)
// GCC 12 warns that the shuffles' internal _mm512_undefined_ps() "may be used uninitialized" (a
// known false positive of its self-initialised placeholder).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
// One block: dst (cols x rows, rows ldd apart) = src (rows x cols, rows lds apart)^T, rows and
// cols <= 16. Four shuffle stages (pairs of rows, 4 x 4 blocks inside 128-bit lanes, then the
// lanes twice) take the 16 x 16 transpose in 64 shuffles; missing rows / columns are zeros that
// are never stored.
static inline void transpose_block16(float* dst, idx ldd, const float* src, idx lds, int rows,
                                     int cols) {
  const __mmask16 cm = (__mmask16)((1u << cols) - 1), rm = (__mmask16)((1u << rows) - 1);
  __m512 r[16], t[16], u[16];
#pragma GCC unroll 16
  for (int i = 0; i < 16; i++)
    r[i] = i < rows ? _mm512_maskz_loadu_ps(cm, src + i * lds) : _mm512_setzero_ps();
#pragma GCC unroll 8
  for (int p = 0; p < 8; p++) {  // t[2p] lane L: r2p[4L], r2p+1[4L], r2p[4L+1], r2p+1[4L+1]
    t[2 * p] = _mm512_unpacklo_ps(r[2 * p], r[2 * p + 1]);
    t[2 * p + 1] = _mm512_unpackhi_ps(r[2 * p], r[2 * p + 1]);
  }
#pragma GCC unroll 4
  for (int q = 0; q < 4; q++) {  // u[4q+c] lane L: column 4L+c of rows 4q..4q+3
    u[4 * q + 0] = _mm512_shuffle_ps(t[4 * q], t[4 * q + 2], 0x44);
    u[4 * q + 1] = _mm512_shuffle_ps(t[4 * q], t[4 * q + 2], 0xEE);
    u[4 * q + 2] = _mm512_shuffle_ps(t[4 * q + 1], t[4 * q + 3], 0x44);
    u[4 * q + 3] = _mm512_shuffle_ps(t[4 * q + 1], t[4 * q + 3], 0xEE);
  }
#pragma GCC unroll 4
  for (int c = 0; c < 4; c++) {  // column 4L+c gathers lane L of u[c], u[4+c], u[8+c], u[12+c]
    const __m512 w0 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0x88);
    const __m512 w1 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0xDD);
    const __m512 w2 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0x88);
    const __m512 w3 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0xDD);
    r[c] = _mm512_shuffle_f32x4(w0, w2, 0x88);
    r[8 + c] = _mm512_shuffle_f32x4(w0, w2, 0xDD);
    r[4 + c] = _mm512_shuffle_f32x4(w1, w3, 0x88);
    r[12 + c] = _mm512_shuffle_f32x4(w1, w3, 0xDD);
  }
#pragma GCC unroll 16
  for (int j = 0; j < 16; j++)
    if (j < cols) _mm512_mask_storeu_ps(dst + j * ldd, rm, r[j]);
}
#pragma GCC diagnostic pop
#endif

// dst (cols, rows) = src (rows, cols)^T, 16 x 16 blocks at a time.
void transpose(float* dst, idx ldd, const float* src, idx lds, int rows, int cols) {
  constexpr int T = 16;
  for (int i0 = 0; i0 < rows; i0 += T)
    for (int j0 = 0; j0 < cols; j0 += T) {
      const int i1 = std::min(i0 + T, rows), j1 = std::min(j0 + T, cols);
#if defined(__AVX512F__)
      transpose_block16(dst + (size_t)j0 * ldd + i0, ldd, src + (size_t)i0 * lds + j0, lds,
                        i1 - i0, j1 - j0);
#else
      for (int j = j0; j < j1; j++)
        for (int i = i0; i < i1; i++) dst[(size_t)j * ldd + i] = src[(size_t)i * lds + j];
#endif
    }
}

// The activation act (forward) or the gradient through it (backward, from its output act_out,
// rows ld_act apart) on rows of C (ldc apart): a finished tile's, while they are in L1.
static void finish_rows(Activation act, float* C, idx ldc, const float* act_out, idx ld_act,
                        int rows, int ncols) {
  if (act == Activation::none) return;
  for (int r = 0; r < rows; r++) {
    if (act_out) activation_backward_span(act, C + r * ldc, act_out + r * ld_act, ncols);
    else activation_span(act, C + r * ldc, ncols);
  }
}

// A slice [k0, k1) of K for one tile: with a long K, each column block is multiplied one slice
// at a time (all row tiles per slice, so the slice of B stays in L1), the tile's running sums
// kept between slices in `part` (rows 16*NV floats apart), continued exactly where they stopped:
// every C element is still summed over k in order, so slicing does not change a bit.
struct KSlice {
  int k0, k1;
  bool first, last;
  float* part;
};

// One tile: rows [0, MR) of A and C (pointers already offset, act_out too, g.finish.col_bias to
// the tile's columns), ncols <= 16*NV columns of B / C, over the k of slice ks.
template <int MR, int NV>
static void strided_tile(const StridedGemm& g, const float* A, const float* B, float* C,
                         const float* bias, const float* act_out, int ncols, const KSlice& ks) {
  const idx ars = g.ars, aks = g.aks, ldb = g.ldb, ldc = g.ldc;
#if defined(__AVX512F__)
  constexpr int LDP = 16 * NV;  // row stride of the partial sums
  __mmask16 mask[NV];
#pragma GCC unroll 4
  for (int v = 0; v < NV; v++) mask[v] = (__mmask16)((1u << std::clamp(ncols - 16 * v, 0, 16)) - 1);
  __m512 acc[MR][NV];
#pragma GCC unroll 32
  for (int r = 0; r < MR; r++)
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++)
      acc[r][v] = ks.first ? _mm512_setzero_ps() : _mm512_load_ps(ks.part + r * LDP + 16 * v);
  const float* bk = B;  // row k of the slice of B
  for (int k = ks.k0; k < ks.k1; k++, bk += ldb) {
    __m512 b[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) b[v] = _mm512_maskz_loadu_ps(mask[v], bk + 16 * v);
    const float* ak = A + k * aks;
#pragma GCC unroll 32
    for (int r = 0; r < MR; r++) {
      const __m512 a = _mm512_set1_ps(ak[r * ars]);
#pragma GCC unroll 4
      for (int v = 0; v < NV; v++) acc[r][v] = _mm512_fmadd_ps(a, b[v], acc[r][v]);
    }
  }
  if (!ks.last) {
#pragma GCC unroll 32
    for (int r = 0; r < MR; r++)
#pragma GCC unroll 4
      for (int v = 0; v < NV; v++) _mm512_store_ps(ks.part + r * LDP + 16 * v, acc[r][v]);
    return;
  }
  const __m512 va = _mm512_set1_ps(g.alpha), vb = _mm512_set1_ps(g.beta);
#pragma GCC unroll 32
  for (int r = 0; r < MR; r++)
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) {
      float* c = C + r * ldc + 16 * v;
      __m512 out = _mm512_mul_ps(va, acc[r][v]);
      if (g.beta != 0.0f) out = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(mask[v], c), out);
      if (bias) out = _mm512_add_ps(out, _mm512_set1_ps(bias[r]));
      if (g.finish.col_bias)
        out = _mm512_add_ps(out, _mm512_maskz_loadu_ps(mask[v], g.finish.col_bias + 16 * v));
      _mm512_mask_storeu_ps(c, mask[v], out);
    }
  finish_rows(g.finish.act, C, ldc, act_out, g.finish.ld_act_output, MR, ncols);
#else
  constexpr int LDP = 16 * NV;
  float acc[MR][16 * NV];
  for (int r = 0; r < MR; r++)
    for (int j = 0; j < 16 * NV; j++) acc[r][j] = ks.first ? 0.0f : ks.part[r * LDP + j];
  for (int k = ks.k0; k < ks.k1; k++) {
    const float* bk = B + (k - ks.k0) * ldb;
    const float* ak = A + k * aks;
    for (int r = 0; r < MR; r++) {
      const float a = ak[r * ars];
#pragma omp simd
      for (int j = 0; j < 16 * NV; j++) acc[r][j] += a * (j < ncols ? bk[j] : 0.0f);
    }
  }
  if (!ks.last) {
    for (int r = 0; r < MR; r++)
      for (int j = 0; j < 16 * NV; j++) ks.part[r * LDP + j] = acc[r][j];
    return;
  }
  for (int r = 0; r < MR; r++) {
    float* c = C + r * ldc;
    for (int j = 0; j < ncols; j++) {
      float out = g.alpha * acc[r][j];
      if (g.beta != 0.0f) out = std::fma(g.beta, c[j], out);
      if (bias) out += bias[r];
      if (g.finish.col_bias) out += g.finish.col_bias[j];
      c[j] = out;
    }
  }
  finish_rows(g.finish.act, C, ldc, act_out, g.finish.ld_act_output, MR, ncols);
#endif
}

using StridedTileFn = void (*)(const StridedGemm&, const float*, const float*, float*, const float*,
                               const float*, int, const KSlice&);
// The tile of MR = mr rows (1 <= mr <= sizeof...(R)) and NV vectors of columns.
template <int NV, int... R>
static StridedTileFn pick_strided_tile(int mr, std::integer_sequence<int, R...>) {
  static constexpr StridedTileFn table[] = {&strided_tile<R + 1, NV>...};
  return table[mr - 1];
}

// Slices of K: one when K is short, else kStridedSlice deep (B's slice of a column block,
// kStridedSlice x 32 floats, then stays in L1 across the row tiles).
static constexpr int kStridedSlice = 128;
static constexpr int kStridedSliceFrom = 256;  // K at which slicing starts to pay

// One column block of C (ncols <= 16*NV columns from B and C): for each slice of K, tiles of MR
// rows down all M rows, the last taking the rows that remain.
template <int MR, int NV>
static void strided_column_block(const StridedGemm& g, const float* B, float* C, int ncols) {
  const bool sliced = g.K >= kStridedSliceFrom;
  static thread_local PackBuffer part_buf, panel_buf;
  float* part = sliced ? part_buf.get((size_t)(g.M + MR) * 16 * NV) : nullptr;
  const int step = sliced ? kStridedSlice : std::max(g.K, 1);
  // B's rows a multiple of 512 bytes apart fall on at most 8 of L1's 64 sets per line of the
  // block, so a slice of them (up to 128 rows) cannot stay in L1 (784 x 256 x 100 with B's 256
  // columns: 0.93x NumPy): the slice is copied into a panel first, rows 16*NV floats apart,
  // when there are rows enough (4 tiles) to pay for the copy.
  const bool panel = !sliced && g.ldb % 128 == 0 && g.M >= 4 * MR;
  StridedGemm gs = g;
  if (panel) gs.ldb = 16 * NV;
  for (int k0 = 0; k0 < std::max(g.K, 1); k0 += step) {
    const int k1 = std::min(g.K, k0 + step);
    const float* bs = B + (size_t)k0 * g.ldb;  // the slice's rows of B
    if (panel) {
      float* p = panel_buf.get((size_t)step * 16 * NV);
      for (int k = k0; k < k1; k++)
        std::memcpy(p + (size_t)(k - k0) * 16 * NV, B + (size_t)k * g.ldb, ncols * sizeof(float));
      bs = p;
    }
    for (int i0 = 0; i0 < g.M; i0 += MR) {
      const KSlice ks{k0, k1, k0 == 0, k1 >= g.K, part ? part + (size_t)i0 * 16 * NV : nullptr};
      pick_strided_tile<NV>(std::min(MR, g.M - i0), std::make_integer_sequence<int, MR>())(
          gs, g.A + i0 * g.ars, bs, C + i0 * g.ldc, g.bias ? g.bias + i0 : nullptr,
          g.finish.act_output ? g.finish.act_output + i0 * g.finish.ld_act_output : nullptr, ncols,
          ks);
    }
  }
}

// Column blocks of 64 (6-row tiles), 48 or 32 columns (8-row tiles), or 16 (16-row tiles): 16 to
// 24 accumulator registers. The widths are chosen to waste the fewest lanes on N's last
// columns (N = 100: 64 + 48 rather than 32 + 32 + 32 + 16).
void gemm_strided(const StridedGemm& g) {
  if (g.M <= 0 || g.N <= 0) return;
  for (int j0 = 0; j0 < g.N;) {
    const int left = g.N - j0;
    const int vecs = (left + 15) / 16;  // 16-float vectors still to cover
    // 4 vectors while more than 4 remain or exactly 4; then 3, 2 or 1 for the rest. 4-vector
    // blocks use 6-row tiles, which fit few rows badly: up to 16 rows (a convolution with 16
    // output channels), 3 at most (measured: 16 x 57600 x 25 256 -> 227 us; 32 rows are faster
    // with 6-row tiles)
    int nv = vecs >= 4 && vecs != 5 ? 4 : vecs == 5 ? 3 : vecs;
    if (nv == 4 && g.M <= 16 && g.M % 6 != 0) nv = 3;
    const int ncols = std::min(16 * nv, left);
    StridedGemm gj = g;  // the finish's operands at the block's columns
    if (gj.finish.col_bias) gj.finish.col_bias += j0;
    if (gj.finish.act_output) gj.finish.act_output += j0;
    switch (nv) {
      case 4: strided_column_block<6, 4>(gj, g.B + j0, g.C + j0, ncols); break;
      case 3: strided_column_block<8, 3>(gj, g.B + j0, g.C + j0, ncols); break;
      case 2: strided_column_block<8, 2>(gj, g.B + j0, g.C + j0, ncols); break;
      default: strided_column_block<16, 1>(gj, g.B + j0, g.C + j0, ncols); break;
    }
    j0 += ncols;
  }
}

#if defined(__AVX512F__)
// sgemm through gemm_strided when op(B) (K x N) fits in L2 (the Linear layers of small networks),
// or when A has so few rows that packing B would cost as much as using it (M <= 64: a tile row
// band reads each B panel from L2 at most 8 times). op(A) is read in place; op(B) is read in
// place, or, when trans_b, each thread transposes the columns of op(B) it uses into its own
// buffer (up to 16 MB; beyond that, packing). Threads take contiguous bands of rows (or of
// column blocks, when that balances better, and always with trans_b): every C element is still
// summed by one tile over all of K in order, so any thread count gives the same bits.
static constexpr size_t STRIDED_MAX_B = size_t(1) << 18;  // floats of op(B) in L2: 1 MB
static constexpr size_t STRIDED_MAX_BT = size_t(1) << 22;  // floats of a transposed op(B): 16 MB
static constexpr int kTransposedChunk = 512;  // K of a chunk of op(B) past STRIDED_MAX_B

static bool use_strided(bool trans_b, int M, int N, int K) {
  const size_t nk = (size_t)N * K;
  return nk <= STRIDED_MAX_B || (M <= 64 && (!trans_b || nk <= STRIDED_MAX_BT));
}

// The lane sums of 16 vectors: lane j of the result = the sum of v[j]'s 16 lanes. Four rounds
// of pairwise adds, each halving the vectors and the lanes that still hold partial sums (45
// shuffles and adds for the 16 vectors; the same tree, so the same bits, for every row).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // as transpose_block16
static inline __m512 sum_lanes16(const __m512* v) {
  __m512 t[8], u[4], w[2];
#pragma GCC unroll 8
  for (int p = 0; p < 8; p++)  // t[p], each 128-bit lane: v[2p], v[2p+1] summed in lane pairs
    t[p] = _mm512_add_ps(_mm512_unpacklo_ps(v[2 * p], v[2 * p + 1]),
                         _mm512_unpackhi_ps(v[2 * p], v[2 * p + 1]));
#pragma GCC unroll 4
  for (int q = 0; q < 4; q++)  // u[q], each 128-bit lane: that lane's sums of v[4q] .. v[4q+3]
    u[q] = _mm512_add_ps(_mm512_shuffle_ps(t[2 * q], t[2 * q + 1], 0x44),
                         _mm512_shuffle_ps(t[2 * q], t[2 * q + 1], 0xEE));
#pragma GCC unroll 2
  for (int r = 0; r < 2; r++)  // w[r]: u[2r] and u[2r+1] with their 128-bit lanes added in pairs
    w[r] = _mm512_add_ps(_mm512_shuffle_f32x4(u[2 * r], u[2 * r + 1], 0x88),
                         _mm512_shuffle_f32x4(u[2 * r], u[2 * r + 1], 0xDD));
  return _mm512_add_ps(_mm512_shuffle_f32x4(w[0], w[1], 0x88),
                       _mm512_shuffle_f32x4(w[0], w[1], 0xDD));
}
#pragma GCC diagnostic pop

// Rows [i0, i1) of C (N <= 16 columns) = alpha * A @ Bt^T + beta * C, then g.finish: each element
// the dot product of A's row i (K floats in place, rows g.ars apart) with Bt's row j (op(B)'s
// column j, zero-padded to whole vectors, rows ldbt apart), 16 k at a time into one accumulator
// per column (lane l sums the k = l mod 16 in order), whose lanes sum_lanes16 then adds.
template <int N>
static void dot_rows(const StridedGemm& g, const float* Bt, idx ldbt, int i0, int i1) {
  const int nv = (g.K + 15) / 16;
  const __mmask16 k_tail = (__mmask16)((1u << (g.K - 16 * (nv - 1))) - 1);
  const __mmask16 cols = (__mmask16)((1u << N) - 1);
  const __m512 va = _mm512_set1_ps(g.alpha), vb = _mm512_set1_ps(g.beta);
  const __m512 col_bias =
      g.finish.col_bias ? _mm512_maskz_loadu_ps(cols, g.finish.col_bias) : _mm512_setzero_ps();
  for (int i = i0; i < i1; i++) {
    __m512 acc[16];
#pragma GCC unroll 16
    for (int j = 0; j < 16; j++) acc[j] = _mm512_setzero_ps();
    const float* a = g.A + i * g.ars;
    auto add_vector = [&](int v, __m512 av) {
#pragma GCC unroll 16
      for (int j = 0; j < N; j++)
        acc[j] = _mm512_fmadd_ps(av, _mm512_load_ps(Bt + j * ldbt + 16 * v), acc[j]);
    };
    int v = 0;
    for (; v + 1 < nv; v++) add_vector(v, _mm512_loadu_ps(a + 16 * v));
    add_vector(v, _mm512_maskz_loadu_ps(k_tail, a + 16 * v));
    float* c = g.C + i * g.ldc;
    __m512 out = _mm512_mul_ps(va, sum_lanes16(acc));
    if (g.beta != 0.0f) out = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(cols, c), out);
    if (g.finish.col_bias) out = _mm512_add_ps(out, col_bias);
    _mm512_mask_storeu_ps(c, cols, out);
    finish_rows(g.finish.act, c, g.ldc,
                g.finish.act_output ? g.finish.act_output + i * g.finish.ld_act_output : nullptr,
                g.finish.ld_act_output, 1, N);
  }
}

using DotRowsFn = void (*)(const StridedGemm&, const float*, idx, int, int);
template <int... J>
static DotRowsFn pick_dot_rows(int n, std::integer_sequence<int, J...>) {
  static constexpr DotRowsFn table[] = {&dot_rows<J + 1>...};
  return table[n - 1];
}

// Few columns (N <= 16) from A's rows in place: dot products (dot_rows) waste no lanes on N, and
// pay a lane sum per row; worth it when their vectors, N per 16 k, plus that sum (counted as 16)
// are fewer than the K vector FMAs a row takes in the column tiles (N = 10, K = 100: 86 against
// 100; measured 2.7 against 4.0 us on one Zen 4 core). Op(B)^T, padded, must fit in L2.
static bool use_dot_rows(bool trans_a, int N, int K) {
  const size_t vecs = (size_t)(K + 15) / 16;
  return !trans_a && N <= 16 && (size_t)N * vecs + 16 < (size_t)K &&
         (size_t)N * vecs * 16 <= STRIDED_MAX_B;
}

static void sgemm_dot_rows(bool trans_b, int M, int N, int K, float alpha, const float* A, int lda,
                           const float* B, int ldb, float beta, float* C, int ldc, int nthreads,
                           const GemmEpilogue* ep) {
  // Bt (N, ldbt) = op(B)^T with zeros past K (the masked-off lanes of A's last vector multiply
  // them: they must be finite)
  static thread_local PackBuffer bt_buf;
  const idx ldbt = (K + 15) / 16 * 16;
  float* Bt = bt_buf.get((size_t)N * ldbt);
  if (trans_b)
    for (int j = 0; j < N; j++) std::memcpy(Bt + j * ldbt, B + (size_t)j * ldb, K * sizeof(float));
  else
    transpose(Bt, ldbt, B, ldb, K, N);
  for (int j = 0; j < N; j++) std::fill(Bt + j * ldbt + K, Bt + (j + 1) * ldbt, 0.0f);
  StridedGemm g{M, N, K, A, lda, 1, nullptr, 0, C, ldc, alpha, beta, nullptr};
  if (ep) g.finish = *ep;
  const DotRowsFn rows = pick_dot_rows(N, std::make_integer_sequence<int, 16>());
  parallel_region(std::min(nthreads, M / 8), [&] {
    const auto [i0, i1] = part_of(M, omp_get_thread_num(), omp_get_num_threads());
    rows(g, Bt, ldbt, (int)i0, (int)i1);
  });
}

static void sgemm_strided(bool trans_a, bool trans_b, int M, int N, int K, float alpha,
                          const float* A, int lda, const float* B, int ldb, float beta, float* C,
                          int ldc, int nthreads, const GemmEpilogue* ep = nullptr) {
  // C = alpha * A^T op(B) + beta * C with at most 16 columns (a Linear layer's dW = x^T dy with
  // few outputs): one vector of C's columns per tile would take a broadcast per FMA, so the
  // product is taken the other way round, T (N, M) = op(B)^T A, whose rows are A's rows (M wide,
  // in vectors): T = alpha * T + beta * C^T in C's transposed form, then C = T^T. Each element is
  // still one tile's sum over k in order. (The inner call has M >= 32 columns: no recursion.)
  if (trans_a && N <= 16 && M >= 32 && !ep) {  // (a finish would need C's own layout)
    static thread_local PackBuffer t_buf;
    float* T = t_buf.get((size_t)N * M);
    if (beta != 0.0f) transpose(T, M, C, ldc, M, N);  // beta 0: T's contents are never read
    sgemm_strided(!trans_b, false, N, M, K, alpha, B, ldb, A, lda, beta, T, M, nthreads);
    transpose(C, ldc, T, M, N, M);
    return;
  }
  if (use_dot_rows(trans_a, N, K)) {
    sgemm_dot_rows(trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, nthreads, ep);
    return;
  }
  // Balance: bands of 8-row tiles or of 32-column blocks, whichever splits more evenly. With
  // trans_b, always columns (in 16s): each thread transposes just its own rows of B, into its
  // own buffer, so no transposed data crosses between cores.
  const int row_units = (M + 7) / 8, col_units = trans_b ? (N + 15) / 16 : (N + 31) / 32;
  auto waste = [&](int units) { return (double)((units + nthreads - 1) / nthreads) * nthreads / units; };
  // Split rows, and every thread reads all of op(B); split columns, and every thread reads all of
  // op(A) (they share K, so N > M means op(B) is the larger). Rows when op(A) is the larger and
  // they balance no worse; when op(B) is, only if columns would balance more than 10 % worse (a
  // 32 x 6400 x 400 convolution product split by rows read its 10 MB op(B) from L3 twice).
  const bool b_larger = (size_t)N > (size_t)M;
  const bool split_rows =
      !trans_b && (b_larger ? waste(row_units) < waste(col_units) * 0.9
                            : waste(row_units) <= waste(col_units));
  const int units = split_rows ? row_units : col_units, width = trans_b ? 16 : 32;
  parallel_region(std::min(nthreads, units), [&] {
    const auto [part0, part1] = part_of(units, omp_get_thread_num(), omp_get_num_threads());
    const int u0 = (int)part0, u1 = (int)part1;
    StridedGemm g{M, N, K, A, trans_a ? 1 : lda, trans_a ? lda : 1, B, ldb, C, ldc, alpha, beta,
                  nullptr};
    if (ep) g.finish = *ep;
    if (split_rows) {
      const int i0 = u0 * 8, i1 = std::min(M, u1 * 8);
      g.M = std::max(0, i1 - i0);
      g.A += (size_t)i0 * g.ars;
      g.C += (size_t)i0 * ldc;
      if (g.finish.act_output) g.finish.act_output += (size_t)i0 * g.finish.ld_act_output;
      gemm_strided(g);
    } else {
      const int j0 = u0 * width, j1 = std::min(N, u1 * width);
      g.N = std::max(0, j1 - j0);
      g.C += j0;
      if (g.finish.col_bias) g.finish.col_bias += j0;
      if (g.finish.act_output) g.finish.act_output += j0;
      if (trans_b) {  // op(B)[:, j0:j1] (K, n) = B[j0:j1, :]^T, rows ldt apart
        // An op(B) past STRIDED_MAX_B (a convolution's dW: K = 6400 positions) is taken in
        // chunks of K, each transposed into the same buffer and multiplied into C (the first
        // with beta, the others adding to it): the transposed copy then never goes out to
        // memory and back. The chunks follow from the shape alone (any thread count sums alike).
        static thread_local PackBuffer bt_buf;
        const idx ldt = (g.N + 15) / 16 * 16;
        const int kc = (size_t)K * N > STRIDED_MAX_B ? kTransposedChunk : K;  // shape alone
        float* bt = bt_buf.get((size_t)kc * ldt + 16);
        for (int k0 = 0; k0 < K; k0 += kc) {
          StridedGemm part = g;
          part.K = std::min(kc, K - k0);
          part.A += (size_t)k0 * g.aks;
          part.beta = k0 == 0 ? beta : 1.0f;
          transpose(bt, ldt, B + (size_t)j0 * ldb + k0, ldb, g.N, part.K);
          part.B = bt;
          part.ldb = ldt;
          gemm_strided(part);
        }
      } else {
        g.B += j0;
        gemm_strided(g);
      }
    }
  });
}

#endif

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

// Threads for a product of this size: below about 5e5 flops the fork costs more than it saves.
static int gemm_threads(int M, int N, int K) {
  return 2.0 * M * N * (double)K < 5e5 ? 1 : get_num_threads();
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
  const int nthreads = gemm_threads(M, N, K);
#if defined(__AVX512F__)
  if (use_strided(trans_b, M, N, K)) {
    sgemm_strided(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, nthreads);
    return;
  }
#endif
  static thread_local PackBuffer b_buf;

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
          const auto [q_begin, q_end] = part_of(npanels, g, ngroups);
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

// The strided path finishes each tile in its epilogue; other shapes (and builds without AVX-512)
// run sgemm (onto the bias rows, when there is a bias) and finish C's rows afterwards, shared out
// among the threads from kFinishParallel elements on (as the elementwise activation kernels do).
static constexpr size_t kFinishParallel = size_t(1) << 16;
void sgemm_fused(bool trans_a, bool trans_b, int M, int N, int K, const float* A, int lda,
                 const float* B, int ldb, float* C, int ldc, const GemmEpilogue& e) {
  if (M <= 0 || N <= 0) return;
#if defined(__AVX512F__)
  if (K > 0 && !use_k_split(M, N, K) && use_strided(trans_b, M, N, K)) {
    sgemm_strided(trans_a, trans_b, M, N, K, 1.0f, A, lda, B, ldb, 0.0f, C, ldc,
                  gemm_threads(M, N, K), &e);
    return;
  }
#endif
  if (e.col_bias)
    for (int i = 0; i < M; i++) std::memcpy(C + (size_t)i * ldc, e.col_bias, N * sizeof(float));
  sgemm(trans_a, trans_b, M, N, K, 1.0f, A, lda, B, ldb, e.col_bias ? 1.0f : 0.0f, C, ldc);
  if (e.act == Activation::none) return;
  parallel_region((size_t)M * N >= kFinishParallel ? get_num_threads() : 1, [&] {
    const auto [i0, i1] = part_of(M, omp_get_thread_num(), omp_get_num_threads());
    for (long i = i0; i < i1; i++)
      finish_rows(e.act, C + (size_t)i * ldc, ldc,
                  e.act_output ? e.act_output + (size_t)i * e.ld_act_output : nullptr,
                  e.ld_act_output, 1, N);
  });
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

}  // namespace nnfast
