// Minimal OpenMP shim. Builds without OpenMP run every region on the calling thread.
// Functions are static so each per-ISA translation unit keeps its own copy (no ODR merging of
// code compiled with different instruction sets).
#pragma once

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
