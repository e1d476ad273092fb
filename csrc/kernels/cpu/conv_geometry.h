// Index arithmetic shared by the convolution kernels (conv*.cpp). Included in per-ISA translation
// units, so it lives in the ISA's namespace.
#pragma once

#include <algorithm>
#include <cstdint>

#include "cnnx/conv.h"
#include "cnnx/runtime.h"
#include "cpu/simd.h"

namespace cnnx {
namespace CNNX_ISA_NS {

// Threads for a call of `macs` multiply-adds split into `units` pieces: at most one per unit, and one
// per 2^19 multiply-adds (below that, waking a thread costs more than it saves).
inline int threads_for(double macs, std::int64_t units) {
  const double by_work = std::max(1.0, macs / double(1 << 19));
  return int(std::max<std::int64_t>(1, std::min<std::int64_t>({std::int64_t(get_num_threads()), std::int64_t(by_work), units})));
}

// The input gradient of a stride-1 convolution p is a forward convolution of dy (K channels of
// OH x OW) with the flipped, transposed kernel (flip_kernel) and padding (KH-1)*DH - PH, which is
// >= 0 when p's padding is at most the dilated kernel's reach. The direct, Winograd and row kernels
// all compute it this way.
inline Conv2dParams transposed_of(const Conv2dParams& p) {
  Conv2dParams t = p;
  t.c = p.k;
  t.h = p.oh;
  t.w = p.ow;
  t.k = p.c;
  t.oh = p.h;
  t.ow = p.w;
  t.pad_h = (p.kh - 1) * p.dil_h - p.pad_h;
  t.pad_w = (p.kw - 1) * p.dil_w - p.pad_w;
  return t;
}

// ConvEpilogue's tail on one vector (conv.h): v * a + b when affine (a multiply, then an add, as
// batch norm's evaluation), then ReLU when relu (v < 0 ? 0 : v, NaN kept, as the relu kernel). The
// one definition every algorithm's epilogue uses, so all of them give the separate passes' bits.
template <class T>
CNNX_INLINE typename simd::Vec<T>::reg conv_tail(typename simd::Vec<T>::reg v, typename simd::Vec<T>::reg a,
                                                 typename simd::Vec<T>::reg b, bool affine, bool relu) {
  using V = simd::Vec<T>;
  if (affine) v = V::add(V::mul(v, a), b);
  if (relu) v = V::select(V::gt_or_nan(V::zero(), v), V::zero(), v);
  return v;
}

// out[c][k][i][j] = w[k][c][KH-1-i][KW-1-j] for a one-group layer p (w: K x C x KH x KW).
template <class T>
void flip_kernel(T* out, const T* w, const Conv2dParams& p) {
  const std::int64_t khw = p.kh * p.kw;
  for (std::int64_t c = 0; c < p.c; ++c)
    for (std::int64_t k = 0; k < p.k; ++k)
      for (std::int64_t q = 0; q < khw; ++q) out[(c * p.k + k) * khw + q] = w[(k * p.c + c) * khw + khw - 1 - q];
}

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

// p + d elements, computed on addresses: the result may point outside the array (for lanes a masked
// load does not read), which pointer arithmetic may not do.
template <class T>
CNNX_INLINE T* shifted(T* p, std::int64_t d) {
  return reinterpret_cast<T*>(reinterpret_cast<std::uintptr_t>(p) +
                              static_cast<std::uintptr_t>(d * std::int64_t(sizeof(T))));
}

// dst[o] = src[o] for lo <= o < hi, else 0, for o in [0, n): one masked load and one store per Vec,
// with no calls. im2col rows are short (28 values for a 28x28 image), and memcpy plus two fills per
// row cost more than the copy.
template <class T>
CNNX_INLINE void copy_window_row(T* dst, const T* src, std::int64_t n, std::int64_t lo, std::int64_t hi) {
  using V = simd::Vec<T>;
  constexpr std::int64_t W = V::width;
  for (std::int64_t o = 0; o < n; o += W) {
    const std::int64_t a = std::clamp<std::int64_t>(lo - o, 0, W), b = std::clamp<std::int64_t>(hi - o, 0, W);
    const std::uint32_t bits = b > a ? ((1u << b) - 1u) & ~((1u << a) - 1u) : 0u;  // width <= 16
    const typename V::reg v = V::load_lanes(shifted(src, o), bits);
    if (o + W <= n)
      V::store(dst + o, v);
    else
      V::store_partial(dst + o, v, int(n - o));
  }
}

}  // namespace CNNX_ISA_NS
}  // namespace cnnx
