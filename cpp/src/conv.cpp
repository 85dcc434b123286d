// Conv2d as im2col + a small register-blocked GEMM, one image at a time (see conv.h).
//
// Per image n, with CKK = C*KH*KW and P = OH*OW:
//   col (CKK, P)   im2col of x[n]: col[(c*KH+kh)*KW+kw, oh*OW+ow] = x[n, c, oh*SH-PH+kh, ow*SW-PW+kw]
//                  (0 outside the image)
//   forward:  y[n] (OC, P)  = W (OC, CKK) @ col + bias
//   backward: dcol (CKK, P) = W^T @ dy[n], then col2im adds dcol back into dx[n]
//             dW^T (CKK, OC) += col @ dy[n]^T, with dy[n]^T (P, OC) transposed into scratch
//             dbias (OC)     += sums of dy[n] over P
// These GEMMs are small (OC = 16..32, CKK = 25..400, P = 64..576 at LeNet sizes), so they do not
// go through sgemm's packing: a micro-kernel reads the operands in place, broadcasting A and
// loading W-float pieces of B's rows (simd.h), and keeps an MR x W*NV tile of C in registers over
// the whole K.
// Fused with ReLU and max pooling (conv2d_relu_maxpool_*), the forward pools each image while its
// output is in cache, and the backward, whose dy is then three quarters zeros or more, sums only
// dy's nonzero terms, over the transposed forms colT (P, CKK) = col^T and dcolT = dcol^T:
//             dW[oc, :]   += dy[oc, p] * colT[p, :]   for the p with dy[oc, p] != 0
//             dcolT[p, :]  = sum of dy[oc, p] * W[oc, :] for the oc with dy[oc, p] != 0
// (a layer with few short kernel rows, LeNet's first, reads colT's rows as windows of x in place:
// window_sums). The forward writes the im2col of a few output rows at a time where that fits L1
// (panel_rows: LeNet's first layer), and applies the ReLU in the GEMM's tile epilogue.
//
// Threads and determinism. Images of the forward pass are independent, so threads split the batch
// (each with its own im2col buffer): every output is computed the same way for any thread count.
// The weight and bias gradients sum over the batch, so the batch is cut into chunks that depend on
// N alone (never on the thread count); each chunk sums its images, in order, into its own partial
// buffer, and the partials are then added in chunk order. dx is per image and rides along.
//
// Workspace (conv2d_workspace_size floats):
//   num_threads slots of [col (CKK*P) | dyT (P*OC) | dy (OC*P) | colT (P*CKKp) | dcolT (P*CKKp) |
//                         indices | gemm]   scratch of the thread using the slot (dy on: the
//                         fused backward; colT on: its zero-skipping path, where window_sums
//                         keeps its offsets of x instead; CKKp = CKK rounded to 16; gemm:
//                         gemm_strided's scratch for the products)
//   dw_chunks(N) partials of [dW^T (CKK, OC) or dW (OC, CKKp) | dbias (OC)]   (backward only)
//   w with rows padded to CKKp                       (the zero-skipping path)
#include "nnfast/conv.h"

#include "nnfast/activation.h"
#include "nnfast/gemm.h"

#include "simd.h"
#include "sparse_rows.h"
#include "vmath.h"

#include <omp.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <utility>

