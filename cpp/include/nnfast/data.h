// Batching: the rows of a data set that make up a mini-batch, copied into one contiguous array.
// Data movement only (no gradient), run on the kernels' threads: the copy is memory-bound, and
// two cores fetch the rows from memory faster than one.
#pragma once
#include "nnfast/common.h"

namespace nnfast {
inline namespace NNFAST_ISA {

// out (n, width) = src[rows[i], :] for i < n; src (src_rows, width) row-major. Every rows[i] must
// be in [0, src_rows) (callers check). The threads share out the rows.
void gather_rows(float* out, const float* src, const int64_t* rows, int n, size_t width);

}  // namespace NNFAST_ISA
}  // namespace nnfast
