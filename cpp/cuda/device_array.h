// The device array of nnfast._cuda: a C-contiguous block of GPU memory with a shape and a dtype
// (float32, int64, int32, uint8 or float64), the memory shared between an array and its reshaped views and
// returned to a caching allocator (device_array.cpp) when the last of them goes, so that a
// training loop that repeats its shapes allocates nothing after its first step.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace nnfast {
namespace cuda {

enum class DType { float32, int64, int32, uint8, float64 };

size_t dtype_size(DType d);
// NumPy's names ("float32", ...) and __cuda_array_interface__'s typestr ("<f4", ...).
const char* dtype_name(DType d);
const char* dtype_typestr(DType d);
// The dtype of a NumPy name; throws std::invalid_argument for any other.
DType dtype_from_name(const std::string& name);

struct DeviceArray {
  std::shared_ptr<void> buffer;  // the allocation; its deleter hands it back to the cache
  std::vector<int64_t> shape;
  DType dtype = DType::float32;

  void* data() const { return buffer.get(); }
  size_t size() const;
  size_t nbytes() const { return size() * dtype_size(dtype); }
};

// An uninitialised array (cudaMalloc through the cache); throws std::runtime_error on failure.
std::shared_ptr<DeviceArray> device_empty(const std::vector<int64_t>& shape, DType dtype);
// Blocks the cache holds for reuse, freed (cudaFree) by empty_cache; bytes held.
void empty_cache();
size_t cached_bytes();

// The memory of one CUDA graph. From begin_capture_pool to end_capture_pool (the capture of a
// graph), every allocation belongs to a new pool, taken from its freed blocks first, and every
// block freed, wherever it came from, joins the pool's free blocks: a replay of the graph may
// still use it, so nothing outside the graph may. A pool block freed while its pool is held
// goes back to the pool; release_pool (the graph destroyed, after its last replay finished)
// gives the pool's free blocks to the cache, and its other blocks go there as they are freed.
struct Pool;
void begin_capture_pool();
std::shared_ptr<Pool> end_capture_pool();
void release_pool(const std::shared_ptr<Pool>& pool);
// Whether a capture is open (begin_capture_pool without its end).
bool capturing();

// Throws std::runtime_error "<fn>: <CUDA's message>" when code is not 0.
void check_cuda(int code, const char* fn);

}  // namespace cuda
}  // namespace nnfast
