// Per-thread kernel workspace, grown once and reused: no allocation in steady state.
// Used as `static thread_local PackBuffer buf;` inside a kernel (gemm.cpp, linear.cpp).
#pragma once
#include <cstddef>
#include <cstdio>
#include <cstdlib>

namespace nnfast {
inline namespace NNFAST_ISA {

struct PackBuffer {
  float* data = nullptr;
  size_t size = 0;
  // At least n floats, 64-byte aligned; the contents are not kept when it grows. Kernels cannot
  // throw (common.h), so running out of memory here ends the process with a message, rather
  // than handing back a null buffer.
  float* get(size_t n) {
    if (n > size) {
      std::free(data);
      data = nullptr;
      size = 0;
      const size_t floats = (n + 15) & ~size_t(15);
      data = static_cast<float*>(std::aligned_alloc(64, floats * sizeof(float)));
      if (!data) {
        std::fprintf(stderr, "nnfast: out of memory for a kernel workspace of %zu bytes\n",
                     floats * sizeof(float));
        std::abort();
      }
      size = floats;
    }
    return data;
  }
  ~PackBuffer() { std::free(data); }
};

}  // namespace NNFAST_ISA
}  // namespace nnfast
