// Thread count shared by every kernel's OpenMP regions (see common.h), and build info.
#include <omp.h>

#include <atomic>

#include "nnfast/common.h"

namespace nnfast {

static std::atomic<int> g_num_threads{0};  // 0: not set yet, use omp_get_max_threads()

void set_num_threads(int n) { g_num_threads.store(n < 1 ? 1 : n); }

int get_num_threads() {
  int n = g_num_threads.load();
  if (n == 0) {
    n = omp_get_max_threads();
    g_num_threads.store(n);
  }
  return n;
}

const char* isa_name() {
#if defined(__AVX512F__)
  return "avx512";
#elif defined(__AVX2__) && defined(__FMA__)
  return "avx2";
#else
  return "scalar";
#endif
}

}  // namespace nnfast
