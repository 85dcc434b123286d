// One float vector type per instruction set, with the operations the kernels use, so that every
// kernel is written once and compiled for each ISA at that ISA's width (CMakeLists.txt compiles
// cpp/src once per ISA; common.h explains the namespaces):
//
//   ISA        W   V        Mask                     registers
//   avx512    16   __m512   __mmask16 (bit i: lane i)   32
//   avx2       8   __m256   __m256i (lane i all ones)   16
//   baseline   4   4 floats unsigned (bit i: lane i)    16 (GCC vector extension: SSE2, NEON, ...)
//
// A masked load reads only the lanes of its mask (the others are 0 and their memory is never
// touched, so a mask may stop at the end of a buffer); a masked store writes only its lanes.
// fmadd(a, b, c) = a * b + c, fused where the ISA has FMA (baseline: two roundings).
// Comparisons follow the AVX _CMP_* predicates named in their comments: an ordered one is false
// when either operand is NaN, an unordered one true.
//
// Beside the elementwise operations there are the few shuffles the kernels need (lane sums,
// even/odd deinterleaving, compressing the lanes of a mask); each ISA implements them in its own
// way, the plain loops of the baseline saying what they compute.
#pragma once
#include "nnfast/common.h"

#include <cstdint>
#include <cstring>

#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
#include <immintrin.h>
#endif

