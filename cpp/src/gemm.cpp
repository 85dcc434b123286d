// SGEMM (packed panels + register-blocked micro-kernel, or register tiles on the operands in
// place) and matmul, written once in simd.h's vectors of W floats.
//
// Layout: row-major throughout. sgemm computes C = alpha * op(A) op(B) + beta * C.
// Two paths, chosen by the shape alone:
//  - unpacked (gemm_strided): when op(B) fits in L2 or A has at most 64 rows,
//    register tiles read op(A) and op(B) in place (with trans_b, each thread transposes its own
//    columns of op(B) once) and sum all of K, a slice at a time for a long K, continued exactly;
//    below that size packing costs as much as the product (see sgemm_strided). With at most W
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

#include "simd.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <utility>
#include <vector>

namespace nnfast {
inline namespace NNFAST_ISA {

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
// Micro-kernel geometry: MR rows of A x NR = 2 vectors of B's columns held in registers, 2 MR
// accumulators (16 of AVX-512's 32 registers; 12 of the 16 of AVX2 and the baseline).
static constexpr int MR = simd::W == 16 ? 8 : 6;
static constexpr int NR = 2 * simd::W;
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
// C[r, c] = (first_slice ? beta * C : C) + alpha * acc for r < mr, c < nr.
// `first_slice` is true for the first K slice (apply beta), false afterwards (accumulate).
static void micro_kernel(int kc, const float* a, const float* b, float* C, int ldc, int mr, int nr,
                         float alpha, float beta, bool first_slice) {
  using namespace simd;
  V acc[MR][2];
  for (int r = 0; r < MR; r++) acc[r][0] = acc[r][1] = zero();
  for (int k = 0; k < kc; k++) {
    const V b0 = loadu(b), b1 = loadu(b + W);
    for (int r = 0; r < MR; r++) {
      const V ar = set1(a[r]);
      acc[r][0] = fmadd(ar, b0, acc[r][0]);
      acc[r][1] = fmadd(ar, b1, acc[r][1]);
    }
    a += MR;
    b += NR;
  }
  const V va = set1(alpha), vb = set1(beta);
  const Mask m0 = first(std::min(nr, W)), m1 = first(std::clamp(nr - W, 0, W));
  for (int r = 0; r < mr; r++) {
    float* c = C + (size_t)r * ldc;
    V r0 = mul(va, acc[r][0]), r1 = mul(va, acc[r][1]);
    if (!first_slice) {
      r0 = add(r0, loadu(m0, c));
      r1 = add(r1, loadu(m1, c + W));
    } else if (beta != 0.0f) {
      r0 = fmadd(vb, loadu(m0, c), r0);
      r1 = fmadd(vb, loadu(m1, c + W), r1);
    }
    storeu(c, m0, r0);
    storeu(c + W, m1, r1);
  }
}


// ---------------------------------------------------------------------------------------------
// Unpacked path (gemm_strided): no packing at all. A tile of MR rows x W*NV columns of C stays
// in registers over the whole of K, broadcasting A(i, k) from wherever it lives and loading
// W-float pieces of B's row k, then C is written once. Used when B fits in cache (small and
// skinny products: every Linear layer of an MNIST network, a convolution's per-image products),
// where packing would cost as much as the product.

using idx = std::ptrdiff_t;

// dst (cols, rows) = src (rows, cols)^T, W x W blocks at a time (simd::transpose_block).
void transpose(float* dst, idx ldd, const float* src, idx lds, int rows, int cols) {
  constexpr int T = simd::W;
  for (int i0 = 0; i0 < rows; i0 += T)
    for (int j0 = 0; j0 < cols; j0 += T)
      simd::transpose_block(dst + (size_t)j0 * ldd + i0, ldd, src + (size_t)i0 * lds + j0, lds,
                            std::min(T, rows - i0), std::min(T, cols - j0));
}

// A slice [k0, k1) of K for one tile: with a long K, each column block is multiplied one slice
// at a time (all row tiles per slice, so the slice of B stays in L1), the tile's running sums
// kept between slices in `part` (rows W*NV floats apart), continued exactly where they stopped:
// every C element is still summed over k in order, so slicing does not change a bit.
struct KSlice {
  int k0, k1;
  bool first, last;
  float* part;
};

// One tile: rows [0, MR) of A and C (pointers already offset, act_out too, g.finish.col_bias to
// the tile's columns), ncols columns of B / C over the k of slice ks, W*(NV-1) < ncols <= W*NV:
// only the last of the NV vectors of a row may be partial (masked).
template <int MR, int NV>
static void strided_tile(const StridedGemm& g, const float* A, const float* B, float* C,
                         const float* bias, const float* act_out, int ncols, const KSlice& ks) {
  using namespace simd;
  const idx ars = g.ars, aks = g.aks, ldb = g.ldb, ldc = g.ldc;
  constexpr int LDP = W * NV;  // row stride of the partial sums
  const Mask tail = first(ncols - W * (NV - 1));
  // vector v of a row of B or C at p: whole, or the tile's last, masked
  auto load_v = [&](const float* p, int v) { return v + 1 < NV ? loadu(p) : loadu(tail, p); };
  V acc[MR][NV];
#pragma GCC unroll 32
  for (int r = 0; r < MR; r++)
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) acc[r][v] = ks.first ? zero() : load(ks.part + r * LDP + W * v);
  const float* bk = B;  // row k of the slice of B
  for (int k = ks.k0; k < ks.k1; k++, bk += ldb) {
    V b[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) b[v] = load_v(bk + W * v, v);
    const float* ak = A + k * aks;
#pragma GCC unroll 32
    for (int r = 0; r < MR; r++) {
      const V a = set1(ak[r * ars]);
#pragma GCC unroll 4
      for (int v = 0; v < NV; v++) acc[r][v] = fmadd(a, b[v], acc[r][v]);
    }
  }
  if (!ks.last) {
#pragma GCC unroll 32
    for (int r = 0; r < MR; r++)
#pragma GCC unroll 4
      for (int v = 0; v < NV; v++) store(ks.part + r * LDP + W * v, acc[r][v]);
    return;
  }
  const V va = set1(g.alpha), vb = set1(g.beta);
#pragma GCC unroll 32
  for (int r = 0; r < MR; r++)
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) {
      float* c = C + r * ldc + W * v;
      V out = mul(va, acc[r][v]);
      if (g.beta != 0.0f) out = fmadd(vb, load_v(c, v), out);
      if (bias) out = add(out, set1(bias[r]));
      if (g.finish.col_bias) out = add(out, load_v(g.finish.col_bias + W * v, v));
      if (v + 1 < NV) storeu(c, out);
      else storeu(c, tail, out);
    }
  activation_rows(g.finish.act, C, ldc, act_out, g.finish.ld_act_output, MR, ncols);
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
// kStridedSlice x W*NV floats, then stays in L1 across the row tiles).
static constexpr int kStridedSlice = 128;
static constexpr int kStridedSliceFrom = 256;  // K at which slicing starts to pay

// The column blocks' tiles (column_block): at most kMaxTileRows rows, at least kMinTileRows, and
// at most kMaxBlockFloats = W * NV columns.
static constexpr int kMaxTileRows = simd::W == 16 ? 16 : 12;
static constexpr int kMinTileRows = 6;
static constexpr int kMaxBlockFloats = simd::W * (simd::W == 16 ? 4 : 2);

// Whether a column block copies its slice of B into a panel (strided_column_block).
static bool strided_panel(bool sliced, idx ldb, int M, int MR) {
  return !sliced && ldb % 128 == 0 && M >= 4 * MR;
}

// Scratch (floats) of gemm_strided on M rows and any depth up to K, with B's rows ldb apart
// (ldb 0: any): a column block's running sums over slices of K ((M + MR) rows of W * NV floats),
// or its copied panel of B (K rows of W * NV), never both.
size_t gemm_strided_workspace_size(int M, int K, idx ldb) {
  const size_t part = K >= kStridedSliceFrom ? ((size_t)M + kMaxTileRows) * kMaxBlockFloats : 0;
  const int depth = std::clamp(K, 1, kStridedSliceFrom - 1);  // an unsliced K
  const size_t panel =
      strided_panel(false, ldb, M, kMinTileRows) ? (size_t)depth * kMaxBlockFloats : 0;
  return round16(std::max(part, panel));
}

// One column block of C (W*(NV-1) < ncols <= W*NV columns from B and C): for each slice of K,
// tiles of MR rows down all M rows, the last taking the rows that remain. scratch: 64-byte
// aligned, gemm_strided_workspace_size(M, K, ldb) floats.
template <int MR, int NV>
static void strided_column_block(const StridedGemm& g, const float* B, float* C, int ncols,
                                 float* scratch) {
  static_assert(MR <= kMaxTileRows && MR >= kMinTileRows && simd::W * NV <= kMaxBlockFloats);
  const bool sliced = g.K >= kStridedSliceFrom;
  float* part = sliced ? scratch : nullptr;
  const int step = sliced ? kStridedSlice : std::max(g.K, 1);
  // B's rows a multiple of 512 bytes apart fall on at most 8 of L1's 64 sets per line of the
  // block, so a slice of them (up to 128 rows) cannot stay in L1 (784 x 256 x 100 with B's 256
  // columns): the slice is copied into a panel first, rows W*NV floats apart,
  // when there are rows enough (4 tiles) to pay for the copy.
  constexpr int LDP = simd::W * NV;
  const bool panel = strided_panel(sliced, g.ldb, g.M, MR);
  StridedGemm gs = g;
  if (panel) gs.ldb = LDP;
  for (int k0 = 0; k0 < std::max(g.K, 1); k0 += step) {
    const int k1 = std::min(g.K, k0 + step);
    const float* bs = B + (size_t)k0 * g.ldb;  // the slice's rows of B
    if (panel) {
      float* p = scratch;
      for (int k = k0; k < k1; k++)
        std::memcpy(p + (size_t)(k - k0) * LDP, B + (size_t)k * g.ldb, ncols * sizeof(float));
      bs = p;
    }
    for (int i0 = 0; i0 < g.M; i0 += MR) {
      const KSlice ks{k0, k1, k0 == 0, k1 >= g.K, part ? part + (size_t)i0 * LDP : nullptr};
      pick_strided_tile<NV>(std::min(MR, g.M - i0), std::make_integer_sequence<int, MR>())(
          gs, g.A + i0 * g.ars, bs, C + i0 * g.ldc, g.bias ? g.bias + i0 : nullptr,
          g.finish.act_output ? g.finish.act_output + i0 * g.finish.ld_act_output : nullptr, ncols,
          ks);
    }
  }
}

// Column blocks of NV vectors, tiles of MR rows: with AVX-512's 32 registers, blocks of 4
// vectors (6-row tiles), 3 or 2 (8-row tiles), or 1 (16-row tiles), 16 to 24 accumulators; with
// 16 registers, 2 vectors (6-row tiles) or 1 (12-row tiles), 12 accumulators. The widths are
// chosen to waste the fewest lanes on N's last columns (AVX-512, N = 100: 64 + 48 rather than
// 32 + 32 + 32 + 16).
//
// The vectors of the next column block, with `vecs` vectors of columns still to cover and M rows.
// AVX-512: 4 while more than 4 remain or exactly 4; then 3, 2 or 1 for the rest. 4-vector blocks
// use 6-row tiles, which fit few rows badly: up to 16 rows (a convolution with 16 output
// channels), not a multiple of 6, take 3 at most (8-row tiles).
static int block_vectors(int vecs, int M) {
  if constexpr (simd::W == 16) {
    int nv = vecs >= 4 && vecs != 5 ? 4 : vecs == 5 ? 3 : vecs;
    if (nv == 4 && M <= 16 && M % 6 != 0) nv = 3;
    return nv;
  } else {
    return vecs >= 2 ? 2 : 1;
  }
}

// The column block of nv vectors (block_vectors) with its tile height.
static void column_block(int nv, const StridedGemm& g, const float* B, float* C, int ncols,
                         float* scratch) {
  if constexpr (simd::W == 16) {
    switch (nv) {
      case 4: strided_column_block<6, 4>(g, B, C, ncols, scratch); break;
      case 3: strided_column_block<8, 3>(g, B, C, ncols, scratch); break;
      case 2: strided_column_block<8, 2>(g, B, C, ncols, scratch); break;
      default: strided_column_block<16, 1>(g, B, C, ncols, scratch); break;
    }
  } else {
    if (nv == 2) strided_column_block<6, 2>(g, B, C, ncols, scratch);
    else strided_column_block<12, 1>(g, B, C, ncols, scratch);
  }
}

// C = alpha * op(A) op(B) + beta * C, then g.finish, with op(A) and op(B) in place: column
// blocks left to right (block_vectors wide), each down all of M (strided_column_block).
void gemm_strided(const StridedGemm& g, float* scratch) {
  constexpr int W = simd::W;
  if (g.M <= 0 || g.N <= 0) return;
  for (int j0 = 0; j0 < g.N;) {
    const int left = g.N - j0;
    const int nv = block_vectors((left + W - 1) / W, g.M);
    const int ncols = std::min(W * nv, left);
    StridedGemm gj = g;  // the finish's operands at the block's columns
    if (gj.finish.col_bias) gj.finish.col_bias += j0;
    if (gj.finish.act_output) gj.finish.act_output += j0;
    column_block(nv, gj, g.B + j0, g.C + j0, ncols, scratch);
    j0 += ncols;
  }
}

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

// Rows [i0, i1) of C (N <= W columns) = alpha * A @ Bt^T + beta * C, then g.finish: each element
// the dot product of A's row i (K floats in place, rows g.ars apart) with Bt's row j (op(B)'s
// column j, zero-padded to whole vectors, rows ldbt apart), W k at a time into one accumulator
// per column (lane l sums the k = l mod W in order), whose lanes simd::sum_lanes then adds.
template <int N>
static void dot_rows(const StridedGemm& g, const float* Bt, idx ldbt, int i0, int i1) {
  using namespace simd;
  const Span k_span = span(g.K);
  const Mask cols = first(N);
  const V va = set1(g.alpha), vb = set1(g.beta);
  const V col_bias = g.finish.col_bias ? loadu(cols, g.finish.col_bias) : zero();
  for (int i = i0; i < i1; i++) {
    V acc[W];
#pragma GCC unroll 16
    for (int j = 0; j < W; j++) acc[j] = zero();
    const float* a = g.A + i * g.ars;
    auto add_vector = [&](int v, V av) {
#pragma GCC unroll 16
      for (int j = 0; j < N; j++) acc[j] = fmadd(av, load(Bt + j * ldbt + W * v), acc[j]);
    };
    int v = 0;
    for (; v + 1 < k_span.count; v++) add_vector(v, loadu(a + W * v));
    add_vector(v, loadu(k_span.tail, a + W * v));
    float* c = g.C + i * g.ldc;
    V out = mul(va, sum_lanes(acc));
    if (g.beta != 0.0f) out = fmadd(vb, loadu(cols, c), out);
    if (g.finish.col_bias) out = add(out, col_bias);
    storeu(c, cols, out);
    const float* act_out = g.finish.act_output;
    const idx ld_act = g.finish.ld_act_output;
    activation_rows(g.finish.act, c, g.ldc, act_out ? act_out + i * ld_act : nullptr, ld_act, 1, N);
  }
}

using DotRowsFn = void (*)(const StridedGemm&, const float*, idx, int, int);
template <int... J>
static DotRowsFn pick_dot_rows(int n, std::integer_sequence<int, J...>) {
  static constexpr DotRowsFn table[] = {&dot_rows<J + 1>...};
  return table[n - 1];
}

// Few columns (N <= W) from A's rows in place: dot products (dot_rows) waste no lanes on N, and
// pay a lane sum per row; worth it when their vectors, N per W k, plus that sum (counted as W)
// are fewer than the K vector FMAs a row takes in the column tiles (AVX-512, N = 10, K = 100: 86
// against 100). Op(B)^T, padded, must fit in L2.
static idx dot_rows_ld(int K) { return (K + 15) / 16 * 16; }  // Bt's rows: whole cache lines
static bool use_dot_rows(bool trans_a, int N, int K) {
  constexpr int W = simd::W;
  const size_t vecs = (size_t)(K + W - 1) / W;
  return !trans_a && N <= W && (size_t)N * vecs + W < (size_t)K &&
         (size_t)N * dot_rows_ld(K) <= STRIDED_MAX_B;
}

// The workspace: Bt (N, ldbt) = op(B)^T with zeros past K (the masked-off lanes of A's last
// vector multiply them: they must be finite), dot_rows_floats(N, K) floats.
static size_t dot_rows_floats(int N, int K) { return (size_t)N * dot_rows_ld(K); }
static void sgemm_dot_rows(bool trans_b, int M, int N, int K, float alpha, const float* A, int lda,
                           const float* B, int ldb, float beta, float* C, int ldc, int nthreads,
                           float* Bt, const GemmEpilogue* ep) {
  const idx ldbt = dot_rows_ld(K);
  if (trans_b)
    for (int j = 0; j < N; j++) std::memcpy(Bt + j * ldbt, B + (size_t)j * ldb, K * sizeof(float));
  else
    transpose(Bt, ldbt, B, ldb, K, N);
  for (int j = 0; j < N; j++) std::fill(Bt + j * ldbt + K, Bt + (j + 1) * ldbt, 0.0f);
  StridedGemm g{M, N, K, A, lda, 1, nullptr, 0, C, ldc, alpha, beta, nullptr};
  if (ep) g.finish = *ep;
  const DotRowsFn rows = pick_dot_rows(N, std::make_integer_sequence<int, simd::W>());
  parallel_region(std::min(nthreads, M / 8), [&] {
    const auto [i0, i1] = part_of(M, omp_get_thread_num(), omp_get_num_threads());
    rows(g, Bt, ldbt, (int)i0, (int)i1);
  });
}

static void sgemm_strided(bool trans_a, bool trans_b, int M, int N, int K, float alpha,
                          const float* A, int lda, const float* B, int ldb, float beta, float* C,
                          int ldc, int nthreads, float* ws, const GemmEpilogue* ep = nullptr);

// C = alpha * A^T op(B) + beta * C with at most W columns (a Linear layer's dW = x^T dy with
// few outputs): one vector of C's columns per tile would take a broadcast per FMA, so the
// product is taken the other way round, T (N, M) = op(B)^T A, whose rows are A's rows (M wide,
// in vectors): T = alpha * T + beta * C^T in C's transposed form, then C = T^T. Each element is
// still one tile's sum over k in order. (The inner call has M >= 2W columns: no recursion.)
// The workspace: T (transposed_product_floats(M, N)), then the inner call's.
static bool use_transposed_product(bool trans_a, int M, int N, bool epilogue) {
  return trans_a && N <= simd::W && M >= 2 * simd::W && !epilogue;  // (a finish needs C's layout)
}
static size_t transposed_product_floats(int M, int N) { return round16((size_t)N * M); }
static void sgemm_strided_transposed(bool trans_b, int M, int N, int K, float alpha,
                                     const float* A, int lda, const float* B, int ldb, float beta,
                                     float* C, int ldc, int nthreads, float* ws) {
  float* T = ws;
  if (beta != 0.0f) transpose(T, M, C, ldc, M, N);  // beta 0: T's contents are never read
  sgemm_strided(!trans_b, false, N, M, K, alpha, B, ldb, A, lda, beta, T, M, nthreads,
                ws + transposed_product_floats(M, N));
  transpose(C, ldc, T, M, N, M);
}

// Whether threads split gemm_strided's rows (bands of 8-row tiles) rather than its columns
// (bands of `width`-column blocks), whichever splits more evenly. Split rows, and every thread
// reads all of op(B); split columns, and every thread reads all of op(A) (they share K, so
// N > M means op(B) is the larger). Rows when op(A) is the larger and they balance no worse;
// when op(B) is, only if columns would balance more than 10 % worse (a 32 x 6400 x 400
// convolution product split by rows reads its 10 MB op(B) from L3 twice). With trans_b, always
// columns: each thread transposes just its own rows of B, into its own buffer, so no transposed
// data crosses between cores.
static bool strided_split_rows(bool trans_b, int M, int N, int width, int nthreads) {
  const int row_units = (M + 7) / 8, col_units = (N + width - 1) / width;
  auto waste = [&](int units) {
    return (double)((units + nthreads - 1) / nthreads) * nthreads / units;
  };
  const bool b_larger = (size_t)N > (size_t)M;
  return !trans_b && (b_larger ? waste(row_units) < waste(col_units) * 0.9
                               : waste(row_units) <= waste(col_units));
}

// g restricted to rows [i0, i1) of op(A), C and the finish's act_output.
static StridedGemm with_rows(StridedGemm g, int i0, int i1) {
  g.M = std::max(0, i1 - i0);
  g.A += (size_t)i0 * g.ars;
  g.C += (size_t)i0 * g.ldc;
  if (g.finish.act_output) g.finish.act_output += (size_t)i0 * g.finish.ld_act_output;
  return g;
}

// g restricted to columns [j0, j1) of C and the finish's operands (op(B) left as it is).
static StridedGemm with_columns(StridedGemm g, int j0, int j1) {
  g.N = std::max(0, j1 - j0);
  g.C += j0;
  if (g.finish.col_bias) g.finish.col_bias += j0;
  if (g.finish.act_output) g.finish.act_output += j0;
  return g;
}

// Columns [j0, j1) of g (the whole product, N columns) with op(B) = B^T (B (N, K), rows ldb
// apart): this thread transposes its rows of B into its own buffer, rows ldt apart. An op(B)
// past STRIDED_MAX_B (a convolution's dW: K = 6400 positions) is taken in chunks of K, each
// transposed into the same buffer and multiplied into C (the first with beta, the others adding
// to it): the transposed copy then never goes out to memory and back. The chunks follow from
// the shape alone (any thread count sums alike). The scratch: the buffer
// (transposed_columns_floats), then gemm_strided's for a depth of the chunk.
static int transposed_chunk(int K, int N) {
  return (size_t)K * N > STRIDED_MAX_B ? kTransposedChunk : K;  // shape alone
}
static size_t transposed_columns_floats(int K, int N, int ncols) {
  return round16((size_t)std::min(transposed_chunk(K, N), K) * round16(ncols) + 16);
}
static void strided_columns_transposed(const StridedGemm& whole, const float* B, int ldb, int j0,
                                       int j1, float* scratch) {
  const int K = whole.K;
  const int kc = transposed_chunk(K, whole.N);
  const StridedGemm g = with_columns(whole, j0, j1);
  const idx ldt = (g.N + 15) / 16 * 16;
  float* bt = scratch;
  float* gemm_scratch = scratch + transposed_columns_floats(K, whole.N, g.N);
  for (int k0 = 0; k0 < K; k0 += kc) {
    StridedGemm part = g;
    part.K = std::min(kc, K - k0);
    part.A += (size_t)k0 * g.aks;
    part.beta = k0 == 0 ? g.beta : 1.0f;
    transpose(bt, ldt, B + (size_t)j0 * ldb + k0, ldb, g.N, part.K);
    part.B = bt;
    part.ldb = ldt;
    gemm_strided(part, gemm_scratch);
  }
}

// How the plain unpacked path shares out its work: `units` bands of 8 rows (rows) or column
// blocks `width` wide (strided_split_rows), among nt threads, each taking part_of the units.
struct StridedSplit {
  bool rows;
  int width, units, nt;
};
static StridedSplit strided_split(bool trans_b, int M, int N, int nthreads) {
  const int width = trans_b ? simd::W : 2 * simd::W;
  const bool rows = strided_split_rows(trans_b, M, N, width, nthreads);
  const int units = rows ? (M + 7) / 8 : (N + width - 1) / width;
  return {rows, width, units, std::min(nthreads, units)};
}

// Floats of a part's slice of the workspace on the plain unpacked path (a part has at most
// ceil(units / nt) units): gemm_strided's scratch for its rows (or all M), after, with trans_b,
// its transposed columns of B (strided_columns_transposed, gemm_strided's for any ldb then).
static size_t strided_part_floats(bool trans_b, int M, int N, int K, int ldb,
                                  const StridedSplit& sp) {
  const int most = (sp.units + sp.nt - 1) / sp.nt;
  if (sp.rows) return gemm_strided_workspace_size(std::min(M, most * 8), K, ldb);
  if (!trans_b) return gemm_strided_workspace_size(M, K, ldb);
  const int kc = std::min(transposed_chunk(K, N), K);
  return transposed_columns_floats(K, N, std::min(N, most * sp.width)) +
         gemm_strided_workspace_size(M, kc, 0);
}

// Floats of workspace the unpacked path (sgemm_strided) takes for this shape, by the same tests
// it chooses its way by.
static size_t strided_floats(bool trans_a, bool trans_b, int M, int N, int K, int lda, int ldb,
                             int nthreads, bool epilogue) {
  if (use_transposed_product(trans_a, M, N, epilogue))
    return transposed_product_floats(M, N) +
           strided_floats(!trans_b, false, N, M, K, ldb, lda, nthreads, false);
  if (use_dot_rows(trans_a, N, K)) return dot_rows_floats(N, K);
  const StridedSplit sp = strided_split(trans_b, M, N, nthreads);
  return (size_t)sp.nt * strided_part_floats(trans_b, M, N, K, ldb, sp);
}

// Units [u0, u1) of the plain unpacked path (g: the whole product) into C, with `scratch` the
// part's slice of the workspace.
static void strided_part(const StridedGemm& g, bool trans_b, const StridedSplit& sp, int u0,
                         int u1, float* scratch) {
  const int j0 = u0 * sp.width, j1 = std::min(g.N, u1 * sp.width);
  if (sp.rows) {
    gemm_strided(with_rows(g, u0 * 8, std::min(g.M, u1 * 8)), scratch);
  } else if (trans_b) {
    strided_columns_transposed(g, g.B, (int)g.ldb, j0, j1, scratch);
  } else {
    StridedGemm gj = with_columns(g, j0, j1);
    gj.B += j0;
    gemm_strided(gj, scratch);
  }
}

// The unpacked path (gemm_strided), its rows or columns shared out among the threads in
// contiguous bands (strided_split_rows); few columns take the transposed product or dot products
// instead. ws: strided_floats(...) floats, 64-byte aligned; the plain path's sp.nt parts each
// have a slice of it, part p the p-th (a team smaller than sp.nt, as a nested region gets, takes
// several parts a thread, one after the other in the thread's slice).
static void sgemm_strided(bool trans_a, bool trans_b, int M, int N, int K, float alpha,
                          const float* A, int lda, const float* B, int ldb, float beta, float* C,
                          int ldc, int nthreads, float* ws, const GemmEpilogue* ep) {
  if (use_transposed_product(trans_a, M, N, ep != nullptr)) {
    sgemm_strided_transposed(trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, nthreads, ws);
    return;
  }
  if (use_dot_rows(trans_a, N, K)) {
    sgemm_dot_rows(trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, nthreads, ws, ep);
    return;
  }
  const StridedSplit sp = strided_split(trans_b, M, N, nthreads);
  const size_t slice = strided_part_floats(trans_b, M, N, K, ldb, sp);
  StridedGemm g{M, N, K, A, trans_a ? 1 : lda, trans_a ? lda : 1, B, ldb, C, ldc, alpha, beta,
                nullptr};
  if (ep) g.finish = *ep;
  parallel_region(sp.nt, [&] {
    const int t = omp_get_thread_num();
    for (int part = t; part < sp.nt; part += omp_get_num_threads()) {
      const auto [u0, u1] = part_of(sp.units, part, sp.nt);
      strided_part(g, trans_b, sp, (int)u0, (int)u1, ws + (size_t)t * slice);
    }
  });
}

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
// count, so the result is the same for any number of threads. The chunks are short next to the
// K that qualifies, so that the threads get nearly equal shares of them (Linear 9216-128: 9
// chunks, 5 and 4 on 2 threads; chunks of 4096 made it 2 and 1, the last a quarter as deep),
// and one chunk's op(B) slice stays in L2.
static constexpr int KSPLIT_CHUNK = 1024;
static constexpr int KSPLIT_MIN_K = 8192;
static constexpr size_t KSPLIT_MAX_OUTPUT = 1 << 16;  // M * N at most (larger outputs tile well)

// Decided by the shape alone (never by the thread count), so every thread count sums alike.
// A chunk (K <= KSPLIT_CHUNK < KSPLIT_MIN_K) never qualifies again, so the split does not
// recurse.
static bool use_k_split(int M, int N, int K) {
  return K >= KSPLIT_MIN_K && (size_t)M * N <= KSPLIT_MAX_OUTPUT;
}

// The workspace: the chunks' partial products, then a slice for each thread, the workspace of
// its chunks' products (run on one thread each: inside the chunks' region).
static size_t k_split_partial_floats(int M, int N, int K) {
  return round16((size_t)(K + KSPLIT_CHUNK - 1) / KSPLIT_CHUNK * M * N);
}
static size_t k_split_chunk_floats(bool trans_a, bool trans_b, int M, int N, int K, int lda,
                                   int ldb) {
  const int last = K - (K - 1) / KSPLIT_CHUNK * KSPLIT_CHUNK;  // the last chunk's depth
  return std::max(sgemm_workspace_size(trans_a, trans_b, M, N, KSPLIT_CHUNK, lda, ldb, 1),
                  sgemm_workspace_size(trans_a, trans_b, M, N, last, lda, ldb, 1));
}

static void sgemm_k_split(bool trans_a, bool trans_b, int M, int N, int K, float alpha,
                          const float* A, int lda, const float* B, int ldb, float beta, float* C,
                          int ldc, float* ws, int nthreads) {
  const int chunks = (K + KSPLIT_CHUNK - 1) / KSPLIT_CHUNK;
  const size_t mn = (size_t)M * N;
  float* partial = ws;
  float* chunk_ws = ws + k_split_partial_floats(M, N, K);
  const size_t slice = k_split_chunk_floats(trans_a, trans_b, M, N, K, lda, ldb);
#pragma omp parallel for num_threads(nthreads) schedule(static)
  for (int c = 0; c < chunks; c++) {
    const int k0 = c * KSPLIT_CHUNK, kc = std::min(KSPLIT_CHUNK, K - k0);
    const float* a = trans_a ? A + (size_t)k0 * lda : A + k0;
    const float* b = trans_b ? B + k0 : B + (size_t)k0 * ldb;
    sgemm(trans_a, trans_b, M, N, kc, 1.0f, a, lda, b, ldb, 0.0f, partial + c * mn, N,
          chunk_ws + (size_t)omp_get_thread_num() * slice, 1);
  }
  // C's rows = alpha * (the chunks' partial rows added in chunk order) + beta * C, the sum built
  // in the first partial product, each row on one thread (threads as for elementwise work over
  // the partial products).
  const int sum_threads = std::min(nthreads, elementwise_threads((size_t)chunks * mn));
#pragma omp parallel for num_threads(sum_threads) schedule(static)
  for (int i = 0; i < M; i++) {
    float* sum = partial + (size_t)i * N;
    for (int c = 1; c < chunks; c++) {
      const float* p = partial + c * mn + (size_t)i * N;
#pragma omp simd
      for (int j = 0; j < N; j++) sum[j] += p[j];
    }
    float* crow = C + (size_t)i * ldc;
    if (beta == 0.0f)
      for (int j = 0; j < N; j++) crow[j] = alpha * sum[j];
    else
      for (int j = 0; j < N; j++) crow[j] = beta * crow[j] + alpha * sum[j];
  }
}

// Threads for a product of this size: below about 5e5 flops the fork costs more than it saves.
static int gemm_threads(int M, int N, int K, int num_threads) {
  return 2.0 * M * N * (double)K < 5e5 ? 1 : num_threads;
}

// Packed path, step 1 of a slice: op(B)[k0:k0+kc, j0:j0+nc] packed into npanels NR-wide panels
// at bp (panel q at bp + q*NR*kc); the panels are independent, so threads share them.
static void pack_b_panels(float* bp, bool trans_b, const float* B, int ldb, int k0, int kc,
                          int j0, int nc, int npanels, int nthreads) {
#pragma omp parallel for num_threads(nthreads) schedule(static) if (nthreads > 1 && npanels > 1)
  for (int q = 0; q < npanels; q++) {
    int cols = std::min(NR, nc - q * NR);
    pack_b(bp + (size_t)q * NR * kc, trans_b, B, ldb, k0, kc, j0 + q * NR, cols);
  }
}

// The packed path's workspace: op(B)'s packed panels of a slice (packed_b_floats), then a block
// of op(A)'s MR-row panels for each thread (packed_a_floats each).
static size_t packed_b_floats(int N, int K) {
  return round16((size_t)(std::min(NC, N) + NR - 1) / NR * NR * std::min(KC, K));
}
static size_t packed_a_floats(int K) {
  return round16((size_t)(MC + MR - 1) / MR * MR * std::min(KC, K));  // whole MR-row panels
}

// Packed path, step 2 of a slice: C[:, j0:j0+nc] (+)= alpha * op(A)[:, k0:k0+kc] @ the packed
// panels bp, in tiles of (MC-row block of A, group of N panels): threads split the M blocks;
// when M is small (a single block), they split the N panels instead so both cores still work.
// Each thread packs its block of op(A) into MR-row panels of its own (in its slice of a_ws,
// a_floats apart), then runs the micro-kernel on each MR x NR tile (first: the first slice of K,
// which applies beta).
static void packed_tiles(bool trans_a, int M, int kc, int k0, int j0, int nc, int npanels,
                         float alpha, const float* A, int lda, const float* bp, float beta,
                         bool first, float* C, int ldc, int nthreads, float* a_ws,
                         size_t a_floats) {
  const int mblocks = (M + MC - 1) / MC;
  const int ngroups = mblocks >= nthreads ? 1 : std::min(npanels, nthreads);
  const int ntiles = mblocks * ngroups;
#pragma omp parallel num_threads(nthreads) if (nthreads > 1 && ntiles > 1)
  {
    float* ap = a_ws + (size_t)omp_get_thread_num() * a_floats;
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
          micro_kernel(kc, ap + (size_t)p * kc, bpanel, C + (size_t)(i0 + p) * ldc + j0 + q * NR,
                       ldc, mr, nr, alpha, beta, first);
        }
      }
    }
  }
}

