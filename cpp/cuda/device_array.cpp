// Device arrays and their caching allocator (device_array.h).
#include "device_array.h"

#include <map>
#include <mutex>
#include <stdexcept>

#include "cuda_kernels.h"

namespace nnfast {
namespace cuda {

size_t dtype_size(DType d) {
  switch (d) {
    case DType::float32: return 4;
    case DType::int64: return 8;
    case DType::int32: return 4;
    case DType::uint8: return 1;
    case DType::float64: return 8;
  }
  return 1;
}

const char* dtype_name(DType d) {
  switch (d) {
    case DType::float32: return "float32";
    case DType::int64: return "int64";
    case DType::int32: return "int32";
    case DType::uint8: return "uint8";
    case DType::float64: return "float64";
  }
  return "?";
}

const char* dtype_typestr(DType d) {
  switch (d) {
    case DType::float32: return "<f4";
    case DType::int64: return "<i8";
    case DType::int32: return "<i4";
    case DType::uint8: return "|u1";
    case DType::float64: return "<f8";
  }
  return "?";
}

DType dtype_from_name(const std::string& name) {
  for (DType d : {DType::float32, DType::int64, DType::int32, DType::uint8, DType::float64})
    if (name == dtype_name(d)) return d;
  throw std::invalid_argument("nnfast._cuda: dtype must be float32, int64, int32, uint8 or float64, got " +
                              name);
}

size_t DeviceArray::size() const {
  size_t n = 1;
  for (int64_t d : shape) n *= (size_t)d;
  return n;
}

void check_cuda(int code, const char* fn) {
  if (code != 0) throw std::runtime_error(std::string(fn) + ": " + error_string(code));
}

using Blocks = std::multimap<size_t, void*>;   // freed blocks by size in bytes

struct Pool {
  Blocks free;       // guarded by the cache's lock
  bool held = true;  // by its capture, then its graph
};

namespace {

// Freed blocks by size in bytes, for reuse by the next request of that size, and the pool of the
// capture open (null when none is). Never destroyed (the CUDA runtime may be gone by the time
// static destructors run).
struct Cache {
  std::mutex lock;
  Blocks blocks;
  size_t bytes = 0;
  std::shared_ptr<Pool> capture;
};
Cache& cache() {
  static Cache* c = new Cache;
  return *c;
}

// A block of `bytes` taken from `from` (null when it has none), under the cache's lock.
void* take_from(Blocks& from, size_t bytes) {
  auto it = from.find(bytes);
  if (it == from.end()) return nullptr;
  void* p = it->second;
  from.erase(it);
  return p;
}

// A block of `bytes` and the pool it belongs to (that of the capture open, else none).
void* take_block(size_t bytes, std::shared_ptr<Pool>* pool) {
  Cache& c = cache();
  {
    std::lock_guard<std::mutex> guard(c.lock);
    *pool = c.capture;
    void* p = c.capture ? take_from(c.capture->free, bytes) : nullptr;
    if (!p && (p = take_from(c.blocks, bytes))) c.bytes -= bytes;
    if (p) return p;
  }
  void* p = nullptr;
  if (device_malloc(&p, bytes) != 0) {  // out of memory: give back what the cache holds, retry
    empty_cache();
    check_cuda(device_malloc(&p, bytes), "nnfast._cuda: cudaMalloc");
  }
  return p;
}

void give_block(void* p, size_t bytes, const std::shared_ptr<Pool>& pool) {
  if (!p) return;
  Cache& c = cache();
  std::lock_guard<std::mutex> guard(c.lock);
  if (c.capture) {
    c.capture->free.emplace(bytes, p);
  } else if (pool && pool->held) {
    pool->free.emplace(bytes, p);
  } else {
    c.blocks.emplace(bytes, p);
    c.bytes += bytes;
  }
}

}  // namespace

void empty_cache() {
  Cache& c = cache();
  std::lock_guard<std::mutex> guard(c.lock);
  for (auto& kv : c.blocks) device_free(kv.second);
  c.blocks.clear();
  c.bytes = 0;
}

size_t cached_bytes() {
  Cache& c = cache();
  std::lock_guard<std::mutex> guard(c.lock);
  return c.bytes;
}

void begin_capture_pool() {
  Cache& c = cache();
  std::lock_guard<std::mutex> guard(c.lock);
  c.capture = std::make_shared<Pool>();
}

std::shared_ptr<Pool> end_capture_pool() {
  Cache& c = cache();
  std::lock_guard<std::mutex> guard(c.lock);
  std::shared_ptr<Pool> pool = std::move(c.capture);
  c.capture = nullptr;
  return pool;
}

void release_pool(const std::shared_ptr<Pool>& pool) {
  if (!pool) return;
  Cache& c = cache();
  std::lock_guard<std::mutex> guard(c.lock);
  pool->held = false;
  for (auto& kv : pool->free) {
    c.blocks.insert(kv);
    c.bytes += kv.first;
  }
  pool->free.clear();
}

bool capturing() {
  Cache& c = cache();
  std::lock_guard<std::mutex> guard(c.lock);
  return c.capture != nullptr;
}

std::shared_ptr<DeviceArray> device_empty(const std::vector<int64_t>& shape, DType dtype) {
  auto a = std::make_shared<DeviceArray>();
  for (int64_t d : shape)
    if (d < 0) throw std::invalid_argument("nnfast._cuda: negative dimension in shape");
  a->shape = shape;
  a->dtype = dtype;
  const size_t bytes = a->nbytes();
  std::shared_ptr<Pool> pool;
  void* p = take_block(bytes, &pool);
  a->buffer = std::shared_ptr<void>(p, [bytes, pool](void* q) { give_block(q, bytes, pool); });
  return a;
}

}  // namespace cuda
}  // namespace nnfast
