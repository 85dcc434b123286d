// Linear (fully connected) layers with the weight stored transposed: wt (IN,OUT) = w^T for
// PyTorch's w (OUT,IN). y (B,OUT) = x (B,IN) @ wt + bias, and the gradients dx = dy @ wt^T,
// dwt (+)= x^T @ dy, dbias (+)= column sums of dy. In this layout both the forward product and
// the weight gradient read and write wt's rows in place: no transposition of the weight (a pass
// over it each way, every step).
//
// Dense inputs go through sgemm. Inputs that are mostly zeros (MNIST images are about 81% zero
// pixels) take a sparse-input path that only touches x's nonzero entries:
//   forward:  y[i,:]    = bias + sum over k with x[i,k] != 0 of x[i,k] * wt[k,:]
//   backward: dwt[k,:] (+)= sum over i with x[i,k] != 0 of x[i,k] * dy[i,:]
// These are the GEMM's sums without their zero terms (the backward, which sums the pixels k in
// pairs 2m, 2m + 1, keeps a zero term of one where the other is nonzero in that row, as the GEMM
// does). A zero term only matters when its other factor is inf or NaN (0 * inf = NaN), so the
// path is taken only when wt (forward) or dy (backward) is all finite; otherwise the GEMM keeps
// IEEE semantics, so a NaN weight meeting a zero input gives NaN, as in PyTorch. NaN and inf
// entries of x are nonzeros (the compare is unordered): they are summed and reach y.
// dx = dy @ wt^T has no zero to skip and always uses the GEMM. Every output element is summed by
// one thread in ascending k (or i) order, so any thread count gives the same bits; which path
// runs depends on the data (its zeros), never on the thread count.
#include "nnfast/gemm.h"

#include "simd.h"
#include "sparse_rows.h"

#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <utility>

