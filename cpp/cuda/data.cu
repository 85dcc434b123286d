// Batch gathering: out (n, width) = src[rows[i], :], one thread per output element (consecutive
// threads copy consecutive floats of a row). rows are int64 in [0, src_rows) (the caller checks).
#include "common.cuh"

namespace nnfast {
namespace cuda {

__global__ void gather_rows_kernel(float* out, const float* src, const int64_t* rows, size_t total,
                                   size_t width) {
  NNFAST_GRID_LOOP(i, total) out[i] = src[(size_t)rows[i / width] * width + i % width];
}

// dst[r * dst_ld + c] = src[r * src_ld + c] for r < rows, c < cols (a block of columns)
__global__ void copy_columns_kernel(float* dst, size_t dst_ld, const float* src, size_t src_ld,
                                    size_t cols, size_t total) {
  NNFAST_GRID_LOOP(i, total) dst[i / cols * dst_ld + i % cols] = src[i / cols * src_ld + i % cols];
}

int copy_columns(float* dst, size_t dst_ld, const float* src, size_t src_ld, size_t rows,
                 size_t cols) {
  const size_t total = rows * cols;
  if (total == 0) return 0;
  return launch_elementwise(copy_columns_kernel, total, dst, dst_ld, src, src_ld, cols, total);
}

int gather_rows(float* out, const float* src, const int64_t* rows, int n, size_t width) {
  const size_t total = (size_t)n * width;
  if (total == 0) return 0;
  return launch_elementwise(gather_rows_kernel, total, out, src, rows, total, width);
}

}  // namespace cuda
}  // namespace nnfast
