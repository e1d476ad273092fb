#include "cnnx/runtime.h"

#include <atomic>
#include <cstdlib>
#include <new>

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace cnnx {

namespace {

int default_threads() {
#if defined(_OPENMP)
  return omp_get_max_threads();
#else
  return 1;
#endif
}

std::atomic<int>& thread_setting() {
  static std::atomic<int> n{default_threads()};
  return n;
}

// Per-thread scratch buffers; freed when the thread exits.
struct Workspace {
  void* ptr[kWorkspaceSlots] = {};
  std::size_t size[kWorkspaceSlots] = {};
  ~Workspace() {
    for (void* p : ptr) std::free(p);
  }
};

}  // namespace

int get_num_threads() { return thread_setting().load(std::memory_order_relaxed); }

void set_num_threads(int n) { thread_setting().store(n < 1 ? 1 : n, std::memory_order_relaxed); }

bool openmp_enabled() {
#if defined(_OPENMP)
  return true;
#else
  return false;
#endif
}

std::string compiler_description() {
#if defined(__clang__)
  return std::string("clang ") + __clang_version__;
#elif defined(__GNUC__)
  return std::string("gcc ") + __VERSION__;
#elif defined(_MSC_VER)
  return "msvc " + std::to_string(_MSC_VER);
#else
  return "unknown";
#endif
}

const char* version() { return CNNX_VERSION; }

void* workspace(int slot, std::size_t bytes) {
  thread_local Workspace ws;
  if (bytes > ws.size[slot]) {
    std::free(ws.ptr[slot]);
    ws.ptr[slot] = nullptr;
    ws.size[slot] = 0;
    // Round up to whole pages: aligned_alloc needs a multiple of the alignment, and page-sized
    // growth avoids a string of tiny reallocations.
    std::size_t rounded = (bytes + 4095) & ~std::size_t(4095);
    void* p = std::aligned_alloc(4096, rounded);
    if (!p) throw std::bad_alloc();
    ws.ptr[slot] = p;
    ws.size[slot] = rounded;
  }
  return ws.ptr[slot];
}

}  // namespace cnnx
