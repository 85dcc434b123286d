// Sums over the nonzero entries of a vector: the building blocks of the kernels that skip zeros,
// in linear.cpp (inputs that are mostly zero pixels) and conv.cpp (gradients routed through max
// pooling, three quarters zeros or more), in simd.h's vectors of W floats.
//
//   out = init + sum over k with v[k] != 0 of v[k] * rows[k, :]
//
// Skipping a zero term changes a result only when its other factor is inf or NaN (0 * inf =
// NaN): callers take these paths only when `rows` is all finite (all_finite).
#pragma once
#include "simd.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <utility>

namespace nnfast {
inline namespace NNFAST_ISA {
namespace sparse {

// The tables of function pointers below take a Mask, which for AVX2 is a vector type: GCC notes
// that its alignment attribute does not carry into std::array's template argument (harmless for
// a function pointer).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wignored-attributes"

using idx = std::ptrdiff_t;
using simd::Mask;
using simd::V;
using simd::W;
// Vectors of output columns held in registers: half the registers for one sum (CHUNK_V), a
// quarter each for a pair of sums (PAIR_CHUNK_V).
static constexpr int CHUNK_V = simd::kRegisters / 2;
static constexpr int PAIR_CHUNK_V = simd::kRegisters / 4;

// A chunk of `cols` columns (1 .. W * its vectors) in vectors: how many, and the lanes of the
// last one that are columns.
inline simd::Span chunk_vectors(idx cols) { return simd::span(cols); }

// Vector q of NV at p: whole, or (the last) only the lanes of tail.
template <int NV>
inline V load_part(const float* p, int q, Mask tail) {
  return q == NV - 1 ? simd::loadu(tail, p) : simd::loadu(p);
}
template <int NV>
inline void store_part(float* p, int q, Mask tail, V v) {
  if (q == NV - 1) simd::storeu(p, tail, v);
  else simd::storeu(p, v);
}

inline size_t count_nonzero(const float* x, size_t n) {
  using namespace simd;
  size_t nnz = 0, i = 0;
  for (; i + W <= n; i += W) nnz += count(neq(loadu(x + i), zero()));  // NaN counts as nonzero
  for (; i < n; i++) nnz += !(x[i] == 0.0f);
  return nnz;
}

inline bool all_finite(const float* p, size_t n) {
  using namespace simd;
  const V inf = set1(__builtin_inff());
  unsigned bad = 0;  // OR of independent compares: no chain through a mask register
  size_t i = 0;
  for (; i + W <= n; i += W) bad |= bits(nlt(abs(loadu(p + i)), inf));
  for (; i < n; i++) bad |= !(std::abs(p[i]) < __builtin_inff());
  return bad == 0;
}

// The indices of the nonzero entries of v[0:n], in order; returns their count. Each vector's
// indices are compressed into a register and all W lanes stored (simd::compress_store), so ids
// needs 16 ints of slack. The main loop over whole vectors is kept lean (it runs for every row
// of every sparse input): an unmasked load, the compare, the compress of a running index vector.
inline int nonzero_indices(int* ids, const float* v, int n) {
  using namespace simd;
  VI lane_ids = iota();
  const VI step = set1i(W);
  int found = 0, k0 = 0;
  for (; k0 + W <= n; k0 += W) {
    const Mask m = neq(loadu(v + k0), zero());
    compress_store(ids + found, m, lane_ids);
    found += count(m);
    lane_ids = addi(lane_ids, step);
  }
  if (k0 < n) {
    const Mask lanes = first(n - k0);
    const Mask m = neq(lanes, loadu(lanes, v + k0), zero());
    compress_store(ids + found, m, lane_ids);
    found += count(m);
  }
  return found;
}

// out[0 : W*NV) = init + sum over j of v[ids[j]] * rows[ids[j] * ld : +W*NV] (init null: 0),
// of which the last vector's lanes outside `tail` are neither read (from rows and init) nor
// written: rows may be any width, ld apart (no alignment needed). Few vectors make short FMA
// chains, so with NV <= 4 the terms are spread over U partial sums (term j into sum j mod U),
// added at the end in a fixed order.
template <int NV>
inline void sum_rows(float* out, const float* init, const int* ids, const float* v, int count,
                     const float* rows, idx ld, Mask tail) {
  using namespace simd;
  constexpr int U = NV <= 2 ? 4 : NV <= 4 ? 2 : 1;
  V acc[U][NV];
#pragma GCC unroll 16
  for (int q = 0; q < NV; q++) {
    acc[0][q] = init ? load_part<NV>(init + W * q, q, tail) : zero();
#pragma GCC unroll 4
    for (int u = 1; u < U; u++) acc[u][q] = zero();
  }
  int j = 0;
  for (; j + U <= count; j += U) {
#pragma GCC unroll 4
    for (int u = 0; u < U; u++) {
      const V a = set1(v[ids[j + u]]);
      const float* r = rows + (idx)ids[j + u] * ld;
#pragma GCC unroll 16
      for (int q = 0; q < NV; q++) acc[u][q] = fmadd(a, load_part<NV>(r + W * q, q, tail), acc[u][q]);
    }
  }
  for (int u = 0; j < count; j++, u++) {
    const V a = set1(v[ids[j]]);
    const float* r = rows + (idx)ids[j] * ld;
#pragma GCC unroll 16
    for (int q = 0; q < NV; q++) acc[u][q] = fmadd(a, load_part<NV>(r + W * q, q, tail), acc[u][q]);
  }
#pragma GCC unroll 16
  for (int q = 0; q < NV; q++) {
    V s = acc[0][q];
    if constexpr (U == 4) s = add(add(s, acc[1][q]), add(acc[2][q], acc[3][q]));
    else if constexpr (U == 2) s = add(s, acc[1][q]);
    store_part<NV>(out + W * q, q, tail, s);
  }
}

using SumRows = void (*)(float*, const float*, const int*, const float*, int, const float*, idx,
                         Mask);
template <size_t... I>
constexpr std::array<SumRows, sizeof...(I)> sum_rows_table(std::index_sequence<I...>) {
  return {&sum_rows<int(I) + 1>...};
}
inline constexpr auto SUM_ROWS = sum_rows_table(std::make_index_sequence<CHUNK_V>{});

// out[0:width) = init + sum over j of v[ids[j]] * rows[ids[j], 0:width), rows ld apart, in chunks
// of W*CHUNK_V columns.
inline void sum_rows_all(float* out, const float* init, const int* ids, const float* v, int count,
                         const float* rows, idx ld, idx width) {
  for (idx c0 = 0; c0 < width; c0 += W * CHUNK_V) {
    const simd::Span vecs = chunk_vectors(std::min<idx>(W * CHUNK_V, width - c0));
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
  using namespace simd;
  VI lane_ids = iota();
  const VI step = set1i(W);
  for (int k0 = 0, next_block = 0; k0 < n; k0 += W) {
    if (k0 == next_block) *starts++ = count, next_block += block;
    const Mask lanes = n - k0 >= W ? all() : first(n - k0);
    const V x = loadu(lanes, v + k0);
    const Mask m = neq(lanes, x, zero());
    compress_store(ids + count, m, lane_ids);
    compress_store(vals + count, m, x);
    count += simd::count(m);
    lane_ids = addi(lane_ids, step);
  }
  *starts = count;
  return count;
}

// For each of n outputs i (rows out + i * ldo): out_i[0 : W*NV) = (first ? init : out_i) +
// sum over j in [starts_i[0], starts_i[1]) of vals[j] * rows[ids[j] * ld : +W*NV], where
// starts_i = starts + i * stride (init null: 0), terms in order into one accumulator per vector;
// lanes outside `tail` in the last vector neither read nor written. The sums over one block of
// the lists of append_nonzero_entries, one list per output row; a later block with no terms
// leaves the row alone.
template <int NV>
inline void sum_entries(float* out, idx ldo, bool first, const float* init, const int* starts,
                        int stride, int n, const int* ids, const float* vals, const float* rows,
                        idx ld, Mask tail) {
  for (int i = 0; i < n; i++) {
    const int j0 = starts[(idx)i * stride], j1 = starts[(idx)i * stride + 1];
    if (!first && j0 == j1) continue;
    float* o = out + (idx)i * ldo;
    const float* from = first ? init : o;
    V acc[NV];
#pragma GCC unroll 16
    for (int q = 0; q < NV; q++) acc[q] = from ? load_part<NV>(from + W * q, q, tail) : simd::zero();
    for (int j = j0; j < j1; j++) {
      const V a = simd::set1(vals[j]);
      const float* r = rows + (idx)ids[j] * ld;
#pragma GCC unroll 16
      for (int q = 0; q < NV; q++) acc[q] = simd::fmadd(a, load_part<NV>(r + W * q, q, tail), acc[q]);
    }
#pragma GCC unroll 16
    for (int q = 0; q < NV; q++) store_part<NV>(o + W * q, q, tail, acc[q]);
  }
}

using SumEntries = void (*)(float*, idx, bool, const float*, const int*, int, int, const int*,
                            const float*, const float*, idx, Mask);
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
  using namespace simd;
  VI lane_ids = iota();
  const VI step = set1i(W);
  int found = 0;
  for (int k0 = 0; k0 < n; k0 += W) {
    const Mask lanes = n - k0 >= W ? all() : first(n - k0);
    const Mask m = mask_or(neq(lanes, loadu(lanes, v0 + k0), zero()),
                           neq(lanes, loadu(lanes, v1 + k0), zero()));
    compress_store(ids + found, m, lane_ids);
    found += count(m);
    lane_ids = addi(lane_ids, step);
  }
  return found;
}

// out0[0 : W*NV) = init0 + sum over j of v0[ids[j]] * rows[ids[j] * ld : +W*NV], and out1 the
// same with v1 and init1 (inits may be null: 0); lanes outside `tail` in the last vector neither
// read nor written. One accumulator per vector of each output, terms in order.
template <int NV>
inline void sum_rows_pair(float* out0, float* out1, const float* init0, const float* init1,
                          const int* ids, const float* v0, const float* v1, int count,
                          const float* rows, idx ld, Mask tail) {
  using simd::fmadd;
  V acc0[NV], acc1[NV];
#pragma GCC unroll 8
  for (int q = 0; q < NV; q++) {
    acc0[q] = init0 ? load_part<NV>(init0 + W * q, q, tail) : simd::zero();
    acc1[q] = init1 ? load_part<NV>(init1 + W * q, q, tail) : simd::zero();
  }
  for (int j = 0; j < count; j++) {
    const V a0 = simd::set1(v0[ids[j]]), a1 = simd::set1(v1[ids[j]]);
    const float* r = rows + (idx)ids[j] * ld;
#pragma GCC unroll 8
    for (int q = 0; q < NV; q++) {
      const V row = load_part<NV>(r + W * q, q, tail);
      acc0[q] = fmadd(a0, row, acc0[q]);
      acc1[q] = fmadd(a1, row, acc1[q]);
    }
  }
#pragma GCC unroll 8
  for (int q = 0; q < NV; q++) {
    store_part<NV>(out0 + W * q, q, tail, acc0[q]);
    store_part<NV>(out1 + W * q, q, tail, acc1[q]);
  }
}

using SumRowsPair = void (*)(float*, float*, const float*, const float*, const int*, const float*,
                             const float*, int, const float*, idx, Mask);
template <size_t... I>
constexpr std::array<SumRowsPair, sizeof...(I)> sum_rows_pair_table(std::index_sequence<I...>) {
  return {&sum_rows_pair<int(I) + 1>...};
}
inline constexpr auto SUM_ROWS_PAIR = sum_rows_pair_table(std::make_index_sequence<PAIR_CHUNK_V>{});

// sum_rows_pair over out0 / out1 [0:width), in chunks of W*PAIR_CHUNK_V columns.
inline void sum_rows_pair_all(float* out0, float* out1, const float* init0, const float* init1,
                              const int* ids, const float* v0, const float* v1, int count,
                              const float* rows, idx ld, idx width) {
  for (idx c0 = 0; c0 < width; c0 += W * PAIR_CHUNK_V) {
    const simd::Span vecs = chunk_vectors(std::min<idx>(W * PAIR_CHUNK_V, width - c0));
    SUM_ROWS_PAIR[vecs.count - 1](out0 + c0, out1 + c0, init0 ? init0 + c0 : nullptr,
                                  init1 ? init1 + c0 : nullptr, ids, v0, v1, count, rows + c0, ld,
                                  vecs.tail);
  }
}

#pragma GCC diagnostic pop

}  // namespace sparse
}  // namespace NNFAST_ISA
}  // namespace nnfast