namespace nnfast {
inline namespace NNFAST_ISA {

using idx = std::ptrdiff_t;

// ---------------------------------------------------------------------------------------------
// Workspace layout.

static constexpr int kMaxChunks = 16;  // dW / dbias partial sums: at most this many batch chunks
static int dw_chunks(int N) { return std::min(N, kMaxChunks); }
static size_t ckk_padded(const Conv2dShape& s) { return round16((size_t)s.C * s.KH * s.KW); }
// gemm_strided's scratch for every product here: W (OC, CKK) @ col, and the backward's products
// on up to CKK rows, over P or OC.
static size_t gemm_floats(const Conv2dShape& s) {
  const int P = s.OH() * s.OW(), CKK = s.C * s.KH * s.KW;
  return std::max({gemm_strided_workspace_size(s.OC, CKK, 0),
                   gemm_strided_workspace_size(CKK, P, 0),
                   gemm_strided_workspace_size(CKK, s.OC, 0)});
}
static size_t slot_floats(const Conv2dShape& s) {
  const size_t P = (size_t)s.OH() * s.OW(), CKK = (size_t)s.C * s.KH * s.KW;
  return round16(CKK * P) + 2 * round16(P * s.OC) + 2 * P * ckk_padded(s) +
         round16(std::max<size_t>(P, s.OC) + 16) + gemm_floats(s);
}
// The slot's gemm scratch, at its end.
static float* slot_gemm(float* slot, const Conv2dShape& s) {
  return slot + slot_floats(s) - gemm_floats(s);
}
static size_t partial_floats(const Conv2dShape& s) {
  return round16((size_t)s.OC * ckk_padded(s) + s.OC);
}
static int slots(const Conv2dShape& s, int num_threads) {
  return std::max(1, std::min(num_threads, s.N));
}

size_t conv2d_workspace_size(const Conv2dShape& s, int num_threads) {
  return (size_t)slots(s, num_threads) * slot_floats(s) + (size_t)dw_chunks(s.N) * partial_floats(s) +
         (size_t)s.OC * ckk_padded(s);
}

// ---------------------------------------------------------------------------------------------
// Short spans (a row of an image is often 8..28 floats, too short for memcpy or a vector loop).

static inline void copy_span(float* d, const float* s, int n) {
  using namespace simd;
  int i = 0;
  for (; i + W <= n; i += W) storeu(d + i, loadu(s + i));
  if (i < n) {
    const Mask m = first(n - i);
    storeu(d + i, m, loadu(m, s + i));
  }
}
static inline void add_span(float* d, const float* s, int n) {
  using namespace simd;
  int i = 0;
  for (; i + W <= n; i += W) storeu(d + i, add(loadu(d + i), loadu(s + i)));
  if (i < n) {
    const Mask m = first(n - i);
    storeu(d + i, m, add(loadu(m, d + i), loadu(m, s + i)));
  }
}

// The geometry as locals, with the valid output columns of every kw: output column ow reads input
// column ow*SW - PW + kw, inside the image for ow in [lo[kw], hi[kw]). (Locals also keep the
// compiler from reloading the shape after every store into float buffers.)
struct Geometry {
  int C, H, W, KH, KW, SH, SW, PH, PW, OH, OW;
  size_t P;
  explicit Geometry(const Conv2dShape& s)
      : C(s.C), H(s.H), W(s.W), KH(s.KH), KW(s.KW), SH(s.SH), SW(s.SW), PH(s.PH), PW(s.PW),
        OH(s.OH()), OW(s.OW()), P((size_t)OH * OW) {}
  std::pair<int, int> valid_cols(int kw) const {
    const int first = PW - kw;         // ow*SW >= PW - kw
    const int last = W - 1 + PW - kw;  // ow*SW <= W - 1 + PW - kw
    int lo = first <= 0 ? 0 : (first + SW - 1) / SW;
    int hi = last < 0 ? 0 : last / SW + 1;
    lo = std::min(lo, OW);
    hi = std::max(lo, std::min(hi, OW));
    return {lo, hi};
  }
};

// im2col for stride 1 without padding (every LeNet layer): each col row is OH windows of OW
// consecutive input floats, W apart; no bounds to clip, so no per-row geometry (whose divisions
// cost more than the copies). col is written front to back, every float of it, so the rest of a
// row is a masked load (the lanes past the row 0) and a whole-vector store, whose extra lanes the
// stores after it overwrite; masked only where it would reach past the end of col (the caller's
// buffers may follow it).
static void im2col_unpadded_stride1(float* col, const float* xn, const Geometry& g) {
  using namespace simd;
  const int OH = g.OH, OW = g.OW, IW = g.W;
  const int full = OW / W * W;
  const Mask tail = first(OW - full), half = first(W / 2);
  const float* col_end = col + (size_t)g.C * g.KH * g.KW * g.P;
  for (int c = 0; c < g.C; c++)
    for (int kh = 0; kh < g.KH; kh++)
      for (int kw = 0; kw < g.KW; kw++) {
        float* d = col + (size_t)((c * g.KH + kh) * g.KW + kw) * g.P;
        const float* xr = xn + ((size_t)c * g.H + kh) * IW + kw;
        if (2 * OW == W) {  // two output rows per store
          int oh = 0;
          for (; oh + 2 <= OH; oh += 2, d += W, xr += 2 * IW) storeu(d, loadu_halves(xr, xr + IW));
          if (oh < OH) {
            const V v = loadu(half, xr);
            if (d + W <= col_end) storeu(d, v);
            else storeu(d, half, v);
          }
          continue;
        }
        for (int oh = 0; oh < OH; oh++, d += OW, xr += IW) {
          for (int j = 0; j < full; j += W) storeu(d + j, loadu(xr + j));
          if (full == OW) continue;
          const V v = loadu(tail, xr + full);
          if (d + full + W <= col_end) storeu(d + full, v);
          else storeu(d + full, tail, v);
        }
      }
}

// im2col of one image xn (C,H,W) into col (CKK, P), rows in order.
static void im2col(float* col, const float* xn, const Conv2dShape& s) {
  using namespace simd;
  const Geometry g(s);
  if (g.SH == 1 && g.SW == 1 && g.PH == 0 && g.PW == 0) return im2col_unpadded_stride1(col, xn, g);
  const float* col_end = col + (size_t)g.C * g.KH * g.KW * g.P;
  for (int c = 0; c < g.C; c++) {
    const float* xc = xn + (size_t)c * g.H * g.W;
    for (int kh = 0; kh < g.KH; kh++) {
      // output rows [oh_lo, oh_hi) read input rows ih = oh*SH - PH + kh inside [0, H)
      const int t_lo = g.PH - kh, t_hi = g.H - 1 + g.PH - kh;
      const int oh_lo = std::min(g.OH, t_lo <= 0 ? 0 : (t_lo + g.SH - 1) / g.SH);
      const int oh_hi = std::max(oh_lo, std::min(g.OH, t_hi < 0 ? 0 : t_hi / g.SH + 1));
      for (int kw = 0; kw < g.KW; kw++) {
        float* row = col + (size_t)((c * g.KH + kh) * g.KW + kw) * g.P;
        const auto [lo, hi] = g.valid_cols(kw);
        std::fill(row, row + (size_t)oh_lo * g.OW, 0.0f);
        std::fill(row + (size_t)oh_hi * g.OW, row + g.P, 0.0f);
        // xr[ow*SW] = x[ih, ow*SW - PW + kw] for the first valid row; rows are SH*W apart
        const float* xr = xc + (idx)(oh_lo * g.SH - g.PH + kh) * g.W - g.PW + kw;
        const idx step = (idx)g.SH * g.W;
        float* d = row + (size_t)oh_lo * g.OW;
        if (g.SW == 1 && lo == 0 && hi == g.OW && 2 * g.OW == W) {
          // Rows of half a vector (an 8 x 8 output map with AVX-512): two rows per store.
          int oh = oh_lo;
          for (; oh + 2 <= oh_hi; oh += 2, d += W, xr += 2 * step)
            storeu(d, loadu_halves(xr, xr + step));
          if (oh < oh_hi) storeu(d, first(W / 2), loadu(first(W / 2), xr));
          continue;
        }
        if (g.SW == 1 && lo == 0 && hi == g.OW) {
          // Whole rows: full vector copies, then the rest of the row with one load and store.
          // The load zeroes the lanes past the row and a full-width store writes them into the
          // start of the next output row, which that row's own stores overwrite next; the last
          // row's store is masked, and so is any store that would reach past the end of col
          // (the caller's buffers may follow it).
          const int full = g.OW / W * W, rest = g.OW - full;
          const Mask m = first(rest);
          for (int oh = oh_lo; oh < oh_hi; oh++, d += g.OW, xr += step) {
            for (int j = 0; j < full; j += W) storeu(d + j, loadu(xr + j));
            if (rest == 0) continue;
            const V v = loadu(m, xr + full);
            if (oh + 1 < oh_hi && d + full + W <= col_end) storeu(d + full, v);
            else storeu(d + full, m, v);
          }
          continue;
        }
        for (int oh = oh_lo; oh < oh_hi; oh++, d += g.OW, xr += step) {
          std::fill(d, d + lo, 0.0f);
          if (g.SW == 1) copy_span(d + lo, xr + lo, hi - lo);
          else for (int ow = lo; ow < hi; ow++) d[ow] = xr[(idx)ow * g.SW];
          std::fill(d + hi, d + g.OW, 0.0f);
        }
      }
    }
  }
}

// col2im: dxn (C,H,W) = the sum, over every entry of col (CKK, P), of that entry added to the pixel
// it was copied from. Reference form: zero dxn, then scatter-add (any stride).
static void col2im_scatter(float* dxn, const float* col, const Geometry& g) {
  std::fill(dxn, dxn + (size_t)g.C * g.H * g.W, 0.0f);
  for (int c = 0; c < g.C; c++) {
    float* dc = dxn + (size_t)c * g.H * g.W;
    for (int kh = 0; kh < g.KH; kh++)
      for (int kw = 0; kw < g.KW; kw++) {
        const float* src = col + (size_t)((c * g.KH + kh) * g.KW + kw) * g.P;
        const auto [lo, hi] = g.valid_cols(kw);
        for (int oh = 0; oh < g.OH; oh++, src += g.OW) {
          const int ih = oh * g.SH - g.PH + kh;
          if (ih < 0 || ih >= g.H) continue;
          for (int ow = lo; ow < hi; ow++) dc[(size_t)ih * g.W + ow * g.SW - g.PW + kw] += src[ow];
        }
      }
  }
}

// Gather form for SW == 1: each W-wide piece of an input row sums, in registers, every (kh, kw)
// entry that lands on it, and is stored once. (Scatter-adding overlapping spans through memory
// instead stalls on store-to-load forwarding, the kw-shifted spans overlapping the last store.)
// The lanes each kw feeds depend only on the piece, so their masks are computed once per piece,
// and four accumulators keep the adds from waiting on each other.
static constexpr int kGatherMaxKW = 64;
static void col2im_rows(float* dxn, const float* col, const Geometry& g) {
  using namespace simd;
  Mask mask[kGatherMaxKW];
  int off[kGatherMaxKW];
  for (int j0 = 0; j0 < g.W; j0 += W) {
    for (int kw = 0; kw < g.KW; kw++) {
      // lane i is input column iw = j0 + i, fed by output column ow = iw + PW - kw
      off[kw] = j0 + g.PW - kw;                                   // ow of lane 0
      const int i_lo = std::max(0, -off[kw]);                     // ow >= 0
      const int i_hi = std::min({W, g.OW - off[kw], g.W - j0});   // ow < OW, iw < W
      mask[kw] = i_lo >= i_hi ? first(0) : lanes(i_lo, i_hi);
    }
    const bool whole = j0 + W <= g.W;  // a whole vector of the row, else its last lanes
    const Mask store = first(std::min(W, g.W - j0));
    for (int c = 0; c < g.C; c++)
      for (int ih = 0; ih < g.H; ih++) {
        V acc[4] = {zero(), zero(), zero(), zero()};
        for (int kh = 0; kh < g.KH; kh++) {
          const int t = ih + g.PH - kh;  // = oh * SH (no divisions when SH == 1: they cost more
          int oh = t;                    // than the loads)
          if (g.SH != 1) {
            if (t < 0 || t % g.SH != 0) continue;
            oh = t / g.SH;
          }
          if (oh < 0 || oh >= g.OH) continue;
          const float* src = col + (size_t)(c * g.KH + kh) * g.KW * g.P + (size_t)oh * g.OW;
          int kw = 0;
          for (; kw + 4 <= g.KW; kw += 4, src += 4 * g.P)
#pragma GCC unroll 4
            for (int u = 0; u < 4; u++)
              acc[u] = add(acc[u], loadu(mask[kw + u], src + u * g.P + off[kw + u]));
          for (; kw < g.KW; kw++, src += g.P) acc[0] = add(acc[0], loadu(mask[kw], src + off[kw]));
        }
        const V sum = add(add(acc[0], acc[1]), add(acc[2], acc[3]));
        float* d = dxn + ((size_t)c * g.H + ih) * g.W + j0;
        if (whole) storeu(d, sum);
        else storeu(d, store, sum);
      }
  }
}

static void col2im(float* dxn, const float* col, const Conv2dShape& s) {
  const Geometry g(s);
  if (g.SW == 1 && g.KW <= kGatherMaxKW) return col2im_rows(dxn, col, g);
  col2im_scatter(dxn, col, g);
}

// The transposed forms for the zero-skipping backward, with rows of CKK floats ldk apart:
//   im2row: colT (P, ldk), colT[p, (c*KH+kh)*KW+kw] = col[(c*KH+kh)*KW+kw, p]  (pad columns 0)
//   row2im: dxn (C,H,W) = col2im of dcolT's transpose
// Stride 1 without padding copies and adds KW-float pieces directly (KW <= simd::W; row2im keeps
// each input row, at most kDirectRowFloats = 16 floats, in registers while the pieces of one
// output row are added in); any other geometry goes through im2col / col2im and a transpose.
static constexpr int kDirectRowFloats = 16;
static bool direct_rows(const Geometry& g) {
  return g.SH == 1 && g.SW == 1 && g.PH == 0 && g.PW == 0 && g.KW <= simd::W;
}

// Each piece: a masked load (the lanes past the piece 0) and a whole-vector store (masked stores
// are slow on AVX2 and lane by lane on the baseline), whose extra lanes fall where the row's
// later pieces, its pad columns (0, as they must be) or the next row's first pieces go, all
// stored after it; masked only where it would reach past the end of colT. Pieces of at most
// narrow::W floats in narrow vectors (with AVX-512, a 16-lane access would span a second cache
// line far more often).
static void im2row(float* colT, idx ldk, float* col, const float* xn, const Conv2dShape& s) {
  const Geometry g(s);
  if (!direct_rows(g)) {
    im2col(col, xn, s);
    transpose(colT, ldk, col, (idx)g.P, g.C * g.KH * g.KW, (int)g.P);
    return;
  }
  const bool short_pieces = g.KW <= simd::narrow::W;
  const simd::narrow::Mask short_piece = simd::narrow::first(std::min(g.KW, simd::narrow::W));
  const simd::Mask piece = simd::first(g.KW);
  const float* end = colT + (idx)g.P * ldk;
  for (int oh = 0; oh < g.OH; oh++)
    for (int ow = 0; ow < g.OW; ow++) {
      float* row = colT + ((idx)oh * g.OW + ow) * ldk;
      for (int c = 0; c < g.C; c++)
        for (int kh = 0; kh < g.KH; kh++, row += g.KW) {
          const float* from = xn + ((idx)c * g.H + oh + kh) * g.W + ow;
          if (short_pieces) {
            using namespace simd::narrow;
            const V v = loadu(short_piece, from);
            if (row + W <= end) storeu(row, v);
            else storeu(row, short_piece, v);
          } else {
            using namespace simd;
            const V v = loadu(piece, from);
            if (row + W <= end) storeu(row, v);
            else storeu(row, piece, v);
          }
        }
    }
}

// row2im for input rows of NV vectors (NV W >= the row's g.W floats): for input row ih of channel
// c, each kh with oh = ih - kh an output row adds dcolT[(oh, ow), (c, kh, 0..KW)] into the row's
// columns ow..ow+KW-1, vector by vector (vector q: columns [q W, q W + W), which the pieces of
// ow in [q W - KW + 1, q W + W) meet), into U independent sums per vector, and each vector of
// the row is stored once.
template <int NV>
static void row2im_rows(float* dxn, const float* dcolT, idx ldk, const Geometry& g) {
  using namespace simd;
  constexpr int U = 4 * NV <= kRegisters / 2 ? 4 : 2;
  const int KW = g.KW;
  // piece[q][ow]: the lanes of vector q that output column ow's piece fills, [ow - q W,
  // ow - q W + KW) within [0, W) (OW <= g.W <= kDirectRowFloats)
  int ow_lo[NV], ow_hi[NV];
  Mask piece[NV][kDirectRowFloats];
  for (int q = 0; q < NV; q++) {
    ow_lo[q] = std::max(0, q * W - KW + 1);
    ow_hi[q] = std::min(g.OW, q * W + W);
    for (int ow = ow_lo[q]; ow < ow_hi[q]; ow++)
      piece[q][ow] = lanes(std::max(0, ow - q * W), std::min(W, ow - q * W + KW));
  }
  for (int c = 0; c < g.C; c++)
    for (int ih = 0; ih < g.H; ih++) {
      V acc[U][NV];
#pragma GCC unroll 4
      for (int u = 0; u < U; u++)
#pragma GCC unroll 4
        for (int q = 0; q < NV; q++) acc[u][q] = zero();
      for (int kh = std::max(0, ih - g.OH + 1); kh <= std::min(g.KH - 1, ih); kh++) {
        const float* piece0 = dcolT + (idx)(ih - kh) * g.OW * ldk + (c * g.KH + kh) * KW;
#pragma GCC unroll 4
        for (int q = 0; q < NV; q++) {
          // src - ow: the address from which vector q's lanes read output column ow's piece
          int ow = ow_lo[q];
          const float* src = piece0 + (idx)ow * ldk + q * W;
          for (; ow + U <= ow_hi[q]; ow += U, src += U * ldk)
#pragma GCC unroll 4
            for (int u = 0; u < U; u++)
              acc[u][q] = add(acc[u][q], loadu(piece[q][ow + u], src + u * ldk - (ow + u)));
          for (; ow < ow_hi[q]; ow++, src += ldk)
            acc[0][q] = add(acc[0][q], loadu(piece[q][ow], src - ow));
        }
      }
      float* d = dxn + ((idx)c * g.H + ih) * g.W;
#pragma GCC unroll 4
      for (int q = 0; q < NV; q++) {
        V sum = add(acc[0][q], acc[1][q]);
        if constexpr (U == 4) sum = add(sum, add(acc[2][q], acc[3][q]));
        if (q * W + W <= g.W) storeu(d + q * W, sum);
        else storeu(d + q * W, first(g.W - q * W), sum);
      }
    }
}
using Row2imRows = void (*)(float*, const float*, idx, const Geometry&);
template <size_t... I>
constexpr std::array<Row2imRows, sizeof...(I)> row2im_rows_table(std::index_sequence<I...>) {
  return {&row2im_rows<int(I) + 1>...};
}
static constexpr auto ROW2IM_ROWS =  // [NV - 1]
    row2im_rows_table(std::make_index_sequence<(kDirectRowFloats + simd::W - 1) / simd::W>{});

static void row2im(float* dxn, const float* dcolT, idx ldk, float* col, const Conv2dShape& s) {
  const Geometry g(s);
  if (!direct_rows(g) || g.W > kDirectRowFloats) {
    transpose(col, (idx)g.P, dcolT, ldk, (int)g.P, g.C * g.KH * g.KW);
    col2im(dxn, col, s);
    return;
  }
  ROW2IM_ROWS[(g.W + simd::W - 1) / simd::W - 1](dxn, dcolT, ldk, g);
}

// The zero-skipping weight gradient read straight from the image, for a stride-1 unpadded
// convolution with few kernel rows (C * KH) and short ones (LeNet's first layer: one channel,
// 5 x 5):
//   dW[oc, c, kh, :] += sum over p with dy[oc, p] != 0 of dy[oc, p] * x[c, oh + kh, ow : ow + KW]
// (p = oh * OW + ow; `offset` holds x's offset of each p), one accumulator of KW lanes per kernel
// row, instead of copying every window into colT (P x CKK floats per image, 73 KB for LeNet's
// first layer) and summing colT's rows: the same terms, spread over U partial sums (term j into
// sum j mod U, the first starting from dW's row) and added as sparse::sum_rows adds them over a
// colT row of the same width, so the bits are those of the im2row path (a row of one sum_rows
// chunk, whose vector count sets U). The U x R accumulators take at most three quarters of the
// vector registers.
static constexpr int kWindowAccumulators = simd::kRegisters * 3 / 4;
static int window_partial_sums(const Conv2dShape& s) {
  const int nv = (int)(ckk_padded(s) / simd::W);  // sum_rows's vectors over a colT row
  return nv <= 2 ? 4 : nv <= 4 ? 2 : 1;
}
static bool window_dw(const Conv2dShape& s) {
  return direct_rows(Geometry(s)) && s.KW <= simd::narrow::W &&
         ckk_padded(s) <= (size_t)simd::W * sparse::CHUNK_V &&
         s.C * s.KH * window_partial_sums(s) <= kWindowAccumulators;
}
template <int R, int U>
static void window_sums(float* dw_oc, const int* ids, const float* dy, int count,
                        const int* offset, const float* xn, int H, int W, int KH, int KW) {
  // narrow vectors (KW <= narrow::W, as window_dw requires): with AVX-512, a masked 16-lane load
  // would span the 64 bytes after the window, a second cache line for nearly every window
  using namespace simd::narrow;
  const Mask m = first(KW);
  idx row_at[R];  // kernel row r (channel r / KH, row r % KH) from a window's corner
  for (int r = 0; r < R; r++) row_at[r] = ((idx)(r / KH) * H + r % KH) * W;
  V acc[U][R];
#pragma GCC unroll 8
  for (int r = 0; r < R; r++) {
    acc[0][r] = loadu(m, dw_oc + r * KW);
#pragma GCC unroll 4
    for (int u = 1; u < U; u++) acc[u][r] = zero();
  }
  // terms j, j + 1, .. into sums 0, 1, ..: u stays a constant of the unrolled loops, so the sums
  // stay in registers
  for (int j = 0; j < count; j += U) {
    const int terms = std::min(U, count - j);
#pragma GCC unroll 4
    for (int u = 0; u < U; u++) {
      if (u >= terms) break;
      const int p = ids[j + u];
      const V d = set1(dy[p]);
      const float* xw = xn + offset[p];
#pragma GCC unroll 8
      for (int r = 0; r < R; r++) acc[u][r] = fmadd(d, loadu(m, xw + row_at[r]), acc[u][r]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; r++) {
    V sum = acc[0][r];
    if constexpr (U == 4) sum = add(add(sum, acc[1][r]), add(acc[2][r], acc[3][r]));
    else if constexpr (U == 2) sum = add(sum, acc[1][r]);
    storeu(dw_oc + r * KW, m, sum);
  }
}
using WindowSums = void (*)(float*, const int*, const float*, int, const int*, const float*, int,
                            int, int, int);
template <int U, size_t... I>
constexpr std::array<WindowSums, sizeof...(I)> window_sums_table(std::index_sequence<I...>) {
  return {&window_sums<int(I) + 1, U>...};
}
// [U = 4, 2, 1][R - 1], R * U <= kWindowAccumulators
static constexpr auto WINDOW_SUMS_4 =
    window_sums_table<4>(std::make_index_sequence<kWindowAccumulators / 4>{});
static constexpr auto WINDOW_SUMS_2 =
    window_sums_table<2>(std::make_index_sequence<kWindowAccumulators / 2>{});
static constexpr auto WINDOW_SUMS_1 =
    window_sums_table<1>(std::make_index_sequence<kWindowAccumulators>{});
static WindowSums pick_window_sums(const Conv2dShape& s) {
  const int rows = s.C * s.KH, u = window_partial_sums(s);
  return u == 4 ? WINDOW_SUMS_4[rows - 1] : u == 2 ? WINDOW_SUMS_2[rows - 1]
                                                   : WINDOW_SUMS_1[rows - 1];
}

// Channels per group in backward: the group's im2col rows (group*KH*KW x P floats) fit in 25 KB
// of L1 (at least one channel).
static int channel_group(const Conv2dShape& s) {
  const size_t per_channel = (size_t)s.KH * s.KW * s.OH() * s.OW();
  return (int)std::clamp<size_t>(6400 / per_channel, 1, (size_t)s.C);
}

// ---------------------------------------------------------------------------------------------

// Output rows per im2col panel of the forward (0: the whole image at once): a few rows of
// output (32 to 64 columns, a GEMM column block) whose im2col rows fit in 16 KB, so the panel is
// written and read in L1. LeNet's first convolution (CKK = 25, 24 x 24 outputs) takes two rows
// at a time, rather than sending its whole im2col (57.6 KB) out to L2 and back. Stride 1 without
// padding only (the panel is then the im2col of a band of input rows).
static int panel_rows(const Conv2dShape& s) {
  const int OW = s.OW(), CKK = s.C * s.KH * s.KW;
  if (s.SH != 1 || s.SW != 1 || s.PH != 0 || s.PW != 0 || OW > 64) return 0;
  const int rows = std::max(1, 64 / OW);
  if (rows * OW < 32 || (size_t)CKK * rows * OW * sizeof(float) > 16384 || rows >= s.OH())
    return 0;
  return rows;
}

// One image: out (OC, P) = act(W (OC, CKK) @ im2col(xn) + bias), the activation applied to each
// tile in the GEMM's epilogue; im2col into col (CKK*P floats), whole or a band of output rows at
// a time (panel_rows); gemm: gemm_strided's scratch.
static void conv_image_forward(float* out, float* col, float* gemm, const float* xn,
                               const float* w, const float* bias, const Conv2dShape& s, int band,
                               Activation act) {
  const int P = s.OH() * s.OW(), CKK = s.C * s.KH * s.KW;
  StridedGemm g{s.OC, P, CKK, w, CKK, 1, col, P, out, P, 1.0f, 0.0f, bias};
  g.finish.act = act;
  if (band == 0) {
    im2col(col, xn, s);
    gemm_strided(g, gemm);
    return;
  }
  for (int oh0 = 0; oh0 < s.OH(); oh0 += band) {
    Geometry rows(s);  // the band's output rows oh0 .. oh0 + OH - 1, from input row oh0
    rows.OH = std::min(band, s.OH() - oh0);
    rows.P = (size_t)rows.OH * rows.OW;
    im2col_unpadded_stride1(col, xn + (size_t)oh0 * s.W, rows);
    StridedGemm gb = g;
    gb.N = gb.ldb = (int)rows.P;
    gb.C = out + (size_t)oh0 * rows.OW;
    gemm_strided(gb, gemm);
  }
}

// y (N,OC,OH,OW) = conv(x (N,C,H,W), w (OC,C,KH,KW)) + bias; threads split the batch.
void conv2d_forward(float* y, const float* x, const float* w, const float* bias,
                    const Conv2dShape& s, float* workspace, int num_threads) {
  const size_t slot = slot_floats(s);
  const int nt = slots(s, num_threads), band = panel_rows(s);
#pragma omp parallel num_threads(nt)
  {
    float* col = workspace + (size_t)omp_get_thread_num() * slot;
#pragma omp for schedule(static)
    for (int n = 0; n < s.N; n++)
      conv_image_forward(y + (size_t)n * s.OC * s.OH() * s.OW(), col, slot_gemm(col, s),
                         x + (size_t)n * s.C * s.H * s.W, w, bias, s, band, Activation::none);
  }
}

// Per image: the convolution with its ReLU (conv_image_forward) into the slot's second buffer
// (P*OC floats, the dyT scratch of backward), then each channel's plane pooled.
void conv2d_relu_maxpool_forward(float* y, int32_t* argmax, const float* x, const float* w,
                                 const float* bias, const Conv2dShape& s, const Pool2dShape& pool,
                                 float* workspace, int num_threads) {
  const int P = s.OH() * s.OW(), CKK = s.C * s.KH * s.KW;
  const size_t slot = slot_floats(s), pooled = (size_t)pool.OH() * pool.OW();
  const int nt = slots(s, num_threads), band = panel_rows(s);
#pragma omp parallel num_threads(nt)
  {
    float* col = workspace + (size_t)omp_get_thread_num() * slot;
    float* out = col + round16((size_t)CKK * P);
#pragma omp for schedule(static)
    for (int n = 0; n < s.N; n++) {
      conv_image_forward(out, col, slot_gemm(col, s), x + (size_t)n * s.C * s.H * s.W, w, bias,
                         s, band, Activation::relu);
      for (int oc = 0; oc < s.OC; oc++) {
        const size_t plane = (size_t)n * s.OC + oc;
        maxpool2d_plane(y + plane * pooled, argmax + plane * pooled, out + (size_t)oc * P, pool);
      }
    }
  }
}

// A backward's shape and sizes (P, CKK = C*KK, ldk = CKK padded to 16), the channel group of the
// dense path, the window sums (or null) and w (OC, CKK), with wpad = w with rows padded to ldk
// (the zero-skipping path's dx). pdw_floats: the floats of a chunk's dW partial, dW^T (CKK, OC)
// on the dense path or dW (OC, ldk) when skipping zeros.
struct ConvBackward {
  Conv2dShape s;
  int P, KK, CKK, OC, group;
  idx ldk;
  size_t pdw_floats;
  bool skip_zeros;
  WindowSums window;
  const float* w;
  float* wpad;
};

static ConvBackward backward_plan(const Conv2dShape& s, const float* w, float* wpad,
                                  bool skip_zeros) {
  ConvBackward b{s, s.OH() * s.OW(), s.KH * s.KW, s.C * s.KH * s.KW, s.OC, channel_group(s),
                 (idx)ckk_padded(s), 0, skip_zeros,
                 skip_zeros && window_dw(s) ? pick_window_sums(s) : nullptr, w, wpad};
  b.pdw_floats = skip_zeros ? (size_t)b.OC * b.ldk : (size_t)b.CKK * b.OC;
  return b;
}

// wpad (OC, ldk) = w (OC, CKK), the pad columns zero.
static void pad_weights(const ConvBackward& b) {
  for (int oc = 0; oc < b.OC; oc++) {
    std::memcpy(b.wpad + oc * b.ldk, b.w + (size_t)oc * b.CKK, b.CKK * sizeof(float));
    std::fill(b.wpad + oc * b.ldk + b.CKK, b.wpad + (oc + 1) * b.ldk, 0.0f);
  }
}

// A thread's slot of the workspace (the layout at the top), offset aliasing colT: window_sums
// reads x through the offset of each output position, kept where im2row's colT would be.
struct BackwardSlot {
  float *col, *dyT, *dy_scratch, *colT, *dcolT, *gemm;
  int* ids;
  int* offset;
};

// The slot at `slot`, made ready for every image: window_sums' offsets, or colT's pad columns
// zeroed (im2row skips them) on the zero-skipping path.
static BackwardSlot backward_slot(float* slot, const ConvBackward& b) {
  BackwardSlot t;
  t.col = slot;
  t.dyT = t.col + round16((size_t)b.CKK * b.P);
  t.dy_scratch = t.dyT + round16((size_t)b.P * b.OC);
  t.colT = t.dy_scratch + round16((size_t)b.P * b.OC);
  t.dcolT = t.colT + (size_t)b.P * b.ldk;
  t.ids = reinterpret_cast<int*>(t.dcolT + (size_t)b.P * b.ldk);
  t.offset = reinterpret_cast<int*>(t.colT);
  t.gemm = slot_gemm(slot, b.s);
  const int P = b.P, OW = b.s.OW();
  if (b.window)
    for (int p = 0; p < P; p++) t.offset[p] = p / OW * b.s.W + p % OW;
  else if (b.skip_zeros && b.ldk > b.CKK)
    for (int p = 0; p < P; p++)
      std::fill(t.colT + p * b.ldk + b.CKK, t.colT + (p + 1) * b.ldk, 0.0f);
  return t;
}

// pdb (OC) += the sums of dy[n]'s rows (OC, P).
static void add_bias_sums(float* pdb, const float* dyn, int OC, int P) {
  for (int oc = 0; oc < OC; oc++) {
    const float* r = dyn + (size_t)oc * P;
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (int p = 0; p < P; p++) sum += r[p];
    pdb[oc] += sum;
  }
}

// One image, skipping dy's zeros: pdw (OC, ldk) += dW from window_sums or from colT = im2row(x[n])
// (when pdw is not null), and dx[n] = row2im(dcolT) with dcolT from dy[n]^T and wpad (when dxn
// is not null).
static void image_backward_sparse(const ConvBackward& b, const BackwardSlot& t, float* pdw,
                                  const float* dyn, const float* xn, float* dxn) {
  const int P = b.P, OC = b.OC;
  const idx ldk = b.ldk;
  const Conv2dShape& s = b.s;
  if (pdw && b.window) {
    for (int oc = 0; oc < OC; oc++) {
      const float* row = dyn + (size_t)oc * P;
      b.window(pdw + oc * ldk, t.ids, row, sparse::nonzero_indices(t.ids, row, P), t.offset, xn,
               s.H, s.W, s.KH, s.KW);
    }
  } else if (pdw) {
    im2row(t.colT, ldk, t.col, xn, s);
    for (int oc = 0; oc < OC; oc++) {
      const float* row = dyn + (size_t)oc * P;
      float* out = pdw + oc * ldk;
      sparse::sum_rows_all(out, out, t.ids, row, sparse::nonzero_indices(t.ids, row, P), t.colT,
                           ldk, ldk);
    }
  }
  if (dxn) {
    transpose(t.dyT, OC, dyn, P, OC, P);  // dyT (P, OC)
    for (int p = 0; p < P; p++) {
      const float* row = t.dyT + (size_t)p * OC;
      sparse::sum_rows_all(t.dcolT + p * ldk, nullptr, t.ids, row,
                           sparse::nonzero_indices(t.ids, row, OC), b.wpad, ldk, ldk);
    }
    row2im(dxn, t.dcolT, ldk, t.col, s);
  }
}

// One image through the GEMMs: pdw (dW^T, CKK x OC) += col @ dy[n]^T (when pdw is not null) and
// dx[n] = col2im(W^T @ dy[n]) (when dxn is not null), a group of channels at a time, whose
// im2col rows stay in L1 from the copy through both products (the rows of a channel group are
// the im2col of those channels alone).
static void image_backward_dense(const ConvBackward& b, const BackwardSlot& t, float* pdw,
                                 const float* dyn, const float* xn, float* dxn) {
  const int P = b.P, OC = b.OC, KK = b.KK, CKK = b.CKK;
  const Conv2dShape& s = b.s;
  if (pdw) transpose(t.dyT, OC, dyn, P, OC, P);
  for (int c0 = 0; c0 < s.C; c0 += b.group) {
    Conv2dShape g = s;
    g.C = std::min(b.group, s.C - c0);
    const int r0 = c0 * KK, rows = g.C * KK;
    if (pdw) {
      // dW^T rows (rows, OC) += col rows (rows, P) @ dy[n]^T (P, OC)
      im2col(t.col, xn + (size_t)c0 * s.H * s.W, g);
      gemm_strided({rows, OC, P, t.col, P, 1, t.dyT, OC, pdw + (size_t)r0 * OC, OC, 1.0f, 1.0f,
                    nullptr},
                   t.gemm);
    }
    if (dxn) {
      // dcol rows (rows, P) = W^T rows (rows, OC) @ dy[n] (OC, P), into col; then col2im.
      gemm_strided({rows, P, OC, b.w + r0, 1, CKK, dyn, P, t.col, P, 1.0f, 0.0f, nullptr}, t.gemm);
      col2im(dxn + (size_t)c0 * s.H * s.W, t.col, g);
    }
  }
}

// dw (OC, CKK) (+)= the chunks' dW partials (part floats apart), added in chunk order into chunk
// 0's, in blocks of elements shared out among the threads (the same sums for any split), then
// transposed (or copied) into dw. Orphaned `omp for` loops: called by every thread of the region.
static void add_dw_partials(float* dw, float* partials, size_t part, int chunks,
                            const ConvBackward& b, bool accumulate) {
  const size_t total = b.pdw_floats;
  const int OC = b.OC, CKK = b.CKK;
  const idx ldk = b.ldk;
  constexpr size_t kBlock = 1024;
#pragma omp for schedule(static)
  for (size_t e0 = 0; e0 < total; e0 += kBlock) {
    const size_t e1 = std::min(total, e0 + kBlock);
    for (int ch = 1; ch < chunks; ch++) {
      const float* src = partials + (size_t)ch * part;
#pragma omp simd
      for (size_t e = e0; e < e1; e++) partials[e] += src[e];
    }
  }
#pragma omp for schedule(static)
  for (int oc = 0; oc < OC; oc++)
    for (int k = 0; k < CKK; k++) {
      const float sum = b.skip_zeros ? partials[oc * ldk + k] : partials[(size_t)k * OC + oc];
      dw[(size_t)oc * CKK + k] = accumulate ? dw[(size_t)oc * CKK + k] + sum : sum;
    }
}

// dbias (OC) (+)= the chunks' dbias partials (after each chunk's dW partial), in chunk order.
static void add_dbias_partials(float* dbias, const float* partials, size_t part, int chunks,
                               const ConvBackward& b, bool accumulate) {
  for (int oc = 0; oc < b.OC; oc++) {
    float sum = partials[b.pdw_floats + oc];
    for (int ch = 1; ch < chunks; ch++) sum += partials[(size_t)ch * part + b.pdw_floats + oc];
    dbias[oc] = accumulate ? dbias[oc] + sum : sum;
  }
}

// From dy: dx overwritten, dw += dy (*) x, dbias += sum dy; batch chunks fixed by N (see top).
// dy_of(n, scratch, tmp) gives dy[n] (OC, P): a pointer into dy, or `scratch` (OC*P floats of the
// thread's slot) filled with it, using `tmp` (P*OC floats, free at that point) as it likes.
//
// skip_zeros (dy mostly zeros, x and w all finite): the products skip dy's zeros,
//   dW[oc, :] += sum over p with dy[oc,p] != 0 of dy[oc,p] * colT[p, :]   (colT = col^T)
//   dcolT[p, :] = sum over oc with dy[oc,p] != 0 of dy[oc,p] * w[oc, :]
// (sparse_rows.h, image_backward_sparse), the partials then hold dW as (OC, CKKp); otherwise the
// GEMMs (image_backward_dense).
template <typename DyOf>
static void conv2d_backward_impl(float* dx, float* dw, float* dbias, DyOf dy_of, const float* x,
                                 const float* w, const Conv2dShape& s, float* workspace,
                                 int num_threads, bool accumulate, bool skip_zeros = false) {
  if (!dx && !dw && !dbias) return;
  const size_t slot = slot_floats(s), part = partial_floats(s);
  const int nslots = slots(s, num_threads), chunks = dw_chunks(s.N);
  float* partials = workspace + (size_t)nslots * slot;
  const ConvBackward b = backward_plan(s, w, partials + (size_t)chunks * part, skip_zeros);
  if (skip_zeros && dx) pad_weights(b);
  const size_t image = (size_t)s.C * s.H * s.W;
  const int nt = std::min(nslots, chunks);
#pragma omp parallel num_threads(nt)
  {
    const BackwardSlot t = backward_slot(workspace + (size_t)omp_get_thread_num() * slot, b);
#pragma omp for schedule(static)
    for (int ch = 0; ch < chunks; ch++) {
      float* pdw = partials + (size_t)ch * part;  // dW^T (CKK, OC) or dW (OC, ldk) of this chunk
      float* pdb = pdw + b.pdw_floats;
      if (dw) std::fill(pdw, pdw + b.pdw_floats, 0.0f);
      if (dbias) std::fill(pdb, pdb + b.OC, 0.0f);
      const int n0 = (int)((long)s.N * ch / chunks), n1 = (int)((long)s.N * (ch + 1) / chunks);
      for (int n = n0; n < n1; n++) {
        const float* dyn = dy_of(n, t.dy_scratch, t.dyT);
        if (dbias) add_bias_sums(pdb, dyn, b.OC, b.P);
        float* dxn = dx ? dx + n * image : nullptr;
        if (skip_zeros) image_backward_sparse(b, t, dw ? pdw : nullptr, dyn, x + n * image, dxn);
        else image_backward_dense(b, t, dw ? pdw : nullptr, dyn, x + n * image, dxn);
      }
    }
    if (dw) add_dw_partials(dw, partials, part, chunks, b, accumulate);
  }
  if (dbias) add_dbias_partials(dbias, partials, part, chunks, b, accumulate);
}

void conv2d_backward(float* dx, float* dw, float* dbias, const float* dy, const float* x,
                     const float* w, const Conv2dShape& s, float* workspace, int num_threads,
                     bool accumulate) {
  const size_t per_image = (size_t)s.OC * s.OH() * s.OW();
  conv2d_backward_impl(
      dx, dw, dbias, [&](int n, float*, float*) { return dy + (size_t)n * per_image; }, x, w, s,
      workspace, num_threads, accumulate);
}

// dy[n] of the convolution, built per image in the slot's scratch, plane by plane: the pooled
// gradient g where the pooled output y is not <= 0 (relu_grad: NaN passes), routed by
// maxpool2d_plane_backward (the same numbers as those two kernels); then the backward products,
// skipping dy's zeros.
void conv2d_relu_maxpool_backward(float* dx, float* dw, float* dbias, const float* g,
                                  const float* y, const int32_t* argmax, const Pool2dShape& pool,
                                  const float* x, const float* w, const Conv2dShape& s,
                                  float* workspace, int num_threads, bool accumulate) {
  const int P = s.OH() * s.OW(), OC = s.OC;
  const size_t pooled = (size_t)pool.OH() * pool.OW();
  // Pooling leaves at most one nonzero of dy per window, and the ReLU masks about half of those:
  // skip dy's zeros when a window covers two or more outputs (and x, w are finite, see top).
  const bool skip_zeros = 2 * pooled <= (size_t)P &&
                          sparse::all_finite(w, (size_t)s.OC * s.C * s.KH * s.KW) &&
                          sparse::all_finite(x, (size_t)s.N * s.C * s.H * s.W);
  conv2d_backward_impl(
      dx, dw, dbias,
      [&](int n, float* dyn, float* masked) {
        for (int oc = 0; oc < OC; oc++) {
          const size_t plane = (size_t)n * OC + oc;
          const float* gp = g + plane * pooled;
          const float* yp = y + plane * pooled;
#pragma omp simd
          for (size_t i = 0; i < pooled; i++) masked[i] = relu_grad(yp[i], gp[i]);
          maxpool2d_plane_backward(dyn + (size_t)oc * P, masked, argmax + plane * pooled, pool);
        }
        return static_cast<const float*>(dyn);
      },
      x, w, s, workspace, num_threads, accumulate, skip_zeros);
}

}  // namespace NNFAST_ISA
}  // namespace nnfast
