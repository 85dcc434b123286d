// Sums over the nonzero entries of a vector (AVX-512 builds): the building blocks of the kernels
// that skip zeros, in linear.cpp (inputs that are mostly zero pixels) and conv.cpp (gradients
// routed through max pooling, three quarters zeros or more).
//
//   out = init + sum over k with v[k] != 0 of v[k] * rows[k, :]
//
// Skipping a zero term changes a result only when its other factor is inf or NaN (0 * inf =
// NaN): callers take these paths only when `rows` is all finite (all_finite).
#pragma once
#if defined(__AVX512F__)
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <utility>

namespace nnfast {
namespace sparse {

using idx = std::ptrdiff_t;
static constexpr int CHUNK_V = 16;  // 16-float vectors of output columns held in registers

// A chunk of `cols` columns (1 .. 16 * its vectors) in 16-float vectors: how many, and the lanes
// of the last one that are columns.
struct ChunkVectors {
  int count;
  __mmask16 tail;
};
inline ChunkVectors chunk_vectors(idx cols) {
  const int count = (int)((cols + 15) / 16);
  return {count, (__mmask16)((1u << (cols - 16 * (count - 1))) - 1)};
}

inline size_t count_nonzero(const float* x, size_t n) {
  size_t nnz = 0, i = 0;
  for (; i + 16 <= n; i += 16)
    nnz += __builtin_popcount(_mm512_cmp_ps_mask(_mm512_loadu_ps(x + i), _mm512_setzero_ps(),
                                                 _CMP_NEQ_UQ));  // NaN counts as nonzero
  for (; i < n; i++) nnz += !(x[i] == 0.0f);
  return nnz;
}

inline bool all_finite(const float* p, size_t n) {
  const __m512 inf = _mm512_set1_ps(__builtin_inff());
  unsigned bad = 0;  // OR of independent compares: no chain through a mask register
  size_t i = 0;
  for (; i + 16 <= n; i += 16)
    bad |= _mm512_cmp_ps_mask(_mm512_abs_ps(_mm512_loadu_ps(p + i)), inf, _CMP_NLT_UQ);
  for (; i < n; i++) bad |= !(std::abs(p[i]) < __builtin_inff());
  return bad == 0;
}

// The indices of the nonzero entries of v[0:n], in order; returns their count. Compresses into a
// register and stores all 16 lanes (Zen's vpcompressd to memory is slow), so ids needs 16 ints
// of slack. The main loop over whole vectors is kept lean (it runs for every row of every
// sparse input): an unmasked load, the compare, the compress of a running index vector.
inline int nonzero_indices(int* ids, const float* v, int n) {
  __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const __m512i step = _mm512_set1_epi32(16);
  const __m512 zero = _mm512_setzero_ps();
  int count = 0, k0 = 0;
  for (; k0 + 16 <= n; k0 += 16) {
    const __mmask16 m = _mm512_cmp_ps_mask(_mm512_loadu_ps(v + k0), zero, _CMP_NEQ_UQ);
    _mm512_storeu_si512(ids + count, _mm512_maskz_compress_epi32(m, iota));
    count += __builtin_popcount(m);
    iota = _mm512_add_epi32(iota, step);
  }
  if (k0 < n) {
    const __mmask16 lanes = (__mmask16)((1u << (n - k0)) - 1);
    const __mmask16 m =
        _mm512_mask_cmp_ps_mask(lanes, _mm512_maskz_loadu_ps(lanes, v + k0), zero, _CMP_NEQ_UQ);
    _mm512_storeu_si512(ids + count, _mm512_maskz_compress_epi32(m, iota));
    count += __builtin_popcount(m);
  }
  return count;
}

// out[0 : 16*NV) = init + sum over j of v[ids[j]] * rows[ids[j] * ld : +16*NV] (init null: 0),
// of which the last vector's lanes outside `tail` are neither read (from rows and init) nor
// written: rows may be any width, ld apart (no alignment needed). Few vectors make short FMA
// chains, so with NV <= 4 the terms are spread over U partial sums (term j into sum j mod U),
// added at the end in a fixed order.
template <int NV>
inline void sum_rows(float* out, const float* init, const int* ids, const float* v, int count,
                     const float* rows, idx ld, __mmask16 tail) {
  constexpr int U = NV <= 2 ? 4 : NV <= 4 ? 2 : 1;
  __mmask16 mask[NV];
#pragma GCC unroll 16
  for (int q = 0; q < NV; q++) mask[q] = q == NV - 1 ? tail : (__mmask16)0xFFFF;
  __m512 acc[U][NV];
#pragma GCC unroll 16
  for (int q = 0; q < NV; q++) {
    acc[0][q] = init ? _mm512_maskz_loadu_ps(mask[q], init + 16 * q) : _mm512_setzero_ps();
#pragma GCC unroll 4
    for (int u = 1; u < U; u++) acc[u][q] = _mm512_setzero_ps();
  }
  int j = 0;
  for (; j + U <= count; j += U) {
#pragma GCC unroll 4
    for (int u = 0; u < U; u++) {
      const __m512 a = _mm512_set1_ps(v[ids[j + u]]);
      const float* r = rows + (idx)ids[j + u] * ld;
#pragma GCC unroll 16
      for (int q = 0; q < NV; q++)
        acc[u][q] = _mm512_fmadd_ps(a, _mm512_maskz_loadu_ps(mask[q], r + 16 * q), acc[u][q]);
    }
  }
  for (int u = 0; j < count; j++, u++) {
    const __m512 a = _mm512_set1_ps(v[ids[j]]);
    const float* r = rows + (idx)ids[j] * ld;
#pragma GCC unroll 16
    for (int q = 0; q < NV; q++)
      acc[u][q] = _mm512_fmadd_ps(a, _mm512_maskz_loadu_ps(mask[q], r + 16 * q), acc[u][q]);
  }
#pragma GCC unroll 16
  for (int q = 0; q < NV; q++) {
    __m512 s = acc[0][q];
    if constexpr (U == 4)
      s = _mm512_add_ps(_mm512_add_ps(s, acc[1][q]), _mm512_add_ps(acc[2][q], acc[3][q]));
    else if constexpr (U == 2)
      s = _mm512_add_ps(s, acc[1][q]);
    _mm512_mask_storeu_ps(out + 16 * q, mask[q], s);
  }
}

using SumRows = void (*)(float*, const float*, const int*, const float*, int, const float*, idx,
                         __mmask16);
template <size_t... I>
constexpr std::array<SumRows, sizeof...(I)> sum_rows_table(std::index_sequence<I...>) {
  return {&sum_rows<int(I) + 1>...};
}
inline constexpr auto SUM_ROWS = sum_rows_table(std::make_index_sequence<CHUNK_V>{});

// out[0:width) = init + sum over j of v[ids[j]] * rows[ids[j], 0:width), rows ld apart, in chunks
// of 16*CHUNK_V columns.
inline void sum_rows_all(float* out, const float* init, const int* ids, const float* v, int count,
                         const float* rows, idx ld, idx width) {
  for (idx c0 = 0; c0 < width; c0 += 16 * CHUNK_V) {
    const ChunkVectors vecs = chunk_vectors(std::min<idx>(16 * CHUNK_V, width - c0));
    SUM_ROWS[vecs.count - 1](out + c0, init ? init + c0 : nullptr, ids, v, count, rows + c0, ld,
                             vecs.tail);
  }
}

// Appends the nonzero entries of v[0:n] to a compressed list of `count` entries: their indices
// in ids and their values in vals, in order, with starts[b] the list's length before index
// b * block (block a multiple of 16; starts has n / block rounded up + 1 entries, the last the
// new length, which it returns). Same stores as nonzero_indices: ids and vals need 16 entries of
// slack.
inline int append_nonzero_entries(int* ids, float* vals, int count, int* starts, const float* v,
                                  int n, int block) {
  __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const __m512i step = _mm512_set1_epi32(16);
  const __m512 zero = _mm512_setzero_ps();
  for (int k0 = 0, next_block = 0; k0 < n; k0 += 16) {
    if (k0 == next_block) *starts++ = count, next_block += block;
    const __mmask16 lanes = (__mmask16)(n - k0 >= 16 ? 0xFFFF : (1u << (n - k0)) - 1);
    const __m512 x = _mm512_maskz_loadu_ps(lanes, v + k0);
    const __mmask16 m = _mm512_mask_cmp_ps_mask(lanes, x, zero, _CMP_NEQ_UQ);
    _mm512_storeu_si512(ids + count, _mm512_maskz_compress_epi32(m, iota));
    _mm512_storeu_ps(vals + count, _mm512_maskz_compress_ps(m, x));
    count += __builtin_popcount(m);
    iota = _mm512_add_epi32(iota, step);
  }
  *starts = count;
  return count;
}

// For each of n outputs i (rows out + i * ldo): out_i[0 : 16*NV) = (first ? init : out_i) +
// sum over j in [starts_i[0], starts_i[1]) of vals[j] * rows[ids[j] * ld : +16*NV], where
// starts_i = starts + i * stride (init null: 0), terms in order into one accumulator per vector;
// lanes outside `tail` in the last vector neither read nor written. The sums over one block of
// the lists of append_nonzero_entries, one list per output row; a later block with no terms
// leaves the row alone.
template <int NV>
inline void sum_entries(float* out, idx ldo, bool first, const float* init, const int* starts,
                        int stride, int n, const int* ids, const float* vals, const float* rows,
                        idx ld, __mmask16 tail) {
  __mmask16 mask[NV];
#pragma GCC unroll 16
  for (int q = 0; q < NV; q++) mask[q] = q == NV - 1 ? tail : (__mmask16)0xFFFF;
  for (int i = 0; i < n; i++) {
    const int j0 = starts[(idx)i * stride], j1 = starts[(idx)i * stride + 1];
    if (!first && j0 == j1) continue;
    float* o = out + (idx)i * ldo;
    const float* from = first ? init : o;
    __m512 acc[NV];
#pragma GCC unroll 16
    for (int q = 0; q < NV; q++)
      acc[q] = from ? _mm512_maskz_loadu_ps(mask[q], from + 16 * q) : _mm512_setzero_ps();
    for (int j = j0; j < j1; j++) {
      const __m512 a = _mm512_set1_ps(vals[j]);
      const float* r = rows + (idx)ids[j] * ld;
#pragma GCC unroll 16
      for (int q = 0; q < NV; q++)
        acc[q] = _mm512_fmadd_ps(a, _mm512_maskz_loadu_ps(mask[q], r + 16 * q), acc[q]);
    }
#pragma GCC unroll 16
    for (int q = 0; q < NV; q++) _mm512_mask_storeu_ps(o + 16 * q, mask[q], acc[q]);
  }
}

using SumEntries = void (*)(float*, idx, bool, const float*, const int*, int, int, const int*,
                            const float*, const float*, idx, __mmask16);
template <size_t... I>
constexpr std::array<SumEntries, sizeof...(I)> sum_entries_table(std::index_sequence<I...>) {
  return {&sum_entries<int(I) + 1>...};
}
inline constexpr auto SUM_ENTRIES = sum_entries_table(std::make_index_sequence<CHUNK_V>{});

// Two sums over the same rows, for two vectors v0 and v1 (two columns of a transposed input):
// the indices where either is nonzero (nonzero_indices_either), then each row they pick loaded
// once for both sums (sum_rows_pair_all). Neighbouring pixels are mostly nonzero together (an
// MNIST batch: 1.17 times the rows of one pixel for the pair), so this loads 40 % fewer rows. A
// pair's list holds some zero terms of one vector or the other: they change a sum only in the
// sign of a zero result (-0 + 0 = +0), never in value.
inline int nonzero_indices_either(int* ids, const float* v0, const float* v1, int n) {
  __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const __m512i step = _mm512_set1_epi32(16);
  const __m512 zero = _mm512_setzero_ps();
  int count = 0;
  for (int k0 = 0; k0 < n; k0 += 16) {
    const __mmask16 lanes = (__mmask16)(n - k0 >= 16 ? 0xFFFF : (1u << (n - k0)) - 1);
    const __mmask16 m =
        _mm512_mask_cmp_ps_mask(lanes, _mm512_maskz_loadu_ps(lanes, v0 + k0), zero, _CMP_NEQ_UQ) |
        _mm512_mask_cmp_ps_mask(lanes, _mm512_maskz_loadu_ps(lanes, v1 + k0), zero, _CMP_NEQ_UQ);
    _mm512_storeu_si512(ids + count, _mm512_maskz_compress_epi32(m, iota));
    count += __builtin_popcount(m);
    iota = _mm512_add_epi32(iota, step);
  }
  return count;
}

// out0[0 : 16*NV) = init0 + sum over j of v0[ids[j]] * rows[ids[j] * ld : +16*NV], and out1 the
// same with v1 and init1 (inits may be null: 0); lanes outside `tail` in the last vector neither
// read nor written. One accumulator per vector of each output, terms in order.
template <int NV>
inline void sum_rows_pair(float* out0, float* out1, const float* init0, const float* init1,
                          const int* ids, const float* v0, const float* v1, int count,
                          const float* rows, idx ld, __mmask16 tail) {
  __mmask16 mask[NV];
#pragma GCC unroll 8
  for (int q = 0; q < NV; q++) mask[q] = q == NV - 1 ? tail : (__mmask16)0xFFFF;
  __m512 acc0[NV], acc1[NV];
#pragma GCC unroll 8
  for (int q = 0; q < NV; q++) {
    acc0[q] = init0 ? _mm512_maskz_loadu_ps(mask[q], init0 + 16 * q) : _mm512_setzero_ps();
    acc1[q] = init1 ? _mm512_maskz_loadu_ps(mask[q], init1 + 16 * q) : _mm512_setzero_ps();
  }
  for (int j = 0; j < count; j++) {
    const __m512 a0 = _mm512_set1_ps(v0[ids[j]]), a1 = _mm512_set1_ps(v1[ids[j]]);
    const float* r = rows + (idx)ids[j] * ld;
#pragma GCC unroll 8
    for (int q = 0; q < NV; q++) {
      const __m512 row = _mm512_maskz_loadu_ps(mask[q], r + 16 * q);
      acc0[q] = _mm512_fmadd_ps(a0, row, acc0[q]);
      acc1[q] = _mm512_fmadd_ps(a1, row, acc1[q]);
    }
  }
#pragma GCC unroll 8
  for (int q = 0; q < NV; q++) {
    _mm512_mask_storeu_ps(out0 + 16 * q, mask[q], acc0[q]);
    _mm512_mask_storeu_ps(out1 + 16 * q, mask[q], acc1[q]);
  }
}

using SumRowsPair = void (*)(float*, float*, const float*, const float*, const int*, const float*,
                             const float*, int, const float*, idx, __mmask16);
static constexpr int PAIR_CHUNK_V = 8;  // 2 x 8 accumulators
template <size_t... I>
constexpr std::array<SumRowsPair, sizeof...(I)> sum_rows_pair_table(std::index_sequence<I...>) {
  return {&sum_rows_pair<int(I) + 1>...};
}
inline constexpr auto SUM_ROWS_PAIR = sum_rows_pair_table(std::make_index_sequence<PAIR_CHUNK_V>{});

// sum_rows_pair over out0 / out1 [0:width), in chunks of 16*PAIR_CHUNK_V columns.
inline void sum_rows_pair_all(float* out0, float* out1, const float* init0, const float* init1,
                              const int* ids, const float* v0, const float* v1, int count,
                              const float* rows, idx ld, idx width) {
  for (idx c0 = 0; c0 < width; c0 += 16 * PAIR_CHUNK_V) {
    const ChunkVectors vecs = chunk_vectors(std::min<idx>(16 * PAIR_CHUNK_V, width - c0));
    SUM_ROWS_PAIR[vecs.count - 1](out0 + c0, out1 + c0, init0 ? init0 + c0 : nullptr,
                                  init1 ? init1 + c0 : nullptr, ids, v0, v1, count, rows + c0, ld,
                                  vecs.tail);
  }
}

}  // namespace sparse
}  // namespace nnfast
#endif
