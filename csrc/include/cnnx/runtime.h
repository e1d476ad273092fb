// Process-wide runtime state shared by every kernel: thread count, scratch memory, build facts.
// Compiled once (baseline ISA); per-ISA kernels call these through ordinary, non-inline functions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace cnnx {

// Threads a kernel may use. Defaults to OpenMP's maximum (honours OMP_NUM_THREADS). Kernels pass it
// explicitly to each parallel region, so it applies to every calling thread, not just the one that set it.
int get_num_threads();
void set_num_threads(int n);  // n >= 1, checked by the caller

// How dense convolutions are computed (conv.cpp): kAuto picks per shape; the others force one
// algorithm wherever it can run (tests and benchmarks use this to cover and compare them).
enum class ConvAlgorithm { kAuto, kGemm, kDirect, kWinograd, kRows };
ConvAlgorithm conv_algorithm();
void set_conv_algorithm(ConvAlgorithm a);

bool openmp_enabled();
std::string compiler_description();
const char* version();

// Scratch memory owned by the calling thread: slot s (0 <= s < kWorkspaceSlots) holds at least `bytes`
// bytes, 64-byte aligned, contents undefined. Grows on demand and is kept, so steady-state calls never
// touch the system allocator (large blocks would otherwise be page-faulted in on every call).
// The pointer is valid until the next workspace() call for the same slot on the same thread.
constexpr int kWorkspaceSlots = 7;
void* workspace(int slot, std::size_t bytes);

template <class T>
T* workspace_as(int slot, std::int64_t count) {
  return static_cast<T*>(workspace(slot, static_cast<std::size_t>(count) * sizeof(T)));
}

}  // namespace cnnx