// The packed (GotoBLAS) path, the scheme at the top: for each NC-wide column block of op(B) and
// each KC-deep slice of K, op(B)'s slice packed once (pack_b_panels), then every tile of C
// multiplied by it (packed_tiles).
static void sgemm_packed(bool trans_a, bool trans_b, int M, int N, int K, float alpha,
                         const float* A, int lda, const float* B, int ldb, float beta, float* C,
                         int ldc, int nthreads, float* ws) {
  float* bp = ws;
  float* a_ws = ws + packed_b_floats(N, K);
  for (int j0 = 0; j0 < N; j0 += NC) {
    const int nc = std::min(NC, N - j0);
    const int npanels = (nc + NR - 1) / NR;
    for (int k0 = 0; k0 < K; k0 += KC) {
      const int kc = std::min(KC, K - k0);
      pack_b_panels(bp, trans_b, B, ldb, k0, kc, j0, nc, npanels, nthreads);
      packed_tiles(trans_a, M, kc, k0, j0, nc, npanels, alpha, A, lda, bp, beta, k0 == 0, C, ldc,
                   nthreads, a_ws, packed_a_floats(K));
    }
  }
}

// sgemm's path for a shape (K > 0; scaling only otherwise), the threads it runs on and the floats
// of workspace it takes (with an epilogue, sgemm_fused's). The one place the path is chosen:
// sgemm, sgemm_fused and their *_workspace_size all take it from here.
enum class GemmPath { scale, k_split, strided, packed };
struct GemmPlan {
  GemmPath path;
  int nthreads;
  size_t floats;
};
static GemmPlan sgemm_plan(bool trans_a, bool trans_b, int M, int N, int K, int lda, int ldb,
                           int num_threads, bool epilogue) {
  if (M <= 0 || N <= 0 || K <= 0) return {GemmPath::scale, 1, 0};
  if (use_k_split(M, N, K))
    return {GemmPath::k_split, num_threads,
            k_split_partial_floats(M, N, K) +
                (size_t)num_threads * k_split_chunk_floats(trans_a, trans_b, M, N, K, lda, ldb)};
  const int nt = gemm_threads(M, N, K, num_threads);
  if (use_strided(trans_b, M, N, K))
    return {GemmPath::strided, nt,
            strided_floats(trans_a, trans_b, M, N, K, lda, ldb, nt, epilogue)};
  return {GemmPath::packed, nt, packed_b_floats(N, K) + (size_t)nt * packed_a_floats(K)};
}

