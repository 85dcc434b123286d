// Batch gathering: out (n, width) = src[rows[i], :], one thread per output element (consecutive
// threads copy consecutive floats of a row). rows are int64 in [0, src_rows) (the caller checks).
#include "common.cuh"

namespace nnfast {
namespace cuda {

__global__ void gather_rows_kernel(float* out, const float* src, const int64_t* rows, size_t total,
                                   size_t width) {
  NNFAST_GRID_LOOP(i, total) out[i] = src[(size_t)rows[i / width] * width + i % width];
}

int gather_rows(float* out, const float* src, const int64_t* rows, int n, size_t width) {
  const size_t total = (size_t)n * width;
  if (total == 0) return 0;
  gather_rows_kernel<<<blocks_for(total), kThreads>>>(out, src, rows, total, width);
  return last_error();
}

}  // namespace cuda
}  // namespace nnfast
