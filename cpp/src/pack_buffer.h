// Per-thread kernel workspace, grown once and reused: no allocation in steady state.
// Used as `static thread_local PackBuffer buf;` inside a kernel (gemm.cpp, linear.cpp).
#pragma once
#include <cstddef>
#include <cstdlib>

namespace nnfast {

struct PackBuffer {
  float* data = nullptr;
  size_t size = 0;
  // At least n floats, 64-byte aligned; the contents are not kept when it grows.
  float* get(size_t n) {
    if (n > size) {
      std::free(data);
      size = (n + 15) & ~size_t(15);
      data = static_cast<float*>(std::aligned_alloc(64, size * sizeof(float)));
    }
    return data;
  }
  ~PackBuffer() { std::free(data); }
};

}  // namespace nnfast