namespace nnfast {
inline namespace NNFAST_ISA {

using idx = std::ptrdiff_t;

// The sparse path pays the index lists (and, backward, a transpose of x), so it is taken below
// about a quarter nonzeros (100 x 784 inputs), and only from 32 outputs up: with fewer, a term is
// a single vector and the index lists cost more than the zeros save (benchmarks/gemm.py,
// "sparse-input Linear" rows, compares the two paths).
static constexpr double SPARSE_MAX_DENSITY = 0.25;
static constexpr int SPARSE_MIN_OUT = 32;
using sparse::all_finite;
using sparse::count_nonzero;
using sparse::nonzero_indices;
using sparse::nonzero_indices_either;
using sparse::sum_rows_pair_all;
using sparse::sum_rows_all;

// Few enough nonzeros (nnz of the n = B * IN entries of x) for the sparse path.
static bool sparse_enough(size_t nnz, size_t n) {
  return n >= 4096 && (double)nnz <= SPARSE_MAX_DENSITY * (double)n;
}

// A first look that spares a dense input the count over all of it (a hidden layer's input: about
// half nonzero after a ReLU, where the count, and its threads' start, would be spent for
// nothing): more than 1.5 times the limit nonzero in its first rows (up to 8) sends x to the
// GEMM (MNIST batches, about 19 % nonzero, never come near). Part of the rule that picks the
// path, which so stays a function of the data alone.
static bool clearly_dense(const float* x, int B, int IN) {
  const size_t n = (size_t)std::min(B, 8) * IN;
  return (double)count_nonzero(x, n) > 1.5 * SPARSE_MAX_DENSITY * (double)n;
}

static int sparse_threads(int B, int IN, int OUT, int num_threads) {
  return 2.0 * SPARSE_MAX_DENSITY * B * (double)IN * OUT < 2e5 ? 1 : num_threads;
}

// Forward over x's nonzeros, in kChunks fixed halves of k (never depending on the thread count):
// chunk c sums, for every row i, the terms with k in its half into its own partial p_c (B, OUT);
// then y = bias + p_0 + p_1, added in that order. Thread t takes chunk t: the rows of wt it
// reads are the rows the optimizer step updated on the same core (it splits a parameter into
// halves by memory too), so the weight does not cross between cores every step.
//
// First each thread lists the nonzeros of its columns of x, row by row (indices and values,
// with where each block of kb columns starts; kListRows rows at a time, the first group then,
// counting the other rows' nonzeros), and checks its rows of wt. y is written only when the
// total count is low enough (sparse_enough) and wt is all finite: *summed says whether it was.
// The sums then go block by block of kb rows of wt (about 32 KB, held in L1 while every
// row i adds its terms from that block into its partial row, loaded and stored again), instead
// of row i of x at a time over the whole half (each term a row of wt fetched from L2 again for
// every i, 7.5 MB a step on MLP 784-256-128-10's first layer against 2.6 MB of partial rows).
// Each output element still sums its terms in ascending k into one accumulator. Returns x's
// nonzero count.
static constexpr int kChunks = 2;
static constexpr int kListRows = 256;  // rows listed at a time: bounds the lists' memory

// Chunk c's rows k0..k1 of wt, columns k0..k1 of x: cut at a multiple of 16 columns so that each
// row's part starts on a cache line when x's rows do (784 floats: whole lines; cut at 392, the
// second chunk's vector loads would each straddle two lines).
static std::pair<int, int> chunk_rows(int IN, int c) {
  const auto [k0, k1] = part_of(IN, c, kChunks, 16);
  return {(int)k0, (int)k1};
}

// One forward's operands and blocking: y (B, OUT) and the partials p_1 .. (B, OUT each) written,
// x (B, IN), wt (IN, ldw) and bias read; kb rows of wt per block, `group` rows of x listed at a
// time.
struct SparseForward {
  float* y;
  float* partial;
  const float* x;
  const float* wt;
  const float* bias;
  int ldw, B, IN, OUT, kb, group;
  Activation act;
};

// The forward's blocking: kb rows of wt per block, a multiple of 16 whose block of a column
// chunk fills about 32 KB, and `group` rows of x listed at a time.
struct SparseBlocking {
  int kb, group;
};
static SparseBlocking sparse_blocking(int B, int OUT) {
  const int cols = std::min(OUT, simd::W * sparse::CHUNK_V);
  return {std::clamp(8192 / cols / 16 * 16, 16, 256), std::min(B, kListRows)};
}

// A chunk's lists of x's nonzeros, for a group of rows: column indices, values, and where each
// row's block of kb columns starts (nb + 1 entries a row); lists_floats(...) floats of the
// workspace (ints stored in floats' places).
struct EntryLists {
  int* ids;
  float* vals;
  int* starts;
};
static size_t entries_floats(int IN, int c, const SparseBlocking& bl) {
  const auto [k0, k1] = chunk_rows(IN, c);
  return round16((size_t)bl.group * (k1 - k0) + 16);
}
static size_t starts_floats(int IN, int c, const SparseBlocking& bl) {
  const auto [k0, k1] = chunk_rows(IN, c);
  return round16((size_t)bl.group * ((k1 - k0 + bl.kb - 1) / bl.kb + 1));
}
static size_t lists_floats(int IN, int c, const SparseBlocking& bl) {
  return 2 * entries_floats(IN, c, bl) + starts_floats(IN, c, bl);
}
static EntryLists entry_lists(float* ws, int IN, int c, const SparseBlocking& bl) {
  const size_t entries = entries_floats(IN, c, bl);
  return {reinterpret_cast<int*>(ws), ws + entries, reinterpret_cast<int*>(ws + 2 * entries)};
}

// The lists of rows i0..i1 of chunk c's columns; returns their entry count.
static int list_rows(const SparseForward& f, const EntryLists& l, int c, int i0, int i1) {
  const auto [k0, k1] = chunk_rows(f.IN, c);
  const int nb = (k1 - k0 + f.kb - 1) / f.kb;
  int n = 0;
  for (int i = i0; i < i1; i++)
    n = sparse::append_nonzero_entries(l.ids, l.vals, n, l.starts + (i - i0) * (nb + 1),
                                       f.x + (idx)i * f.IN + k0, k1 - k0, f.kb);
  return n;
}

// Chunk c's nonzero count: the lists of the first group of rows, and the count of the other
// rows' nonzeros in its columns.
static size_t list_and_count(const SparseForward& f, const EntryLists& l, int c) {
  const auto [k0, k1] = chunk_rows(f.IN, c);
  size_t nnz = list_rows(f, l, c, 0, f.group);
  for (int i = f.group; i < f.B; i++) nnz += count_nonzero(f.x + (idx)i * f.IN + k0, k1 - k0);
  return nnz;
}

// Chunk c's sums into its partial (y itself for chunk 0, which starts from the bias), a group of
// rows at a time (the first group's lists already made), each group column chunk by column
// chunk of OUT and, within one, block b of every row's list after block b - 1 (the first block
// starts each row from the bias, or 0; the later ones add to it).
static void sum_chunk(const SparseForward& f, const EntryLists& l, int c) {
  const auto [k0, k1] = chunk_rows(f.IN, c);
  const int nb = (k1 - k0 + f.kb - 1) / f.kb, OUT = f.OUT;
  float* out = c == 0 ? f.y : f.partial + (size_t)(c - 1) * f.B * OUT;
  const float* init = c == 0 ? f.bias : nullptr;
  for (int g0 = 0; g0 < f.B; g0 += f.group) {
    const int rows_in_group = std::min(f.group, f.B - g0);
    if (g0 > 0) list_rows(f, l, c, g0, g0 + rows_in_group);
    const int* ids = l.ids;
    const float* vals = l.vals;
    const int* starts = l.starts;
    for (int c0 = 0; c0 < OUT; c0 += simd::W * sparse::CHUNK_V) {
      const auto vecs = sparse::chunk_vectors(std::min(simd::W * sparse::CHUNK_V, OUT - c0));
      const auto sum = sparse::SUM_ENTRIES[vecs.count - 1];
      const float* rows = f.wt + (idx)k0 * f.ldw + c0;
      for (int b = 0; b < nb; b++)
        sum(out + (idx)g0 * OUT + c0, OUT, b == 0, init ? init + c0 : nullptr, starts + b, nb + 1,
            rows_in_group, ids, vals, rows, f.ldw, vecs.tail);
    }
  }
}

// Row i of y += p_1 + ... (chunks added in order), then the activation, while the row is in cache.
static void add_partials(const SparseForward& f, int i) {
  float* yi = f.y + (idx)i * f.OUT;
  for (int c = 1; c < kChunks; c++) {
    const float* pi = f.partial + (size_t)(c - 1) * f.B * f.OUT + (idx)i * f.OUT;
#pragma omp simd
    for (int o = 0; o < f.OUT; o++) yi[o] += pi[o];
  }
  activation_span(f.act, yi, f.OUT);
}

// Whether the forward may take the sparse path, by x's shape alone (the lists' positions are
// ints: kListRows * IN entries at most); x's zeros decide the rest.
static bool sparse_forward_shape(int B, int IN, int OUT) {
  return OUT >= SPARSE_MIN_OUT && (size_t)B * IN >= 4096 && IN <= (1 << 22);
}

// The sparse forward's workspace: the partials p_1 .. (p_0 is y), then each chunk's lists.
static size_t partials_floats(int B, int OUT) { return round16((size_t)(kChunks - 1) * B * OUT); }
static size_t sparse_forward_floats(int B, int IN, int OUT) {
  const SparseBlocking bl = sparse_blocking(B, OUT);
  size_t n = partials_floats(B, OUT);
  for (int c = 0; c < kChunks; c++) n += lists_floats(IN, c, bl);
  return n;
}

// The forward (see above): per chunk, on the thread that sums it, the lists and count
// (list_and_count) and the check of its rows of wt (as one span, their padding columns too: a
// non-finite value there only sends the product to the GEMM); then, if the count is low enough
// and wt finite, the chunks' sums (sum_chunk) and y's rows finished (add_partials), rows shared
// out among the threads. ws: sparse_forward_floats(B, IN, OUT) floats.
static size_t linear_forward_sparse(bool* summed, float* y, const float* x, const float* wt,
                                    int ldw, const float* bias, int B, int IN, int OUT,
                                    Activation act, float* ws, int num_threads) {
  const int nt = std::min(kChunks, sparse_threads(B, IN, OUT, num_threads));
  const SparseBlocking bl = sparse_blocking(B, OUT);
  const SparseForward f{y, ws, x, wt, bias, ldw, B, IN, OUT, bl.kb, bl.group, act};
  EntryLists lists[kChunks];  // one thread may take both chunks
  float* next = ws + partials_floats(B, OUT);
  for (int c = 0; c < kChunks; c++) {
    lists[c] = entry_lists(next, IN, c, bl);
    next += lists_floats(IN, c, bl);
  }
  size_t nnz = 0;
  int bad = 0;
  parallel_region(nt, [&] {
#pragma omp for schedule(static) reduction(+ : nnz) reduction(| : bad)
    for (int c = 0; c < kChunks; c++) {
      const auto [k0, k1] = chunk_rows(IN, c);
      nnz += list_and_count(f, lists[c], c);
      bad |= !all_finite(wt + (idx)k0 * ldw, (size_t)(k1 - k0) * ldw);
    }
    if (!bad && sparse_enough(nnz, (size_t)B * IN)) {
#pragma omp for schedule(static)
      for (int c = 0; c < kChunks; c++) sum_chunk(f, lists[c], c);
#pragma omp for schedule(static)
      for (int i = 0; i < B; i++) add_partials(f, i);
    }
  });
  *summed = !bad && sparse_enough(nnz, (size_t)B * IN);
  return nnz;
}

// dwt (IN,OUT) (+)= x^T @ dy over x's nonzeros, rows of dwt split among the threads: each thread
// transposes its columns of x 16 at a time (a block of 16 k, B floats each, stays in L1), so that
// each k's nonzeros are contiguous, and sums the dy rows they pick into row k of dwt, two
// neighbouring k at a time over the rows either picks (each dy row loaded once for both:
// sparse_rows.h). dy is read in place when its rows are whole cache lines (OUT a multiple of 16, dy
// 64-byte aligned); otherwise each thread reads its own copy with rows padded to 16 floats (each
// thread copies for itself rather than the first thread for both: a serial pass would leave the
// second core waiting). The working set stays small: the core's half of the weight and its
// gradient, with the batch, are about all a 1 MB L2 holds (the transposed half of x takes 175 KB on
// MLP 784-256-128-10's first layer). Each thread's slice of the workspace (dw_thread_floats) holds
// the copy of dy, the transposed block of x and the index list.
static size_t dy_copy_floats(int B, int OUT) { return (size_t)B * round16(OUT); }
static size_t xt_floats(int B) { return (size_t)16 * round16(B); }
static size_t dw_thread_floats(int B, int OUT) {
  return dy_copy_floats(B, OUT) + xt_floats(B) + round16((size_t)B + 16);
}
static void linear_backward_dw_sparse(float* dwt, int ldw, const float* dy, const float* x, int B,
                                      int IN, int OUT, bool accumulate, float* ws,
                                      int num_threads) {
  const idx ldx = (B + 15) / 16 * 16;
  const bool in_place = OUT % 16 == 0 && reinterpret_cast<std::uintptr_t>(dy) % 64 == 0;
  const idx ldy = in_place ? OUT : (OUT + 15) / 16 * 16;
  const int nt = sparse_threads(B, IN, OUT, num_threads);
  parallel_region(nt, [&] {
    float* slice = ws + (size_t)omp_get_thread_num() * dw_thread_floats(B, OUT);
    const float* dyp = dy;
    if (!in_place) {
      float* copy = slice;
      for (int i = 0; i < B; i++)
        std::memcpy(copy + i * ldy, dy + (idx)i * OUT, OUT * sizeof(float));
      dyp = copy;
    }
    float* xt = slice + dy_copy_floats(B, OUT);
    int* ids = reinterpret_cast<int*>(xt + xt_floats(B));
    // rows of dwt in halves (cut as the forward cuts x's columns), as the optimizer step splits
    // the parameter
    const auto [c0, c1] = part_of(IN, omp_get_thread_num(), omp_get_num_threads(), 16);
    for (int kb = (int)c0; kb < (int)c1; kb += 16) {
      const int kn = std::min(16, (int)c1 - kb);
      transpose(xt, ldx, x + kb, IN, B, kn);  // xt (kn, B): x[:, kb : kb + kn]^T
      // k in pairs (2m, 2m + 1): kb is a multiple of 16, so the pairs never depend on the threads
      int j = 0;
      for (; j + 1 < kn; j += 2) {
        const float* xk = xt + (idx)j * ldx;
        float* row = dwt + (idx)(kb + j) * ldw;
        sum_rows_pair_all(row, row + ldw, accumulate ? row : nullptr,
                          accumulate ? row + ldw : nullptr, ids, xk, xk + ldx,
                          nonzero_indices_either(ids, xk, xk + ldx, B), dyp, ldy, OUT);
      }
      if (j < kn) {
        const float* xk = xt + (idx)j * ldx;
        float* row = dwt + (idx)(kb + j) * ldw;
        sum_rows_all(row, accumulate ? row : nullptr, ids, xk, nonzero_indices(ids, xk, B), dyp,
                     ldy, OUT);
      }
    }
  });
}

// The sparse path and the GEMM run one after the other (the GEMM when the sparse path did not
// sum), each on the whole workspace.
size_t linear_forward_workspace_size(int B, int IN, int OUT, int ldw, int num_threads,
                                     bool bf16) {
  const size_t gemm = bf16 ? gemm_bf16_workspace_size(B, OUT, IN)
                           : sgemm_fused_workspace_size(false, false, B, OUT, IN, IN, ldw,
                                                        num_threads);
  return sparse_forward_shape(B, IN, OUT) ? std::max(gemm, sparse_forward_floats(B, IN, OUT))
                                          : gemm;
}

long linear_forward(float* y, const float* x, const float* wt, int ldw, const float* bias, int B,
                    int IN, int OUT, float* workspace, int num_threads, Activation act,
                    bool bf16) {
  long nonzeros = -1;
  num_threads = std::max(num_threads, 1);
  if (sparse_forward_shape(B, IN, OUT) && !clearly_dense(x, B, IN)) {
    bool summed = false;
    nonzeros = (long)linear_forward_sparse(&summed, y, x, wt, ldw, bias, B, IN, OUT, act,
                                           workspace, num_threads);
    if (summed) return nonzeros;
  }
  GemmEpilogue finish;
  finish.col_bias = bias;
  finish.act = act;
  if (bf16)
    gemm_bf16(false, false, B, OUT, IN, x, IN, wt, ldw, 0.0f, y, OUT, finish, workspace,
              num_threads);
  else
    sgemm_fused(false, false, B, OUT, IN, x, IN, wt, ldw, y, OUT, finish, workspace, num_threads);
  return nonzeros;
}

// Whether dwt may take the sparse path, by the shape alone (x's zeros and dy decide the rest).
static bool sparse_backward_shape(int B, int IN, int OUT) {
  return OUT >= SPARSE_MIN_OUT && (size_t)B * IN >= 4096;
}

// dx's product, then dwt's (sparse or the GEMM), each on the whole workspace.
size_t linear_backward_workspace_size(int B, int IN, int OUT, int ldw, int num_threads,
                                      bool bf16) {
  num_threads = std::max(num_threads, 1);
  size_t n = bf16 ? std::max(gemm_bf16_workspace_size(B, IN, OUT),
                             gemm_bf16_workspace_size(IN, OUT, B))
                  : std::max(sgemm_fused_workspace_size(false, true, B, IN, OUT, OUT, ldw,
                                                        num_threads),
                             sgemm_workspace_size(true, false, IN, OUT, B, IN, OUT, num_threads));
  if (sparse_backward_shape(B, IN, OUT))
    n = std::max(n, (size_t)sparse_threads(B, IN, OUT, num_threads) * dw_thread_floats(B, OUT));
  return n;
}

void linear_backward(float* dx, float* dwt, float* dbias, const float* dy, const float* x,
                     const float* wt, int ldw, int B, int IN, int OUT, float* workspace,
                     int num_threads, bool accumulate, long x_nonzeros, Activation dx_act,
                     bool bf16) {
  num_threads = std::max(num_threads, 1);
  if (dx) {
    GemmEpilogue through;  // dx at the input of the activation whose output x is
    through.act = dx_act;
    through.act_output = x;
    through.ld_act_output = IN;
    if (bf16)
      gemm_bf16(false, true, B, IN, OUT, dy, OUT, wt, ldw, 0.0f, dx, IN, through, workspace,
                num_threads);
    else
      sgemm_fused(false, true, B, IN, OUT, dy, OUT, wt, ldw, dx, IN, through, workspace,
                  num_threads);
  }
  if (dwt) {
    const size_t n = (size_t)B * IN;
    if (sparse_backward_shape(B, IN, OUT) &&
        (x_nonzeros >= 0 ? sparse_enough((size_t)x_nonzeros, n)
                         : !clearly_dense(x, B, IN) && sparse_enough(count_nonzero(x, n), n)) &&
        all_finite(dy, (size_t)B * OUT))
      linear_backward_dw_sparse(dwt, ldw, dy, x, B, IN, OUT, accumulate, workspace, num_threads);
    else if (bf16)
      gemm_bf16(true, false, IN, OUT, B, x, IN, dy, OUT, accumulate ? 1.0f : 0.0f, dwt, ldw, {},
                workspace, num_threads);
    else
      sgemm(true, false, IN, OUT, B, 1.0f, x, IN, dy, OUT, accumulate ? 1.0f : 0.0f, dwt, ldw,
            workspace, num_threads);
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

}  // namespace NNFAST_ISA
}  // namespace nnfast
