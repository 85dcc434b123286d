// Thread count shared by every copy of the kernels (see common.h); compiled once.
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


}  // namespace nnfast
