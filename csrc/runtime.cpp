#include "cnnx/runtime.h"

#include <atomic>
#include <cstdlib>
#include <new>

#if defined(_OPENMP)
#include <omp.h>
#include <pthread.h>
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

// GNU OpenMP is not fork-safe: a child forked after the parent ran a parallel region inherits a
// thread pool whose threads do not exist, and its next parallel region hangs forever. So a forked
// child (a DataLoader worker, multiprocessing's fork start method) runs every kernel on its calling
// thread, as PyTorch does; set_num_threads cannot raise that again in the child.
std::atomic<bool> in_forked_child{false};
#if defined(_OPENMP)
void mark_forked_child() { in_forked_child.store(true, std::memory_order_relaxed); }
const int at_fork_registered = pthread_atfork(nullptr, nullptr, &mark_forked_child);
#endif

// Per-thread scratch buffers; freed when the thread exits.
struct Workspace {
  void* ptr[kWorkspaceSlots] = {};
  std::size_t size[kWorkspaceSlots] = {};
  ~Workspace() {
    for (void* p : ptr) std::free(p);
  }
};

}  // namespace

int get_num_threads() {
  return in_forked_child.load(std::memory_order_relaxed) ? 1 : thread_setting().load(std::memory_order_relaxed);
}

namespace {
std::atomic<int>& conv_algorithm_setting() {
  static std::atomic<int> a{int(ConvAlgorithm::kAuto)};
  return a;
}
}  // namespace

ConvAlgorithm conv_algorithm() { return ConvAlgorithm(conv_algorithm_setting().load(std::memory_order_relaxed)); }
void set_conv_algorithm(ConvAlgorithm a) { conv_algorithm_setting().store(int(a), std::memory_order_relaxed); }

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
  std::string d = std::string("clang ") + __clang_version__;
#elif defined(__GNUC__)
  std::string d = std::string("gcc ") + __VERSION__;
#elif defined(_MSC_VER)
  std::string d = "msvc " + std::to_string(_MSC_VER);
#else
  std::string d = "unknown";
#endif
#if defined(__AVX__)
  // Baseline code itself built for AVX (CNNX_NATIVE=ON's -march=native): runs on this CPU family only.
  d += " (baseline code with AVX)";
#endif
  return d;
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