namespace nnfast {
inline namespace NNFAST_ISA {
namespace simd {

#if defined(__AVX512F__)
// GCC 12 warns that some intrinsics' internal _mm512_undefined_ps() "may be used uninitialized"
// (a known false positive of its self-initialised placeholder).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
constexpr int W = 16;
constexpr const char* kName = "avx512";
constexpr int kRegisters = 32;  // vector registers
using V = __m512;
using VI = __m512i;  // W int32 lanes
using Mask = __mmask16;

inline Mask first(int n) { return (Mask)((1u << n) - 1); }  // lanes [0, n), 0 <= n <= W
inline Mask all() { return (Mask)0xFFFF; }
inline Mask lanes(int lo, int hi) { return (Mask)(first(hi) & ~first(lo)); }  // lanes [lo, hi)
inline Mask mask_or(Mask a, Mask b) { return (Mask)(a | b); }
inline Mask mask_and(Mask a, Mask b) { return (Mask)(a & b); }
inline Mask mask_andnot(Mask a, Mask b) { return (Mask)(~a & b); }  // b and not a
inline unsigned bits(Mask m) { return m; }                          // bit i: lane i
inline int count(Mask m) { return __builtin_popcount(m); }

inline V zero() { return _mm512_setzero_ps(); }
inline V set1(float a) { return _mm512_set1_ps(a); }
inline V load(const float* p) { return _mm512_load_ps(p); }  // p 64-byte aligned
inline V loadu(const float* p) { return _mm512_loadu_ps(p); }
inline V loadu(Mask m, const float* p) { return _mm512_maskz_loadu_ps(m, p); }
inline void store(float* p, V v) { _mm512_store_ps(p, v); }
inline void storeu(float* p, V v) { _mm512_storeu_ps(p, v); }
inline void storeu(float* p, Mask m, V v) { _mm512_mask_storeu_ps(p, m, v); }

inline V add(V a, V b) { return _mm512_add_ps(a, b); }
inline V sub(V a, V b) { return _mm512_sub_ps(a, b); }
inline V mul(V a, V b) { return _mm512_mul_ps(a, b); }
inline V div(V a, V b) { return _mm512_div_ps(a, b); }
inline V min(V a, V b) { return _mm512_min_ps(a, b); }  // b where either is NaN
inline V max(V a, V b) { return _mm512_max_ps(a, b); }  // b where either is NaN
inline V fmadd(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
inline V fnmadd(V a, V b, V c) { return _mm512_fnmadd_ps(a, b, c); }  // c - a * b
inline V abs(V a) { return _mm512_abs_ps(a); }
inline V round_nearest(V a) {
  return _mm512_roundscale_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}
inline V scale_pow2(V p, V n) { return _mm512_scalef_ps(p, n); }  // p * 2^n, n integral
inline V maskz(Mask m, V a) { return _mm512_maskz_mov_ps(m, a); }    // a in m's lanes, else 0
inline V select(Mask m, V a, V b) { return _mm512_mask_blend_ps(m, a, b); }  // m ? b : a
inline float reduce_add(V a) { return _mm512_reduce_add_ps(a); }

inline Mask neq(V a, V b) { return _mm512_cmp_ps_mask(a, b, _CMP_NEQ_UQ); }
inline Mask neq(Mask m, V a, V b) { return _mm512_mask_cmp_ps_mask(m, a, b, _CMP_NEQ_UQ); }
inline Mask gt(V a, V b) { return _mm512_cmp_ps_mask(a, b, _CMP_GT_OQ); }
inline Mask lt(V a, V b) { return _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ); }
inline Mask nlt(V a, V b) { return _mm512_cmp_ps_mask(a, b, _CMP_NLT_UQ); }
inline Mask isnan(V a) { return _mm512_cmp_ps_mask(a, a, _CMP_UNORD_Q); }

inline VI iota() { return _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15); }
inline VI set1i(int a) { return _mm512_set1_epi32(a); }
inline VI addi(VI a, VI b) { return _mm512_add_epi32(a, b); }
inline VI subi(VI a, VI b) { return _mm512_sub_epi32(a, b); }
inline VI loadu(Mask m, const int32_t* p) { return _mm512_maskz_loadu_epi32(m, p); }
inline void storeu(int32_t* p, Mask m, VI v) { _mm512_mask_storeu_epi32(p, m, v); }
inline Mask eqi(VI a, VI b) { return _mm512_cmpeq_epi32_mask(a, b); }
inline VI selecti(Mask m, VI a, VI b) { return _mm512_mask_blend_epi32(m, a, b); }  // m ? b : a

// The lanes of v in m, in order, stored to out[0 : count(m)); all W lanes of out are written (so
// out needs W entries of room). A compress into a register, then a full store: Zen's
// vpcompressd to memory is slow.
inline void compress_store(int32_t* out, Mask m, VI v) {
  _mm512_storeu_si512(out, _mm512_maskz_compress_epi32(m, v));
}
inline void compress_store(float* out, Mask m, V v) {
  _mm512_storeu_ps(out, _mm512_maskz_compress_ps(m, v));
}

// even = a[0], a[2], .., b[0], b[2], ..; odd = a[1], a[3], .., b[1], b[3], .. (the even and odd
// columns of the 2W floats a, b).
inline void deinterleave(V a, V b, V& even, V& odd) {
  const VI e = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const VI o = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
  even = _mm512_permutex2var_ps(a, e, b);
  odd = _mm512_permutex2var_ps(a, o, b);
}
// The inverse: lo = e[0], o[0], e[1], o[1], .. (the first W of the interleaved 2W), hi the rest.
inline void interleave(V e, V o, V& lo, V& hi) {
  const VI l = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  const VI h = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
  lo = _mm512_permutex2var_ps(e, l, o);
  hi = _mm512_permutex2var_ps(e, h, o);
}

// Lane j of the result = the sum of v[j]'s W lanes, for W vectors. Four rounds of pairwise adds,
// each halving the vectors and the lanes that still hold partial sums (the same tree for every
// call, so the same bits).
inline V sum_lanes(const V* v) {
  V t[8], u[4], w[2];
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

// dst (cols, rows; rows ldd apart) = src (rows, cols; rows lds apart)^T for rows, cols <= W. Four
// shuffle stages (pairs of rows, 4 x 4 blocks inside 128-bit lanes, then the lanes twice) take
// the 16 x 16 transpose in 64 shuffles; missing rows / columns are zeros that are never stored.
inline void transpose_block(float* dst, std::ptrdiff_t ldd, const float* src, std::ptrdiff_t lds,
                            int rows, int cols) {
  const Mask cm = first(cols), rm = first(rows);
  V r[16], t[16], u[16];
#pragma GCC unroll 16
  for (int i = 0; i < 16; i++) r[i] = i < rows ? loadu(cm, src + i * lds) : zero();
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
    const V w0 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0x88);
    const V w1 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0xDD);
    const V w2 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0x88);
    const V w3 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0xDD);
    r[c] = _mm512_shuffle_f32x4(w0, w2, 0x88);
    r[8 + c] = _mm512_shuffle_f32x4(w0, w2, 0xDD);
    r[4 + c] = _mm512_shuffle_f32x4(w1, w3, 0x88);
    r[12 + c] = _mm512_shuffle_f32x4(w1, w3, 0xDD);
  }
