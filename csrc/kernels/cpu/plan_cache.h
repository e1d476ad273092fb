// A small per-thread cache of shape-only tables ("plans": masks, gather bases, divisors) for the
// kernels that precompute them. Building one walks every position of a plane (for a 112x112 plane
// that costs more than a batch-1 forward), and a network's few shapes recur on every step. Included
// in per-ISA translation units, so it lives in the ISA's namespace.
#pragma once

#include <array>
#include <cstdint>
#include <utility>
#include <vector>

namespace cnnx {
namespace CNNX_ISA_NS {

// The plan for `key`, made by make() on first use on this thread. Each call site (each Make type)
// has its own cache of up to 32 plans; the reference stays valid until this thread's next call
// that has to make a plan at the same site.
template <std::size_t N, class Make>
const auto& cached_plan(const std::array<std::int64_t, N>& key, Make&& make) {
  using Plan = decltype(make());
  thread_local std::vector<std::pair<std::array<std::int64_t, N>, Plan>> cache;
  for (const auto& entry : cache)
    if (entry.first == key) return entry.second;
  if (cache.size() >= 32) cache.clear();
  cache.emplace_back(key, make());
  return cache.back().second;
}

}  // namespace CNNX_ISA_NS
}  // namespace cnnx