size_t sgemm_workspace_size(bool trans_a, bool trans_b, int M, int N, int K, int lda, int ldb,
                            int num_threads) {
  return sgemm_plan(trans_a, trans_b, M, N, K, lda, ldb, std::max(num_threads, 1), false).floats;
}

// C = alpha * op(A) op(B) + beta * C: the path by shape (scaling only, the K split, the unpacked
// path or the packed one).
void sgemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A, int lda,
           const float* B, int ldb, float beta, float* C, int ldc, float* workspace,
           int num_threads) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0 || alpha == 0.0f) {
    scale_c(M, N, beta, C, ldc);
    return;
  }
  const GemmPlan plan =
      sgemm_plan(trans_a, trans_b, M, N, K, lda, ldb, std::max(num_threads, 1), false);
  if (plan.path == GemmPath::k_split)
    sgemm_k_split(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, workspace,
                  plan.nthreads);
  else if (plan.path == GemmPath::strided)
    sgemm_strided(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, plan.nthreads,
                  workspace);
  else
    sgemm_packed(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, plan.nthreads,
                 workspace);
}

size_t sgemm_fused_workspace_size(bool trans_a, bool trans_b, int M, int N, int K, int lda,
                                  int ldb, int num_threads) {
  return sgemm_plan(trans_a, trans_b, M, N, K, lda, ldb, std::max(num_threads, 1), true).floats;
}

