// The arithmetic peak of this machine as the active kernels see it: a probe, not a kernel, so that
// benchmarks can state "% of peak" against a figure measured in the same run (a shared VM's
// throughput moves from minute to minute; a constant from a data sheet does not).
#pragma once

#include <cstdint>

namespace cnnx {

// Runs `threads` threads (>= 1, checked by the caller) for about `seconds` (> 0) of independent
// fused multiply-add chains on registers only (no memory traffic) and returns the GFLOP/s they
// reached, counting 2 FLOPs per lane per FMA: the ceiling any kernel of this ISA and dtype can
// approach on this machine right now. The ref table's probe is scalar.
template <class T>
double fma_peak(int threads, double seconds);

namespace ref {
template <class T>
double fma_peak(int threads, double seconds);
}  // namespace ref

}  // namespace cnnx
