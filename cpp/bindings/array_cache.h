// Memory for the NumPy arrays the bindings return (part of nnfast._core, not of the kernels).
//
// A training step allocates the same activations and gradients every time (a LeNet step: a dozen
// arrays of up to 3.7 MB) and frees them a step later. Through malloc, blocks that large are
// mmap'ed and unmapped each time, so every step page-faults its whole working set back in.
// BlockCache keeps recently freed blocks of at least kMinBytes, up to kMaxCachedBytes
// in all (least recently freed evicted first), and hands one back for a request of exactly its
// size. Smaller arrays are NumPy's own (new_array); scratch blocks below kMinBytes, and blocks
// over kMaxBlockBytes (a large inference batch), go straight to malloc / free. A request that
// finds no block of its size frees the least recently freed block:
// when the sizes in use change (training, then predicting in other batch sizes) the blocks
// nobody asks for any more drain away instead of adding to the peak memory.
#pragma once
#include <pybind11/numpy.h>

#include <algorithm>
#include <cstdlib>
#include <mutex>
#include <new>
#include <vector>

namespace nnfast_bindings {

class BlockCache {
 public:
  static constexpr size_t kMinBytes = size_t(64) << 10;        // 64 KB
  static constexpr size_t kMaxBlockBytes = size_t(16) << 20;   // 16 MB
  static constexpr size_t kMaxCachedBytes = size_t(32) << 20;  // 32 MB
  static constexpr size_t kHeader = 64;  // block size stored ahead of the data (keeps alignment)

  // 64-byte aligned memory for `bytes` bytes; throws std::bad_alloc.
  void* take(size_t bytes) {
    bytes = round_up(bytes);
    if (bytes >= kMinBytes) {
      std::lock_guard<std::mutex> lock(mutex_);
      for (size_t i = blocks_.size(); i-- > 0;)
        if (blocks_[i].bytes == bytes) {
          char* block = blocks_[i].block;
          blocks_.erase(blocks_.begin() + (std::ptrdiff_t)i);
          cached_ -= bytes;
          return block + kHeader;
        }
      if (!blocks_.empty()) evict_oldest();
    }
    char* block = static_cast<char*>(std::aligned_alloc(64, bytes + kHeader));
    if (!block) throw std::bad_alloc();
    *reinterpret_cast<size_t*>(block) = bytes;
    return block + kHeader;
  }

  // Give back memory from take().
  void give(void* data) {
    char* block = static_cast<char*>(data) - kHeader;
    const size_t bytes = *reinterpret_cast<size_t*>(block);
    if (cacheable(bytes)) {
      std::lock_guard<std::mutex> lock(mutex_);
      blocks_.push_back({block, bytes});
      cached_ += bytes;
      while (cached_ > kMaxCachedBytes) evict_oldest();
      return;
    }
    std::free(block);
  }

  // Never destroyed: arrays may be freed during interpreter shutdown, after static destructors.
  static BlockCache& instance() {
    static BlockCache* cache = new BlockCache();
    return *cache;
  }

 private:
  struct Block {
    char* block;
    size_t bytes;
  };
  static bool cacheable(size_t bytes) { return bytes >= kMinBytes && bytes <= kMaxBlockBytes; }
  void evict_oldest() {  // with mutex_ held
    cached_ -= blocks_.front().bytes;
    std::free(blocks_.front().block);
    blocks_.erase(blocks_.begin());
  }
  static size_t round_up(size_t bytes) { return (std::max<size_t>(bytes, 1) + 63) & ~size_t(63); }
  std::mutex mutex_;
  std::vector<Block> blocks_;  // oldest first
  size_t cached_ = 0;
};

// An uninitialised C-contiguous array of `shape`. Memory of at least kMinBytes comes from the
// BlockCache and goes back to it when NumPy frees the array; a smaller array is NumPy's own
// (which keeps small blocks for reuse itself): a capsule to own the memory would cost more than
// the allocation (benchmarks/gemm.py prints the call cost of a 1 x 1 product).
template <typename T>
pybind11::array_t<T, pybind11::array::c_style> new_array(const std::vector<pybind11::ssize_t>& shape) {
  size_t n = 1;
  for (auto d : shape) n *= (size_t)d;
  if (n * sizeof(T) < BlockCache::kMinBytes)
    return pybind11::array_t<T, pybind11::array::c_style>(shape);
  void* data = BlockCache::instance().take(n * sizeof(T));
  pybind11::capsule owner(data, [](void* p) { BlockCache::instance().give(p); });
  return pybind11::array_t<T, pybind11::array::c_style>(shape, static_cast<T*>(data), owner);
}

// Kernel workspace of n floats, 64-byte aligned (whole cache lines for the kernels' vector loads),
// from the same cache, returned to it when the scope ends.
struct Scratch {
  float* data;
  explicit Scratch(size_t n) : data(static_cast<float*>(BlockCache::instance().take(n * sizeof(float)))) {}
  ~Scratch() { BlockCache::instance().give(data); }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
};

// Workspaces of the kernels that run often on sizes that repeat (sgemm, matmul, Linear): blocks
// kept for good, each grown to the largest request it has served, so that a training loop's
// steady state allocates none. A call takes the most recently given back block (a larger one
// replacing it when it is too small) and gives it back when its scope ends; calls running at
// once (the kernels run without the GIL) hold different blocks. A request of 0 floats takes none.
class WorkspacePool {
 public:
  struct Block {
    float* data;
    size_t floats;
  };

  // A block of at least n floats (n > 0), 64-byte aligned; throws std::bad_alloc.
  Block take(size_t n) {
    Block b{nullptr, 0};
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!free_.empty()) {
        b = free_.back();
        free_.pop_back();
      }
    }
    if (b.floats >= n) return b;
    std::free(b.data);
    const size_t floats = (n + 15) & ~size_t(15);
    b.data = static_cast<float*>(std::aligned_alloc(64, floats * sizeof(float)));
    if (!b.data) throw std::bad_alloc();
    b.floats = floats;
    return b;
  }

  void give(Block b) {
    std::lock_guard<std::mutex> lock(mutex_);
    free_.push_back(b);
  }

  // Never destroyed, as BlockCache.
  static WorkspacePool& instance() {
    static WorkspacePool* pool = new WorkspacePool();
    return *pool;
  }

 private:
  std::mutex mutex_;
  std::vector<Block> free_;  // most recently given back last
};

// A kernel workspace of n floats from the WorkspacePool for the scope (data null when n is 0).
struct Workspace {
  WorkspacePool::Block block{nullptr, 0};
  float* data = nullptr;
  explicit Workspace(size_t n) {
    if (n == 0) return;
    block = WorkspacePool::instance().take(n);
    data = block.data;
  }
  ~Workspace() {
    if (data) WorkspacePool::instance().give(block);
  }
  Workspace(const Workspace&) = delete;
  Workspace& operator=(const Workspace&) = delete;
};

}  // namespace nnfast_bindings
