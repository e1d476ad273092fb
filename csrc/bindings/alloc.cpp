// Output arrays of the kernels, backed by a small cache of large blocks.
//
// Why: glibc returns blocks above its mmap threshold (at most 32 MiB, usually much less) to the
// system when they are freed, so a layer that allocates a 50 MB output on every call pays for
// ~12,000 page faults (the kernel zeroing every page) each time: measured 25% of a depthwise
// convolution's time. A training loop allocates the same sizes every step, so keeping freed blocks
// and handing them out again by exact size makes steady-state steps fault-free.
//
// Blocks of at least kMinCached bytes come from here; a numpy array owns its block through a
// capsule whose destructor gives the block back. At most kMaxCached bytes are kept idle (beyond
// that a freed block goes straight back to the system). The cache is shared by all threads.
#include <cstdlib>
#include <map>
#include <mutex>
#include <new>
#include <string>
#include <vector>

#include "arrays.h"

namespace cnnx {
namespace bind {

namespace {

constexpr std::size_t kMinCached = std::size_t(1) << 20;  // smaller blocks: malloc is fast enough
constexpr std::size_t kMaxCached = std::size_t(2) << 30;  // idle bytes kept at most
constexpr std::size_t kAlign = 4096;

struct Block {
  void* data;
  std::size_t bytes;
};

class BlockCache {
 public:
  Block* take(std::size_t bytes) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto it = idle_.find(bytes);
      if (it != idle_.end() && !it->second.empty()) {
        Block* b = it->second.back();
        it->second.pop_back();
        idle_bytes_ -= bytes;
        return b;
      }
    }
    void* data = std::aligned_alloc(kAlign, (bytes + kAlign - 1) / kAlign * kAlign);
    if (data == nullptr) throw std::bad_alloc();
    return new Block{data, bytes};
  }

  void give(Block* b) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (idle_bytes_ + b->bytes <= kMaxCached) {
        idle_[b->bytes].push_back(b);
        idle_bytes_ += b->bytes;
        return;
      }
    }
    release(b);
  }

  // Frees every idle block; returns the bytes freed.
  std::size_t clear() {
    std::map<std::size_t, std::vector<Block*>> idle;
    std::size_t bytes;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      idle.swap(idle_);
      bytes = idle_bytes_;
      idle_bytes_ = 0;
    }
    for (auto& kv : idle)
      for (Block* b : kv.second) release(b);
    return bytes;
  }

  std::size_t idle_bytes() {
    std::lock_guard<std::mutex> lock(mutex_);
    return idle_bytes_;
  }

 private:
  static void release(Block* b) {
    std::free(b->data);
    delete b;
  }
  std::mutex mutex_;
  std::map<std::size_t, std::vector<Block*>> idle_;
  std::size_t idle_bytes_ = 0;
};

// Never destroyed: arrays may outlive static destruction at interpreter exit.
BlockCache& cache() {
  static BlockCache* c = new BlockCache();
  return *c;
}

}  // namespace

py::array new_array(const py::dtype& dtype, const std::vector<py::ssize_t>& shape) {
  std::size_t count = 1;
  for (py::ssize_t d : shape) count *= static_cast<std::size_t>(d);
  const std::size_t bytes = count * static_cast<std::size_t>(dtype.itemsize());
  if (bytes < kMinCached) return py::array(dtype, shape);
  Block* block = nullptr;
  try {
    block = cache().take(bytes);
  } catch (const std::bad_alloc&) {
    std::string dims;
    for (py::ssize_t d : shape) dims += (dims.empty() ? "" : ", ") + std::to_string(d);
    PyErr_SetString(PyExc_MemoryError, ("cannot allocate " + std::to_string(bytes) + " bytes for an output of shape (" +
                                        dims + ")").c_str());
    throw py::error_already_set();
  }
  py::capsule owner(block, [](void* p) { cache().give(static_cast<Block*>(p)); });
  return py::array(dtype, shape, {}, block->data, owner);
}

void bind_alloc(py::module_& m) {
  m.def("empty_cache", [] { return cache().clear(); },
        "Frees the idle blocks kept for kernel outputs; returns the number of bytes freed.");
  m.def("cached_bytes", [] { return cache().idle_bytes(); },
        "Bytes held idle for reuse by kernel outputs (at most 2 GiB).");
}

}  // namespace bind
}  // namespace cnnx