#pragma GCC unroll 16
  for (int j = 0; j < 16; j++)
    if (j < cols) storeu(dst + j * ldd, rm, r[j]);
}
// 8-lane vectors (AVX-512 VL), for pieces of at most 8 floats: a masked 16-lane access would
// span the 64 bytes after a short piece, a second cache line for most of them.
namespace narrow {
constexpr int W = 8;
using V = __m256;
using Mask = __mmask8;
inline Mask first(int n) { return (Mask)((1u << n) - 1); }
inline V zero() { return _mm256_setzero_ps(); }
inline V set1(float a) { return _mm256_set1_ps(a); }
inline V loadu(Mask m, const float* p) { return _mm256_maskz_loadu_ps(m, p); }
inline void storeu(float* p, V v) { _mm256_storeu_ps(p, v); }
inline void storeu(float* p, Mask m, V v) { _mm256_mask_storeu_ps(p, m, v); }
inline V add(V a, V b) { return _mm256_add_ps(a, b); }
inline V fmadd(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
}  // namespace narrow
#pragma GCC diagnostic pop

#elif defined(__AVX2__) && defined(__FMA__)
constexpr int W = 8;
constexpr const char* kName = "avx2";
constexpr int kRegisters = 16;
using V = __m256;
using VI = __m256i;
using Mask = __m256i;  // lane i all ones (in) or zeros (out)

// first(n): 8 lanes read from kFirstLanes + 8 - n: n all-ones lanes, then zeros.
alignas(64) inline constexpr int32_t kFirstLanes[16] = {-1, -1, -1, -1, -1, -1, -1, -1,
                                                        0,  0,  0,  0,  0,  0,  0,  0};
inline Mask first(int n) {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kFirstLanes + 8 - n));
}
inline Mask all() { return _mm256_set1_epi32(-1); }
inline Mask lanes(int lo, int hi) { return _mm256_andnot_si256(first(lo), first(hi)); }
inline Mask mask_or(Mask a, Mask b) { return _mm256_or_si256(a, b); }
inline Mask mask_and(Mask a, Mask b) { return _mm256_and_si256(a, b); }
inline Mask mask_andnot(Mask a, Mask b) { return _mm256_andnot_si256(a, b); }
inline unsigned bits(Mask m) { return (unsigned)_mm256_movemask_ps(_mm256_castsi256_ps(m)); }
inline int count(Mask m) { return __builtin_popcount(bits(m)); }

inline V zero() { return _mm256_setzero_ps(); }
inline V set1(float a) { return _mm256_set1_ps(a); }
inline V load(const float* p) { return _mm256_load_ps(p); }
inline V loadu(const float* p) { return _mm256_loadu_ps(p); }
inline V loadu(Mask m, const float* p) { return _mm256_maskload_ps(p, m); }
inline void store(float* p, V v) { _mm256_store_ps(p, v); }
inline void storeu(float* p, V v) { _mm256_storeu_ps(p, v); }
inline void storeu(float* p, Mask m, V v) { _mm256_maskstore_ps(p, m, v); }