// C = act(op(A) op(B) + col_bias), or its gradient through the activation (GemmEpilogue). The
// strided path finishes each tile in its epilogue; other shapes run sgemm (onto the bias rows,
// when there is a bias) and finish C's rows afterwards, shared out among the threads from
// kFinishParallel elements on (as the elementwise activation kernels do).
static constexpr size_t kFinishParallel = size_t(1) << 16;
void sgemm_fused(bool trans_a, bool trans_b, int M, int N, int K, const float* A, int lda,
                 const float* B, int ldb, float* C, int ldc, const GemmEpilogue& e,
                 float* workspace, int num_threads) {
  if (M <= 0 || N <= 0) return;
  num_threads = std::max(num_threads, 1);
  const GemmPlan plan = sgemm_plan(trans_a, trans_b, M, N, K, lda, ldb, num_threads, true);
  if (plan.path == GemmPath::strided) {
    sgemm_strided(trans_a, trans_b, M, N, K, 1.0f, A, lda, B, ldb, 0.0f, C, ldc, plan.nthreads,
                  workspace, &e);
    return;
  }
  if (e.col_bias)
    for (int i = 0; i < M; i++) std::memcpy(C + (size_t)i * ldc, e.col_bias, N * sizeof(float));
  sgemm(trans_a, trans_b, M, N, K, 1.0f, A, lda, B, ldb, e.col_bias ? 1.0f : 0.0f, C, ldc,
        workspace, num_threads);
  if (e.act == Activation::none) return;
  parallel_region((size_t)M * N >= kFinishParallel ? num_threads : 1, [&] {
    const auto [i0, i1] = part_of(M, omp_get_thread_num(), omp_get_num_threads());
    activation_rows(e.act, C + (size_t)i0 * ldc, ldc,
                    e.act_output ? e.act_output + (size_t)i0 * e.ld_act_output : nullptr,
                    e.ld_act_output, (int)(i1 - i0), N);
  });
}

