// The settings shared by every copy of the kernels (see common.h): the thread count and the
// precision of Linear's products; compiled once.
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

static std::atomic<bool> g_bf16{false};

void set_bf16_products(bool on) { g_bf16.store(on); }
bool bf16_products() { return g_bf16.load(); }

}  // namespace nnfast
