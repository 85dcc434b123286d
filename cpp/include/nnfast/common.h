// nnfast kernel conventions, shared by every kernel family.
//
// - Every op is a pair of free functions, <op>_forward / <op>_backward, on raw float32 buffers.
// - Row-major; images are NCHW; labels are int64.
// - Backward functions OVERWRITE the input gradient (dx) and ACCUMULATE (+=) into parameter
//   gradients (dw, db), as llm.c does. A null dx / dw / db pointer means "not needed, skip it".
//   Parameter-gradient kernels take `accumulate`: false overwrites dw / db instead (the first
//   backward after zero_grad, so that zeroing the gradients costs no pass over memory).
// - No allocation inside kernels: scratch space comes from a caller-owned workspace whose size a
//   *_workspace_size() function gives.
// - No exceptions: callers (the bindings) validate shapes before calling. The geometry rules
//   (which window and stride shapes a kernel can run, how large its sizes may grow) are
//   functions here, check_conv2d / check_pool2d (src/geometry.cpp), that return a GeometryCheck.
// - One build holds the kernels once per instruction set (CMakeLists.txt: baseline x86-64, AVX2 +
//   FMA, AVX-512; or one host-tuned copy). Each copy lives in an inline namespace of its own,
//   nnfast::NNFAST_ISA (baseline, avx2, avx512, native), so the copies never share a symbol, and
//   writes its vector code once, through src/simd.h, at its ISA's width. Types (shapes,
//   Activation) are common to all copies. Callers outside the kernels (the bindings) reach the
//   copy chosen at import through the table in kernels.h; they are compiled with NNFAST_ISA =
//   unselected, so a direct call fails to link instead of running some fixed copy.
// - Threads: every OpenMP region uses num_threads(nnfast::get_num_threads()). Work is split so
//   that results are bit-identical for any thread count (no reductions whose order depends on
//   the number of threads).
#pragma once
#include <omp.h>

#include <cstddef>
#include <cstdint>
#include <utility>

#ifndef NNFAST_ISA
#define NNFAST_ISA unselected
#endif

namespace nnfast {

// What a geometry check (check_conv2d, check_pool2d) found: ok, or the first rule the shape
// breaks. For too_large, `what` names the quantity over 2^31-1 (the kernels index with int) and
// `value` is it (SIZE_MAX where even the product overflows).
struct GeometryCheck {
  enum Issue {
    ok,
    kernel_below_1,               // a window side < 1
    stride_below_1,               // a stride < 1
    padding_negative,             // (conv2d) a padding < 0
    padding_outside_half_kernel,  // (pooling) a padding < 0 or more than half the window side
    kernel_over_input,            // the window is larger than the padded input
    too_large,                    // `what` exceeds 2^31-1
    workspace_too_large,          // (conv2d) more than 2^31 floats (8 GiB) of scratch per thread
  };
  Issue issue = ok;
  const char* what = nullptr;
  size_t value = 0;
};

// Number of OpenMP threads the kernels use (default: omp_get_max_threads() at load time,
// which honours OMP_NUM_THREADS). n < 1 is clamped to 1.
void set_num_threads(int n);
int get_num_threads();

// Whether Linear's dense products run in bfloat16 (gemm_bf16), process-wide like the thread
// count: nnfast.set_precision("bf16"), which the bindings allow only where gemm_bf16 runs.
void set_bf16_products(bool on);
bool bf16_products();

inline namespace NNFAST_ISA {

// n rounded up to a multiple of 16 floats: a workspace part that keeps the next one on a
// 64-byte boundary (a cache line).
inline size_t round16(size_t n) { return (n + 15) & ~size_t(15); }

// Part `part` of `parts` equal parts of [0, n): [n part / parts, n (part+1) / parts), the share of
// rows or columns a thread takes where a kernel splits them evenly; with `align`, every cut is
// rounded down to a multiple of it (the last part ends at n).
inline std::pair<long, long> part_of(long n, int part, int parts, long align = 1) {
  const long cut0 = n * part / parts / align * align;
  const long cut1 = part + 1 == parts ? n : n * (part + 1) / parts / align * align;
  return {cut0, cut1};
}

// Runs body() as an OpenMP parallel region of nt threads, or straight on the calling thread when
// nt <= 1 and that thread is not one of a team of several: libgomp sets up a team even for one
// thread, at a cost on the order of a whole small kernel call (a 1 x 1 x 1 sgemm).
// Inside body, omp_get_thread_num() / omp_get_num_threads() and orphaned `omp for` loops see a
// team of one either way. (Called from a thread of a running team, as sgemm is by the K-split
// product's chunks, the body run straight would see that team's numbers and do only its share:
// there it takes a region of its own, a team of one.)
template <typename Body>
inline void parallel_region(int nt, Body&& body) {
  if (nt <= 1 && omp_get_num_threads() == 1) {
    body();
    return;
  }
#pragma omp parallel num_threads(nt < 1 ? 1 : nt)
  body();
}

// body(i0, i1) on each of nt parts of [0, n) (part_of, cuts at multiples of align: 16 floats are
// a cache line), one part per thread of a parallel_region: the loops of the elementwise kernels.
template <typename Body>
inline void parallel_parts(int nt, size_t n, long align, Body&& body) {
  parallel_region(nt, [&] {
    const auto [i0, i1] = part_of((long)n, omp_get_thread_num(), omp_get_num_threads(), align);
    body((size_t)i0, (size_t)i1);
  });
}

// Threads for an elementwise pass over n floats: one below 65,536 (a second thread costs more to
// start than it saves), else all of them.
inline int elementwise_threads(size_t n) { return n >= (size_t(1) << 16) ? get_num_threads() : 1; }

// f(i) for every i in [0, n), in a vectorised loop over each thread's part (parallel_parts on
// elementwise_threads(n) threads, cut at whole cache lines): the elementwise kernels' loop.
template <typename F>
inline void parallel_elements(size_t n, F&& f) {
  parallel_parts(elementwise_threads(n), n, 16, [&](size_t i0, size_t i1) {
#pragma omp simd
    for (size_t i = i0; i < i1; i++) f(i);
  });
}

// The instruction set this copy of the kernels was compiled for: "avx512", "avx2" or "baseline".
const char* isa_name();

}  // namespace NNFAST_ISA
}  // namespace nnfast
