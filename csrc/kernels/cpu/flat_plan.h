// Flat plans, shared by the depthwise kernels (conv_depthwise.cpp) and im2col (conv.cpp). Included
// in per-ISA translation units, so it lives in the ISA's namespace.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <vector>

#include "cnnx/conv.h"
#include "cpu/conv_geometry.h"
#include "cpu/plan_cache.h"
#include "cpu/simd.h"

namespace cnnx {
namespace CNNX_ISA_NS {
namespace flat {

using std::int64_t;

// Flat plans: a plane as one run of values (MobileNet's 56x56 and smaller layers, and the column
// matrices of small dense layers).
//
// Output o = oh*OW + ow reads tap (i, j) at input position
//   base(o) + off(i, j),   base(o) = oh*SH*W + ow*SW,   off(i, j) = (i*DH - PH)*W + (j*DW - PW).
// With stride 1 and OH == H, OW == W ("same" padding), base(o) = o: the whole flattened plane is one
// shifted run per tap, computed Vec-wide straight from the input to the output with no padded copy
// (a 7x7 plane is 4 vectors per tap instead of 7 mostly empty rows). Otherwise (stride 2 on a small
// plane) each vector gathers its lanes at base + off. Either way, lanes whose position leaves the
// image (above or below it, or across the end of a row) are masked off and not read. The masks and
// bases depend on the shape only and are made once per shape and thread (cpu/plan_cache.h).

// Planes up to this many input values take the flat kernels. Measured on AVX-512 (2 threads, batch 1
// to 32): faster than the row kernels from 7x7 to 112x112, in all three directions (e.g. 112x112
// stride 1 dw 2.3x, 14x14 stride 2 forward 2.1x, dx 2x); larger planes keep the row kernels, whose
// per-plane copy is then small next to the plane (and the flat plans' tables would not stay in L1).
constexpr std::int64_t kFlatMaxPlane = 128 * 128;
constexpr std::int64_t kGatherMaxPlane = kFlatMaxPlane;

struct FlatPlan {
  bool gather = false;              // lanes gathered at base + off (else one shifted run)
  std::int64_t hw = 0, vecs = 0, ntaps = 0;  // outputs per plane, Vecs per output plane, taps
  std::vector<std::int64_t> off;         // off[q]: the input shift of tap q
  std::vector<std::uint32_t> mask;  // mask[v * ntaps + q]: lanes of vector v that tap q reads
  std::vector<std::int32_t> base;   // base[v * width + l]: input position of output lane l (gather)
  std::vector<std::uint8_t> whole;  // whole[v]: every tap reads every lane of vector v (no mask needed)
};

inline bool shift_applies(const Conv2dParams& p) {
  return p.stride_h == 1 && p.stride_w == 1 && p.oh == p.h && p.ow == p.w && p.h * p.w <= kFlatMaxPlane;
}

template <class T>
FlatPlan make_flat_plan(const Conv2dParams& p) {
  constexpr std::int64_t W = simd::Vec<T>::width;
  FlatPlan F;
  F.gather = !shift_applies(p);
  F.hw = p.oh * p.ow;
  F.vecs = (F.hw + W - 1) / W;
  F.ntaps = p.kh * p.kw;
  for (int64_t i = 0; i < p.kh; ++i)
    for (int64_t j = 0; j < p.kw; ++j) F.off.push_back((i * p.dil_h - p.pad_h) * p.w + j * p.dil_w - p.pad_w);
  F.mask.assign(static_cast<size_t>(F.vecs * F.ntaps), 0u);
  if (F.gather) F.base.assign(static_cast<size_t>(F.vecs * W), 0);
  // Tap q reads inside the image at output (oh, ow) when its row and its column both land inside.
  std::vector<std::uint32_t> col_ok(static_cast<size_t>(p.ow * p.kw));  // bit per kernel column
  for (int64_t ow = 0; ow < p.ow; ++ow)
    for (int64_t j = 0; j < p.kw; ++j) {
      const int64_t iw = ow * p.stride_w + j * p.dil_w - p.pad_w;
      col_ok[ow * p.kw + j] = iw >= 0 && iw < p.w;
    }
  for (int64_t oh = 0, o = 0; oh < p.oh; ++oh)
    for (int64_t ow = 0; ow < p.ow; ++ow, ++o) {
      const int64_t v = o / W;
      const std::uint32_t bit = 1u << (o % W);
      if (F.gather) F.base[o] = static_cast<std::int32_t>(oh * p.stride_h * p.w + ow * p.stride_w);
      std::uint32_t* m = F.mask.data() + v * F.ntaps;
      for (int64_t i = 0; i < p.kh; ++i) {
        const int64_t ih = oh * p.stride_h + i * p.dil_h - p.pad_h;
        if (ih < 0 || ih >= p.h) continue;
        for (int64_t j = 0; j < p.kw; ++j)
          if (col_ok[ow * p.kw + j]) m[i * p.kw + j] |= bit;
      }
    }
  const std::uint32_t all = W == 32 ? ~0u : (1u << W) - 1;
  F.whole.assign(static_cast<size_t>(F.vecs), 0);
  for (int64_t v = 0; v < F.vecs; ++v)
    F.whole[v] = std::all_of(F.mask.begin() + v * F.ntaps, F.mask.begin() + (v + 1) * F.ntaps,
                             [&](std::uint32_t m) { return m == all; });
  return F;
}

// The input gradient of a strided layer as a gathering plan over dx: input position (ih, iw) receives
// tap (i, j) from dy[(ih + PH - i*DH) / SH][(iw + PW - j*DW) / SW] when both divisions are exact and
// land inside dy. Writing ih + PH = SH*a + r and i*DH = SH*b + t, exact means r == t, and then the dy
// row is a - b: so the read is base(ih, iw) + off(i, j) with base = a*OW + c and off = -(b*OW + e)
// (c, e likewise for columns), and the masks carry the exactness and the bounds.
template <class T>
FlatPlan make_flat_plan_dx(const Conv2dParams& p) {
  constexpr std::int64_t W = simd::Vec<T>::width;
  FlatPlan F;
  F.gather = true;
  F.hw = p.h * p.w;
  F.vecs = (F.hw + W - 1) / W;
  F.ntaps = p.kh * p.kw;
  for (int64_t i = 0; i < p.kh; ++i)
    for (int64_t j = 0; j < p.kw; ++j)
      F.off.push_back(-((i * p.dil_h) / p.stride_h * p.ow + (j * p.dil_w) / p.stride_w));
  F.mask.assign(static_cast<size_t>(F.vecs * F.ntaps), 0u);
  F.base.assign(static_cast<size_t>(F.vecs * W), 0);
  for (int64_t ih = 0, o = 0; ih < p.h; ++ih)
    for (int64_t iw = 0; iw < p.w; ++iw, ++o) {
      const int64_t a = (ih + p.pad_h) / p.stride_h, r = (ih + p.pad_h) % p.stride_h;
      const int64_t c = (iw + p.pad_w) / p.stride_w, rc = (iw + p.pad_w) % p.stride_w;
      F.base[o] = static_cast<std::int32_t>(a * p.ow + c);
      std::uint32_t* m = F.mask.data() + (o / W) * F.ntaps;
      for (int64_t i = 0; i < p.kh; ++i) {
        const int64_t b = (i * p.dil_h) / p.stride_h, t = (i * p.dil_h) % p.stride_h;
        if (t != r || a - b < 0 || a - b >= p.oh) continue;
        for (int64_t j = 0; j < p.kw; ++j) {
          const int64_t e = (j * p.dil_w) / p.stride_w, tc = (j * p.dil_w) % p.stride_w;
          if (tc == rc && c - e >= 0 && c - e < p.ow) m[i * p.kw + j] |= 1u << (o % W);
        }
      }
    }
  return F;
}

// The plan of a shape, for the forward and dw or for dx (cpu/plan_cache.h).
template <class T>
const FlatPlan& flat_plan(const Conv2dParams& p, bool for_dx = false) {
  const std::array<int64_t, 13> key{p.h,        p.w,        p.oh,    p.ow,    p.kh,     p.kw,    p.stride_h,
                                    p.stride_w, p.pad_h,    p.pad_w, p.dil_h, p.dil_w, for_dx};
  return cached_plan(key, [&] { return for_dx ? make_flat_plan_dx<T>(p) : make_flat_plan<T>(p); });
}

// Vector v of tap q of the plane at x (its lanes masked by m).
template <class T, bool G>
CNNX_INLINE typename simd::Vec<T>::reg flat_load(const T* x, int64_t v, int64_t q, std::uint32_t m, const FlatPlan& F) {
  using V = simd::Vec<T>;
  if constexpr (G)
    return V::gather_lanes(shifted(x, F.off[q]), F.base.data() + v * V::width, m);
  else
    return V::load_lanes(shifted(x, v * V::width + F.off[q]), m);
}

}  // namespace flat
}  // namespace CNNX_ISA_NS
}  // namespace cnnx
