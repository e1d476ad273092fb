// Index arithmetic shared by the convolution kernels (conv.cpp, conv_depthwise.cpp). Included in
// per-ISA translation units, so it lives in the ISA's namespace.
#pragma once

#include <algorithm>
#include <cstdint>

namespace cnnx {
namespace CNNX_ISA_NS {

// The positions o in [0, out) whose input column o*s - pad + offset lies inside [0, size): [lo, hi),
// with 0 <= lo <= hi <= out. im2col uses it per kernel column (offset j*d), the depthwise kernel per
// column phase (offset ph). lo is clamped: with padding wider than the input, a kernel column may
// see only padding.
inline void valid_range(std::int64_t size, std::int64_t out, std::int64_t s, std::int64_t pad,
                        std::int64_t offset, std::int64_t* lo, std::int64_t* hi) {
  const std::int64_t first = pad - offset;  // o*s >= first
  *lo = first <= 0 ? 0 : std::min(out, (first + s - 1) / s);
  const std::int64_t last = size - 1 + pad - offset;  // o*s <= last
  *hi = last < 0 ? 0 : std::min(out, last / s + 1);
  if (*hi < *lo) *hi = *lo;
}

}  // namespace CNNX_ISA_NS
}  // namespace cnnx