// ---------------------------------------------------------------------------------------------
// matmul: c (M,N) = op(a) @ op(b).
size_t matmul_forward_workspace_size(int M, int N, int K, bool trans_a, bool trans_b,
                                     int num_threads) {
  return sgemm_workspace_size(trans_a, trans_b, M, N, K, trans_a ? M : K, trans_b ? K : N,
                              num_threads);
}
void matmul_forward(float* c, const float* a, const float* b, int M, int N, int K, bool trans_a,
                    bool trans_b, float* workspace, int num_threads) {
  sgemm(trans_a, trans_b, M, N, K, 1.0f, a, trans_a ? M : K, b, trans_b ? K : N, 0.0f, c, N,
        workspace, num_threads);
}

// With C = op(A) op(B): dop(A) = dC op(B)^T, dop(B) = op(A)^T dC, each written in the operand's
// own storage layout (a transposed operand gets the transposed product): the two products as
// sgemm's arguments (C dense, N columns). They run one after the other, each on the whole
// workspace.
struct Product {
  bool trans_a, trans_b;
  int M, N, K;
  const float* A;
  int lda;
  const float* B;
  int ldb;
  size_t workspace(int num_threads) const {
    return sgemm_workspace_size(trans_a, trans_b, M, N, K, lda, ldb, num_threads);
  }
  void run(float* C, float* workspace, int num_threads) const {
    sgemm(trans_a, trans_b, M, N, K, 1.0f, A, lda, B, ldb, 0.0f, C, N, workspace, num_threads);
  }
};
static Product matmul_da(const float* dc, const float* b, int M, int N, int K, bool trans_a,
                         bool trans_b) {
  const int ldb = trans_b ? K : N;
  if (!trans_a) return {false, !trans_b, M, K, N, dc, N, b, ldb};  // da (M,K) = dC @ op(B)^T
  return {trans_b, true, K, M, N, b, ldb, dc, N};                  // da (K,M) = op(B) @ dC^T
}
static Product matmul_db(const float* dc, const float* a, int M, int N, int K, bool trans_a,
                         bool trans_b) {
  const int lda = trans_a ? M : K;
  if (!trans_b) return {!trans_a, false, K, N, M, a, lda, dc, N};  // db (K,N) = op(A)^T @ dC
  return {true, trans_a, N, K, M, dc, N, a, lda};                  // db (N,K) = dC^T @ op(A)
}

size_t matmul_backward_workspace_size(int M, int N, int K, bool trans_a, bool trans_b,
                                      int num_threads) {
  return std::max(matmul_da(nullptr, nullptr, M, N, K, trans_a, trans_b).workspace(num_threads),
                  matmul_db(nullptr, nullptr, M, N, K, trans_a, trans_b).workspace(num_threads));
}
void matmul_backward(float* da, float* db, const float* dc, const float* a, const float* b, int M,
                     int N, int K, bool trans_a, bool trans_b, float* workspace, int num_threads) {
  if (da) matmul_da(dc, b, M, N, K, trans_a, trans_b).run(da, workspace, num_threads);
  if (db) matmul_db(dc, a, M, N, K, trans_a, trans_b).run(db, workspace, num_threads);
}

}  // namespace NNFAST_ISA
}  // namespace nnfast
