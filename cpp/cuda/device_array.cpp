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
  }
  return 1;
}

const char* dtype_name(DType d) {
  switch (d) {
    case DType::float32: return "float32";
    case DType::int64: return "int64";
    case DType::int32: return "int32";
    case DType::uint8: return "uint8";
  }
  return "?";
}

const char* dtype_typestr(DType d) {
  switch (d) {
    case DType::float32: return "<f4";
    case DType::int64: return "<i8";
    case DType::int32: return "<i4";
    case DType::uint8: return "|u1";
  }
  return "?";
}

DType dtype_from_name(const std::string& name) {
  for (DType d : {DType::float32, DType::int64, DType::int32, DType::uint8})
    if (name == dtype_name(d)) return d;
  throw std::invalid_argument("nnfast._cuda: dtype must be float32, int64, int32 or uint8, got " +
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

namespace {

// Freed blocks by size in bytes, for reuse by the next request of that size. Never destroyed
// (the CUDA runtime may be gone by the time static destructors run).
struct Cache {
  std::mutex lock;
  std::multimap<size_t, void*> blocks;
  size_t bytes = 0;
};
Cache& cache() {
  static Cache* c = new Cache;
  return *c;
}

void* take_block(size_t bytes) {
  Cache& c = cache();
  {
    std::lock_guard<std::mutex> guard(c.lock);
    auto it = c.blocks.find(bytes);
    if (it != c.blocks.end()) {
      void* p = it->second;
      c.blocks.erase(it);
      c.bytes -= bytes;
      return p;
    }
  }
  void* p = nullptr;
  if (device_malloc(&p, bytes) != 0) {  // out of memory: give back what the cache holds, retry
    empty_cache();
    check_cuda(device_malloc(&p, bytes), "nnfast._cuda: cudaMalloc");
  }
  return p;
}

void give_block(void* p, size_t bytes) {
  if (!p) return;
  Cache& c = cache();
  std::lock_guard<std::mutex> guard(c.lock);
  c.blocks.emplace(bytes, p);
  c.bytes += bytes;
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

std::shared_ptr<DeviceArray> device_empty(const std::vector<int64_t>& shape, DType dtype) {
  auto a = std::make_shared<DeviceArray>();
  for (int64_t d : shape)
    if (d < 0) throw std::invalid_argument("nnfast._cuda: negative dimension in shape");
  a->shape = shape;
  a->dtype = dtype;
  const size_t bytes = a->nbytes();
  a->buffer = std::shared_ptr<void>(take_block(bytes), [bytes](void* p) { give_block(p, bytes); });
  return a;
}

}  // namespace cuda
}  // namespace nnfast
