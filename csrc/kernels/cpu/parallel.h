// Minimal OpenMP shim. Builds without OpenMP run every region on the calling thread.
// Functions are static so each per-ISA translation unit keeps its own copy (no ODR merging of
// code compiled with different instruction sets).
#pragma once

#include <atomic>
#include <cstdint>

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace cnnx {
namespace parallel {

// Runs f(thread_id, num_threads) on up to `threads` threads. The team size actually granted is
// passed to f; work partitions must be derived from it, never from the request.
template <class F>
static inline void region(int threads, F&& f) {
#if defined(_OPENMP)
  if (threads > 1) {
#pragma omp parallel num_threads(threads)
    f(omp_get_thread_num(), omp_get_num_threads());
    return;
  }
#endif
  f(0, 1);
}

// Waits for the whole team of the enclosing region; `nt` is the team size region() passed to f.
// With nt == 1 it does nothing: the region ran inline, and an OpenMP barrier there would bind to an
// enclosing team (a kernel running single-threaded inside another kernel's region) and deadlock it.
static inline void barrier(int nt) {
#if defined(_OPENMP)
  if (nt > 1) {
#pragma omp barrier
  }
#else
  (void)nt;
#endif
}

// Contiguous share [begin, end) of `total` items for thread `tid` of `nt`, balanced to within one.
struct Range {
  std::int64_t begin, end;
};
static inline Range split(std::int64_t total, int tid, int nt) {
  return {total * tid / nt, total * (tid + 1) / nt};
}

// Hands out the items [0, n) in order, `chunk` at a time, to whichever thread of a region asks next.
// For work whose items are independent (each computed whole by one thread, in an order of its own),
// so that the results do not depend on which thread takes which: a thread slowed down by another
// process (a shared VM's vCPUs, measured 20-40% apart) or running on a smaller core then takes fewer
// items instead of holding the others at the region's end. Work that sums across items on one
// thread must keep split(), whose shares are fixed by the shapes.
class Dispenser {
 public:
  Dispenser(std::int64_t n, std::int64_t chunk) : n_(n), chunk_(chunk < 1 ? 1 : chunk) {}
  // Runs of whole units (`unit` consecutive items that belong together), about 8 a thread: enough
  // to even out threads that run at different speeds, few enough that neighbouring items mostly
  // stay on one thread (alternating them shared the cache lines at their borders between threads:
  // LeNet's C1 at batch 256, one block a run, ran 0.83x). With fewer units than 8 a thread, one
  // unit a run.
  Dispenser(std::int64_t n, int threads, std::int64_t unit)
      : Dispenser(n, unit * (n / unit >= 8 * threads ? n / unit / (8 * threads) : 1)) {}
  // Calls body(item) for each item of each run this thread takes, until none is left.
  template <class F>
  void each(F&& body) {
    for (;;) {
      const std::int64_t b = next_.fetch_add(chunk_, std::memory_order_relaxed);
      if (b >= n_) return;
      for (std::int64_t i = b, e = b + chunk_ < n_ ? b + chunk_ : n_; i < e; ++i) body(i);
    }
  }

 private:
  std::atomic<std::int64_t> next_{0};
  const std::int64_t n_, chunk_;
};

// Runs body(begin, end) over [0, n) on up to `threads` threads, one per `per_thread` items (n below
// 2 * per_thread runs inline), each taking a contiguous run that starts at a multiple of `chunk`.
template <class F>
static inline void split_range(int threads, std::int64_t n, std::int64_t per_thread, std::int64_t chunk, F&& body) {
  const std::int64_t useful = n / per_thread;
  const int team = static_cast<int>(useful < threads ? (useful < 1 ? 1 : useful) : threads);
  if (team == 1) {
    body(std::int64_t(0), n);
    return;
  }
  const std::int64_t chunks = (n + chunk - 1) / chunk;
  region(team, [&](int tid, int nt) {
    const Range r = split(chunks, tid, nt);
    const std::int64_t b = r.begin * chunk, e = r.end * chunk;
    body(b < n ? b : n, e < n ? e : n);
  });
}

}  // namespace parallel
}  // namespace cnnx