inline V add(V a, V b) { return _mm256_add_ps(a, b); }
inline V sub(V a, V b) { return _mm256_sub_ps(a, b); }
inline V mul(V a, V b) { return _mm256_mul_ps(a, b); }
inline V div(V a, V b) { return _mm256_div_ps(a, b); }
inline V min(V a, V b) { return _mm256_min_ps(a, b); }
inline V max(V a, V b) { return _mm256_max_ps(a, b); }
inline V fmadd(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
inline V fnmadd(V a, V b, V c) { return _mm256_fnmadd_ps(a, b, c); }
inline V abs(V a) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), a); }
inline V round_nearest(V a) {
  return _mm256_round_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}
// p * 2^n for integral n in [-150, 128] (what exp needs): two exponent-field multiplies, each by
// 2^(n/2) in range, so a subnormal or infinite result is rounded once, at the second.
inline V scale_pow2(V p, V n) {
  const __m256i k = _mm256_cvtps_epi32(n);
  const __m256i h = _mm256_srai_epi32(k, 1), l = _mm256_sub_epi32(k, h);
  const __m256i bias = _mm256_set1_epi32(127);
  const V f1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(h, bias), 23));
  const V f2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(l, bias), 23));
  return _mm256_mul_ps(_mm256_mul_ps(p, f1), f2);
}
inline V maskz(Mask m, V a) { return _mm256_and_ps(_mm256_castsi256_ps(m), a); }
inline V select(Mask m, V a, V b) { return _mm256_blendv_ps(a, b, _mm256_castsi256_ps(m)); }
inline float reduce_add(V a) {  // halves, then pairs
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

inline Mask as_mask(V c) { return _mm256_castps_si256(c); }
inline Mask neq(V a, V b) { return as_mask(_mm256_cmp_ps(a, b, _CMP_NEQ_UQ)); }
inline Mask neq(Mask m, V a, V b) { return mask_and(m, neq(a, b)); }
inline Mask gt(V a, V b) { return as_mask(_mm256_cmp_ps(a, b, _CMP_GT_OQ)); }
inline Mask lt(V a, V b) { return as_mask(_mm256_cmp_ps(a, b, _CMP_LT_OQ)); }
inline Mask nlt(V a, V b) { return as_mask(_mm256_cmp_ps(a, b, _CMP_NLT_UQ)); }
inline Mask isnan(V a) { return as_mask(_mm256_cmp_ps(a, a, _CMP_UNORD_Q)); }

inline VI iota() { return _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7); }
inline VI set1i(int a) { return _mm256_set1_epi32(a); }
inline VI addi(VI a, VI b) { return _mm256_add_epi32(a, b); }
inline VI subi(VI a, VI b) { return _mm256_sub_epi32(a, b); }
inline VI loadu(Mask m, const int32_t* p) {
  return _mm256_maskload_epi32(reinterpret_cast<const int*>(p), m);
}
inline void storeu(int32_t* p, Mask m, VI v) {
  _mm256_maskstore_epi32(reinterpret_cast<int*>(p), m, v);
}
inline Mask eqi(VI a, VI b) { return _mm256_cmpeq_epi32(a, b); }
inline VI selecti(Mask m, VI a, VI b) {
  return _mm256_castps_si256(
      _mm256_blendv_ps(_mm256_castsi256_ps(a), _mm256_castsi256_ps(b), _mm256_castsi256_ps(m)));
}

