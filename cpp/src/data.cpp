// Batching (data.h): gather the rows of a mini-batch.
#include "nnfast/data.h"

#include <omp.h>

#include <cstring>

namespace nnfast {
inline namespace NNFAST_ISA {

// One thread is enough below this many floats (64 KB): the second costs more to start than it
// saves.
static constexpr size_t kParallelFloats = 16384;

// Thread t copies the t-th part of the rows, each row whole.
void gather_rows(float* out, const float* src, const int64_t* rows, int n, size_t width) {
  parallel_region((size_t)n * width >= kParallelFloats ? get_num_threads() : 1, [&] {
    const auto [i0, i1] = part_of(n, omp_get_thread_num(), omp_get_num_threads());
    for (long i = i0; i < i1; i++)
      std::memcpy(out + (size_t)i * width, src + (size_t)rows[i] * width, width * sizeof(float));
  });
}

}  // namespace NNFAST_ISA
}  // namespace nnfast