// The lane permutation that packs the lanes of each 8-bit mask to the front: entry m holds the
// chosen lanes' numbers, 4 bits each, lowest first (built at compile time).
struct CompressTable {
  uint32_t perm[256];
  constexpr CompressTable() : perm() {
    for (unsigned m = 0; m < 256; m++) {
      uint32_t p = 0;
      int k = 0;
      for (unsigned lane = 0; lane < 8; lane++)
        if (m >> lane & 1) p |= lane << (4 * k++);
      perm[m] = p;
    }
  }
};
inline constexpr CompressTable kCompress{};
inline __m256i compress_permutation(Mask m) {
  const __m256i packed = _mm256_set1_epi32((int)kCompress.perm[bits(m)]);
  const __m256i shifts = _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28);
  return _mm256_and_si256(_mm256_srlv_epi32(packed, shifts), _mm256_set1_epi32(15));
}
inline void compress_store(int32_t* out, Mask m, VI v) {
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(out),
                      _mm256_permutevar8x32_epi32(v, compress_permutation(m)));
}
inline void compress_store(float* out, Mask m, V v) {
  _mm256_storeu_ps(out, _mm256_permutevar8x32_ps(v, compress_permutation(m)));
}

inline void deinterleave(V a, V b, V& even, V& odd) {
  // within 128-bit lanes: a0 a2 b0 b2 | a4 a6 b4 b6, then the 64-bit quarters reordered
  const V e = _mm256_shuffle_ps(a, b, 0x88), o = _mm256_shuffle_ps(a, b, 0xDD);
  even = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(e), 0xD8));
  odd = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(o), 0xD8));
}
inline void interleave(V e, V o, V& lo, V& hi) {
  const V l = _mm256_unpacklo_ps(e, o), h = _mm256_unpackhi_ps(e, o);  // e0 o0 e1 o1 | e4 o4 ..
  lo = _mm256_permute2f128_ps(l, h, 0x20);
  hi = _mm256_permute2f128_ps(l, h, 0x31);
}

inline V sum_lanes(const V* v) {
  // pairwise: hadd of two vectors sums neighbouring lanes within each 128-bit half
  const V a0 = _mm256_hadd_ps(v[0], v[1]), a1 = _mm256_hadd_ps(v[2], v[3]);
  const V a2 = _mm256_hadd_ps(v[4], v[5]), a3 = _mm256_hadd_ps(v[6], v[7]);
  const V b0 = _mm256_hadd_ps(a0, a1), b1 = _mm256_hadd_ps(a2, a3);
  // b0 = v0..v3 low-half sums | v0..v3 high-half sums; b1 the same for v4..v7
  const V lo = _mm256_permute2f128_ps(b0, b1, 0x20), hi = _mm256_permute2f128_ps(b0, b1, 0x31);
  return _mm256_add_ps(lo, hi);
}

// An 8 x 8 transpose in registers (unpack pairs, shuffle quads, swap halves); rows, cols <= W.
inline void transpose_block(float* dst, std::ptrdiff_t ldd, const float* src, std::ptrdiff_t lds,
                            int rows, int cols) {
  const Mask cm = first(cols), rm = first(rows);
  V r[8];
#pragma GCC unroll 8
  for (int i = 0; i < 8; i++) r[i] = i < rows ? loadu(cm, src + i * lds) : zero();
  V t[8], u[8];
#pragma GCC unroll 4
  for (int p = 0; p < 4; p++) {
    t[2 * p] = _mm256_unpacklo_ps(r[2 * p], r[2 * p + 1]);
    t[2 * p + 1] = _mm256_unpackhi_ps(r[2 * p], r[2 * p + 1]);
  }
#pragma GCC unroll 2
  for (int q = 0; q < 2; q++) {
    u[4 * q + 0] = _mm256_shuffle_ps(t[4 * q], t[4 * q + 2], 0x44);
    u[4 * q + 1] = _mm256_shuffle_ps(t[4 * q], t[4 * q + 2], 0xEE);
    u[4 * q + 2] = _mm256_shuffle_ps(t[4 * q + 1], t[4 * q + 3], 0x44);
    u[4 * q + 3] = _mm256_shuffle_ps(t[4 * q + 1], t[4 * q + 3], 0xEE);
  }
#pragma GCC unroll 4
  for (int c = 0; c < 4; c++) {
    r[c] = _mm256_permute2f128_ps(u[c], u[4 + c], 0x20);
    r[4 + c] = _mm256_permute2f128_ps(u[c], u[4 + c], 0x31);
  }
#pragma GCC unroll 8
  for (int j = 0; j < 8; j++)
    if (j < cols) storeu(dst + j * ldd, rm, r[j]);
}

#else
// The portable baseline: GCC's generic vectors (the compiler lowers them to the target's vector
// instructions), masked accesses lane by lane.
constexpr int W = 4;
constexpr const char* kName = "baseline";
constexpr int kRegisters = 16;  // x86-64 SSE2 (AArch64 NEON has 32)
typedef float V __attribute__((vector_size(16)));
typedef int32_t VI __attribute__((vector_size(16)));
using Mask = unsigned;

inline Mask first(int n) { return (1u << n) - 1; }
inline Mask all() { return 0xFu; }
inline Mask lanes(int lo, int hi) { return first(hi) & ~first(lo); }
inline Mask mask_or(Mask a, Mask b) { return a | b; }
inline Mask mask_and(Mask a, Mask b) { return a & b; }
inline Mask mask_andnot(Mask a, Mask b) { return ~a & b & 0xFu; }
inline unsigned bits(Mask m) { return m; }
inline int count(Mask m) { return __builtin_popcount(m); }

inline V zero() { return V{0, 0, 0, 0}; }
inline V set1(float a) { return V{a, a, a, a}; }
inline V loadu(const float* p) {
  V v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline V load(const float* p) { return loadu(p); }
inline V loadu(Mask m, const float* p) {
  V v = zero();
  for (int i = 0; i < W; i++)
    if (m >> i & 1) v[i] = p[i];
  return v;
}
inline void storeu(float* p, V v) { std::memcpy(p, &v, sizeof v); }
inline void store(float* p, V v) { storeu(p, v); }
inline void storeu(float* p, Mask m, V v) {
  for (int i = 0; i < W; i++)
    if (m >> i & 1) p[i] = v[i];
}

inline V add(V a, V b) { return a + b; }
inline V sub(V a, V b) { return a - b; }
inline V mul(V a, V b) { return a * b; }
inline V div(V a, V b) { return a / b; }
inline V min(V a, V b) { return a < b ? a : b; }  // b where either is NaN, as the AVX min
inline V max(V a, V b) { return a > b ? a : b; }
inline V fmadd(V a, V b, V c) { return a * b + c; }
inline V fnmadd(V a, V b, V c) { return c - a * b; }
inline V abs(V a) {
  for (int i = 0; i < W; i++) a[i] = __builtin_fabsf(a[i]);
  return a;
}
inline V round_nearest(V a) {
  for (int i = 0; i < W; i++) a[i] = __builtin_nearbyintf(a[i]);
  return a;
}
inline V scale_pow2(V p, V n) {
  for (int i = 0; i < W; i++) p[i] = __builtin_ldexpf(p[i], (int)n[i]);
  return p;
}
inline V maskz(Mask m, V a) {
  for (int i = 0; i < W; i++)
    if (!(m >> i & 1)) a[i] = 0.0f;
  return a;
}
inline V select(Mask m, V a, V b) {
  for (int i = 0; i < W; i++)
    if (m >> i & 1) a[i] = b[i];
  return a;
}
inline float reduce_add(V a) { return (a[0] + a[2]) + (a[1] + a[3]); }

template <typename Pred>
inline Mask compare(V a, V b, Pred pred) {
  Mask m = 0;
  for (int i = 0; i < W; i++) m |= (Mask)pred(a[i], b[i]) << i;
  return m;
}
inline Mask neq(V a, V b) { return compare(a, b, [](float x, float y) { return !(x == y); }); }
inline Mask neq(Mask m, V a, V b) { return m & neq(a, b); }
inline Mask gt(V a, V b) { return compare(a, b, [](float x, float y) { return x > y; }); }
inline Mask lt(V a, V b) { return compare(a, b, [](float x, float y) { return x < y; }); }
inline Mask nlt(V a, V b) { return compare(a, b, [](float x, float y) { return !(x < y); }); }
inline Mask isnan(V a) { return compare(a, a, [](float x, float y) { return x != y; }); }

inline VI iota() { return VI{0, 1, 2, 3}; }
inline VI set1i(int a) { return VI{a, a, a, a}; }
inline VI addi(VI a, VI b) { return a + b; }
inline VI subi(VI a, VI b) { return a - b; }
inline VI loadu(Mask m, const int32_t* p) {
  VI v = set1i(0);
  for (int i = 0; i < W; i++)
    if (m >> i & 1) v[i] = p[i];
  return v;
}
inline void storeu(int32_t* p, Mask m, VI v) {
  for (int i = 0; i < W; i++)
    if (m >> i & 1) p[i] = v[i];
}
inline Mask eqi(VI a, VI b) {
  Mask m = 0;
  for (int i = 0; i < W; i++) m |= (Mask)(a[i] == b[i]) << i;
  return m;
}
inline VI selecti(Mask m, VI a, VI b) {
  for (int i = 0; i < W; i++)
    if (m >> i & 1) a[i] = b[i];
  return a;
}

inline void compress_store(int32_t* out, Mask m, VI v) {
  int k = 0;
  for (int i = 0; i < W; i++)
    if (m >> i & 1) out[k++] = v[i];
}
inline void compress_store(float* out, Mask m, V v) {
  int k = 0;
  for (int i = 0; i < W; i++)
    if (m >> i & 1) out[k++] = v[i];
}

inline void deinterleave(V a, V b, V& even, V& odd) {
  even = V{a[0], a[2], b[0], b[2]};
  odd = V{a[1], a[3], b[1], b[3]};
}
inline void interleave(V e, V o, V& lo, V& hi) {
  lo = V{e[0], o[0], e[1], o[1]};
  hi = V{e[2], o[2], e[3], o[3]};
}

inline V sum_lanes(const V* v) {
  V s;
  for (int j = 0; j < W; j++) s[j] = reduce_add(v[j]);
  return s;
}

inline void transpose_block(float* dst, std::ptrdiff_t ldd, const float* src, std::ptrdiff_t lds,
                            int rows, int cols) {
  for (int j = 0; j < cols; j++)
    for (int i = 0; i < rows; i++) dst[j * ldd + i] = src[i * lds + j];
}
#endif

#if !defined(__AVX512F__)
// Vectors of at most 8 lanes for short pieces (AVX-512 has its own): here, the full vectors.
namespace narrow {
constexpr int W = simd::W;
using simd::add;
using simd::first;
using simd::fmadd;
using simd::loadu;
using simd::Mask;
using simd::set1;
using simd::storeu;
using simd::V;
using simd::zero;
}  // namespace narrow
#endif

// Two half vectors as one: lanes [0, W/2) from lo, [W/2, W) from hi (W/2 floats read from each).
#if defined(__AVX512F__)
inline V loadu_halves(const float* lo, const float* hi) {
  return _mm512_insertf32x8(_mm512_castps256_ps512(_mm256_loadu_ps(lo)), _mm256_loadu_ps(hi), 1);
}
#elif defined(__AVX2__) && defined(__FMA__)
inline V loadu_halves(const float* lo, const float* hi) { return _mm256_loadu2_m128(hi, lo); }
#else
inline V loadu_halves(const float* lo, const float* hi) { return V{lo[0], lo[1], hi[0], hi[1]}; }
#endif

// The vectors of n floats, and the lanes of the last one that are in the span.
struct Span {
  int count;
  Mask tail;
};
inline Span span(std::ptrdiff_t n) {
  const int count = (int)((n + W - 1) / W);
  return {count, first((int)(n - (std::ptrdiff_t)W * (count - 1)))};
}

}  // namespace simd
}  // namespace NNFAST_ISA
}  // namespace nnfast
