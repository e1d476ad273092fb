// Pooling, compiled once per ISA. Contract: cnnx/pool.h.
//
// These kernels are memory-bound: each (n, c) plane is read once and its outputs written once, and
// threads split whole planes (no sums are split, so results do not depend on the thread count).
//
// Max and average pooling vectorise along the output row: one register holds `width` consecutive
// outputs, and each window tap is one load of `width` inputs `stride` apart (load_strided: a plain
// load for stride 1, two loads and a permute for stride 2). That covers the interior columns, whose
// windows lie wholly inside the input; the few border columns take the scalar path, and the last
// vector of a row overlaps the one before instead of leaving a scalar tail. The scan order of the
// taps is the reference's, so max pooling picks the same element (NaN and tie rules included) and
// average pooling adds in the same order (the results equal the reference bit for bit).
// Max pooling carries the winning tap as its offset from the window's corner, in a register of T
// (exact while offsets stay below 2^digits and 2^31; larger planes take the scalar path), and turns
// it into the int64 index when it stores. Its compare-select per tap waits on the previous one, so
// two column blocks run side by side.
//
// Global average pooling (one window = one whole plane) sums each plane as one contiguous run.
// Average pooling on rows narrower than one register (LeNet's 28x28 -> 14x14, late-layer maps), and
// its gradient on planes up to 128x128, run "flat": a register holds `width` consecutive outputs of
// the flattened plane (several rows), and each window tap is one masked gather (FlatAvg below). So
// does max pooling of narrow rows without padding (MaxPool::flat_plane).
// Adaptive pooling sums each window along its rows with whole registers (window_sum).
#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <limits>
#include <utility>
#include <vector>

#include "cnnx/pool.h"
#include "cnnx/runtime.h"
#include "cpu/parallel.h"
#include "cpu/plan_cache.h"
#include "cpu/simd.h"

namespace cnnx {
namespace CNNX_ISA_NS {

namespace {

using std::int64_t;

// Below this many input elements a second thread costs more to wake than it saves.
constexpr int64_t kMinElementsPerThread = 16384;
constexpr int kScaledSlot = 3;  // a plane of gy / divisor (flat average-pooling gradient)

int threads_for(int64_t planes, int64_t elements) {
  const int64_t useful = std::max<int64_t>(1, elements / kMinElementsPerThread);
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>({get_num_threads(), planes, useful})));
}

// Runs body(plane) for every plane, threads taking contiguous ranges.
template <class F>
void for_each_plane(int64_t planes, int64_t elements, F&& body) {
  parallel::region(threads_for(planes, elements), [&](int tid, int nt) {
    const parallel::Range r = parallel::split(planes, tid, nt);
    for (int64_t q = r.begin; q < r.end; ++q) body(q);
  });
}

// Output columns whose windows lie wholly inside the input: [lo, hi), possibly empty.
struct Interior {
  int64_t lo, hi;
};
Interior interior_columns(const Pool2dParams& p) {
  const int64_t lo = (p.pw + p.sw - 1) / p.sw;
  const int64_t span = p.w - 1 + p.pw - (p.kw - 1) * p.dw;  // last window start that still fits
  const int64_t hi = span < 0 ? 0 : std::min(p.ow, span / p.sw + 1);
  return {lo, std::max(lo, hi)};
}

// Calls block(o) for register-wide column blocks covering [lo, hi) (hi - lo >= width): the last
// block is moved back to end at hi, overlapping its predecessor, so there is no scalar tail.
template <int W, class F>
void column_blocks(int64_t lo, int64_t hi, F&& block) {
  for (int64_t o = lo;; o += W) {
    if (o > hi - W) o = hi - W;
    block(o);
    if (o == hi - W) return;
  }
}

// Sum of n contiguous values: two register accumulators, a masked load for the last partial
// register, one horizontal add. Inlined, so a loop over many short runs (global pooling of 7x7
// planes) overlaps the runs instead of waiting on each one's horizontal add.
template <class T>
static CNNX_INLINE T sum_contiguous(const T* p, int64_t n) {
  using V = simd::Vec<T>;
  constexpr int W = V::width;
  typename V::reg a0 = V::zero(), a1 = V::zero();
  int64_t i = 0;
  for (; i + 2 * W <= n; i += 2 * W) {
    a0 = V::add(a0, V::load(p + i));
    a1 = V::add(a1, V::load(p + i + W));
  }
  if (i + W <= n) {
    a0 = V::add(a0, V::load(p + i));
    i += W;
  }
  if (i < n) a1 = V::add(a1, V::load_partial(p + i, static_cast<int>(n - i)));
  return V::reduce_add(V::add(a0, a1));
}

template <class T>
void add_contiguous(T* p, int64_t n, T g) {
  using V = simd::Vec<T>;
  constexpr int W = V::width;
  const typename V::reg gv = V::set1(g);
  int64_t i = 0;
  for (; i + W <= n; i += W) V::store(p + i, V::add(V::load(p + i), gv));
  for (; i < n; ++i) p[i] += g;
}

// Sum of x[rows, cols] of one plane (row length w), registers along each row.
template <class T>
static CNNX_INLINE T window_sum(const T* x, int64_t w, int64_t r0, int64_t r1, int64_t c0, int64_t c1) {
  if (c0 == 0 && c1 == w) return sum_contiguous(x + r0 * w, (r1 - r0) * w);  // whole rows: one run
  T s = 0;
  if (c1 - c0 >= simd::Vec<T>::width) {
    for (int64_t i = r0; i < r1; ++i) s += sum_contiguous(x + i * w + c0, c1 - c0);
    return s;
  }
  for (int64_t i = r0; i < r1; ++i)
    for (int64_t j = c0; j < c1; ++j) s += x[i * w + j];
  return s;
}

// x[rows, cols] += g, in the reference's element order.
template <class T>
void window_add(T* x, int64_t w, int64_t r0, int64_t r1, int64_t c0, int64_t c1, T g) {
  if (c0 == 0 && c1 == w) return add_contiguous(x + r0 * w, (r1 - r0) * w, g);
  for (int64_t i = r0; i < r1; ++i) add_contiguous(x + i * w + c0, c1 - c0, g);
}

// Global pooling: plane q of x (plane elements each) averages into y[q] (one contiguous run per
// plane, summed in a tight loop over planes). The loops copy their arguments into locals first:
// read through the closure, they would be reloaded after every store (which might alias them).
template <class T>
void global_forward(T* y, const T* x, int64_t planes, int64_t plane, T divisor) {
  parallel::region(threads_for(planes, planes * plane), [&](int tid, int nt) {
    const parallel::Range r = parallel::split(planes, tid, nt);
    const int64_t n = plane;
    const T d = divisor;
    const T* xs = x;
    T* ys = y;
    for (int64_t q = r.begin; q < r.end; ++q) ys[q] = sum_contiguous(xs + q * n, n) / d;
  });
}

// Its gradient: every element of plane q receives gy[q] / divisor (plus zero, as the reference
// adds it to a zeroed plane: -0 becomes +0 there too).
template <class T>
void global_backward(T* gx, const T* gy, int64_t planes, int64_t plane, T divisor) {
  using V = simd::Vec<T>;
  parallel::region(threads_for(planes, planes * plane), [&](int tid, int nt) {
    const parallel::Range r = parallel::split(planes, tid, nt);
    const int64_t n = plane;
    const T d = divisor;
    const T* gys = gy;
    T* g = gx + r.begin * n;
    for (int64_t q = r.begin; q < r.end; ++q, g += n) {
      const T v = gys[q] / d + T(0);
      const typename V::reg vv = V::set1(v);
      int64_t i = 0;
      for (; i + V::width <= n; i += V::width) V::store(g + i, vv);
      if (i < n) V::store_partial(g + i, vv, static_cast<int>(n - i));
    }
  });
}

// ---------------------------------------------------------------------------------------------
// flat pooling tables (small planes)
//
// Forward: output o = (oh, ow) of a plane sums taps (i, j) in the reference's order, each a gather
// at base(o) + i*W + j (base = the window's corner, possibly in the padding) masked to the taps
// inside the input; then one division by the output's divisor. Backward: input position (ih, iw)
// gathers gy[o] / divisor[o] from the windows that contain it, in the reference's (oh, ow) order:
// those are oh = oh0(ih) + a, ow = ow0(iw) + b for a < ceil(kh/sh), b < ceil(kw/sw), i.e. position
// base(ih, iw) + a*OW + b of the output plane, masked to the windows that exist and contain it.
// Masked taps add +0, which leaves every sum as the reference's (its sums start from +0 too). The
// tables depend on the shape only and are cached per thread.

constexpr int64_t kFlatPoolMaxPlane = 128 * 128;

struct FlatAvg {  // (max pooling's forward uses the forward tables too)
  int64_t hw = 0, vecs = 0, taps = 0;  // outputs per plane (forward) or inputs (backward)
  std::vector<std::int32_t> off;       // per tap
  std::vector<std::int32_t> base;      // per lane (vecs * width)
  std::vector<std::uint32_t> mask;     // per vector and tap
  std::vector<double> divisor;         // per output of the plane
  // Forward only, for max pooling: each output's first tap inside the input (its flat index), and
  // per vector the lanes that have one (a dilated window can miss the input altogether).
  std::vector<std::int32_t> seed;      // per lane
  std::vector<std::uint32_t> seeded;   // per vector
};

inline int64_t floor_div(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

template <class T>
FlatAvg make_flat_avg(const Pool2dParams& p, bool backward) {
  constexpr int64_t W = simd::Vec<T>::width;
  FlatAvg F;
  for (int64_t oh = 0; oh < p.oh; ++oh)
    for (int64_t ow = 0; ow < p.ow; ++ow)
      F.divisor.push_back(double(avg_divisor(p, avg_window(oh, p.kh, p.sh, p.ph, p.h), avg_window(ow, p.kw, p.sw, p.pw, p.w))));
  const int64_t da = (p.kh + p.sh - 1) / p.sh, db = (p.kw + p.sw - 1) / p.sw;
  F.hw = backward ? p.h * p.w : p.oh * p.ow;
  F.vecs = (F.hw + W - 1) / W;
  F.taps = backward ? da * db : p.kh * p.kw;
  for (int64_t a = 0; a < (backward ? da : p.kh); ++a)
    for (int64_t b = 0; b < (backward ? db : p.kw); ++b)
      F.off.push_back(static_cast<std::int32_t>(backward ? a * p.ow + b : a * p.dh * p.w + b * p.dw));
  F.base.assign(static_cast<size_t>(F.vecs * W), 0);
  F.mask.assign(static_cast<size_t>(F.vecs * F.taps), 0u);
  if (!backward) {
    F.seed.assign(F.base.size(), 0);
    F.seeded.assign(static_cast<size_t>(F.vecs), 0u);
  }
  for (int64_t o = 0; o < F.hw; ++o) {
    const std::uint32_t bit = 1u << (o % W);
    std::uint32_t* m = F.mask.data() + (o / W) * F.taps;
    if (!backward) {
      const int64_t oh = o / p.ow, ow = o % p.ow, r0 = oh * p.sh - p.ph, c0 = ow * p.sw - p.pw;
      F.base[o] = static_cast<std::int32_t>(r0 * p.w + c0);
      for (int64_t i = 0; i < p.kh; ++i)
        for (int64_t j = 0; j < p.kw; ++j) {
          const int64_t r = r0 + i * p.dh, c = c0 + j * p.dw;
          if (r < 0 || r >= p.h || c < 0 || c >= p.w) continue;
          m[i * p.kw + j] |= bit;
          if (!(F.seeded[o / W] & bit)) F.seed[o] = static_cast<std::int32_t>(r * p.w + c), F.seeded[o / W] |= bit;
        }
      continue;
    }
    const int64_t ih = o / p.w, iw = o % p.w;
    // The first window that can contain (ih, iw): its start oh*sh - ph > ih - kh.
    const int64_t oh0 = std::max<int64_t>(0, floor_div(ih + p.ph - p.kh, p.sh) + 1);
    const int64_t ow0 = std::max<int64_t>(0, floor_div(iw + p.pw - p.kw, p.sw) + 1);
    F.base[o] = static_cast<std::int32_t>(oh0 * p.ow + ow0);
    for (int64_t a = 0; a < da; ++a)
      for (int64_t b = 0; b < db; ++b) {
        const int64_t oh = oh0 + a, ow = ow0 + b;
        const bool rows = oh < p.oh && oh * p.sh - p.ph <= ih && ih < oh * p.sh - p.ph + p.kh;
        const bool cols = ow < p.ow && ow * p.sw - p.pw <= iw && iw < ow * p.sw - p.pw + p.kw;
        if (rows && cols) m[a * db + b] |= bit;
      }
  }
  return F;
}

template <class T>
const FlatAvg& flat_avg(const Pool2dParams& p, bool backward) {  // cached per thread (cpu/plan_cache.h)
  const std::array<int64_t, 15> key{p.h,  p.w,  p.oh, p.ow, p.kh, p.kw, p.sh, p.sw, p.ph, p.pw, p.dh, p.dw,
                                    p.count_include_pad, p.divisor_override, backward};
  return cached_plan(key, [&] { return make_flat_avg<T>(p, backward); });
}

// Sums over the taps of F for vectors [v0, v0 + NB) of plane `src`, into out (then scaled).
template <class T, int NB>
CNNX_INLINE void flat_avg_block(T* out, const T* src, int64_t v0, const FlatAvg& F, const T* divisor) {
  using V = simd::Vec<T>;
  constexpr int64_t W = V::width;
  typename V::reg acc[NB];
  for (int b = 0; b < NB; ++b) acc[b] = V::zero();
  for (int64_t q = 0; q < F.taps; ++q) {
    const T* tap = src + F.off[q];
    for (int b = 0; b < NB; ++b)
      acc[b] = V::add(acc[b], V::gather_lanes(tap, F.base.data() + (v0 + b) * W, F.mask[(v0 + b) * F.taps + q]));
  }
  for (int b = 0; b < NB; ++b) {
    const int64_t at = (v0 + b) * W;
    typename V::reg r = acc[b];
    if (divisor) r = V::div(r, at + W <= F.hw ? V::load(divisor + at) : V::load_partial(divisor + at, int(F.hw - at)));
    if (at + W <= F.hw)
      V::store(out + at, r);
    else
      V::store_partial(out + at, r, int(F.hw - at));
  }
}

template <class T>
void flat_avg_plane(T* out, const T* src, const FlatAvg& F, const T* divisor) {
  int64_t v = 0;
  for (; v + 4 <= F.vecs; v += 4) flat_avg_block<T, 4>(out, src, v, F, divisor);
  for (; v < F.vecs; ++v) flat_avg_block<T, 1>(out, src, v, F, divisor);
}

// ---------------------------------------------------------------------------------------------
// max pooling

template <class T>
struct MaxPool {
  using V = simd::Vec<T>;
  using reg = typename V::reg;
  static constexpr int W = V::width;

  // Output columns [a, b) of one row, window by window (the reference's loop).
  static void scalar_columns(T* y, int64_t* idx, const T* x, const Pool2dParams& p, int64_t hs, TapRange rows,
                             int64_t a, int64_t b) {
    for (int64_t ow = a; ow < b; ++ow) {
      const int64_t ws = ow * p.sw - p.pw;
      const TapRange cols = pool_taps(ws, p.kw, p.dw, p.w);
      T best = -std::numeric_limits<T>::infinity();
      int64_t best_index = -1;
      for (int64_t i = rows.first; i < rows.last; ++i)
        for (int64_t j = cols.first; j < cols.last; ++j) {
          const int64_t at = (hs + i * p.dh) * p.w + ws + j * p.dw;
          const T v = x[at];
          if (best_index < 0 || v > best || std::isnan(v)) {
            best = v;
            best_index = at;
          }
        }
      y[ow] = best;
      idx[ow] = best_index;
    }
  }

  // The running (max, position) pair absorbs a later tap under the reference's rule.
  static CNNX_INLINE void absorb(reg& best, reg& pos, reg v, reg v_pos) {
    const typename V::mask m = V::gt_or_nan(v, best);
    best = V::select(m, v, best);
    pos = V::select(m, v_pos, pos);
  }

  // The interior columns of one output row, `width` outputs per register. The row's taps (the same
  // for every column) come as offsets from the window corner, in int64 for addressing and in T for
  // the argmax register. Each tap costs a compare and two selects that wait on the previous tap, so
  // two column blocks run side by side as independent chains. S is the column stride when it is 1
  // or 2 (fixed load sequences), else 0.
  template <int S>
  static void vector_row(T* yr, int64_t* ir, const T* x, const Pool2dParams& p, int64_t row_corner,
                         const int64_t* offset, const T* offset_t, int64_t taps, Interior in) {
    const int64_t stride = S != 0 ? S : p.sw;
    auto finish = [&](int64_t o, int64_t corner, reg best, reg pos) {
      V::store(yr + o, best);
      V::store_index(ir + o, pos, corner, stride);
    };
    // Flat index of a block's first window corner (negative when the window starts in the padding
    // rows; only taps inside the input are read).
    for (int64_t o = in.lo;; o += 2 * W) {
      const int64_t oa = std::min(o, in.hi - W), ob = std::min(oa + W, in.hi - W);
      const int64_t ca = row_corner + oa * stride, cb = row_corner + ob * stride;
      reg best_a = V::load_strided(x + (ca + offset[0]), stride), pos_a = V::set1(offset_t[0]);
      if (ob == oa) {  // the row's last block, alone
        for (int64_t t = 1; t < taps; ++t)
          absorb(best_a, pos_a, V::load_strided(x + (ca + offset[t]), stride), V::set1(offset_t[t]));
        finish(oa, ca, best_a, pos_a);
        return;
      }
      reg best_b = V::load_strided(x + (cb + offset[0]), stride), pos_b = pos_a;
      for (int64_t t = 1; t < taps; ++t) {
        const reg at = V::set1(offset_t[t]);
        absorb(best_a, pos_a, V::load_strided(x + (ca + offset[t]), stride), at);
        absorb(best_b, pos_b, V::load_strided(x + (cb + offset[t]), stride), at);
      }
      finish(oa, ca, best_a, pos_a);
      finish(ob, cb, best_b, pos_b);
      if (ob == in.hi - W) return;
    }
  }

  // The taps of rows [first, last) of a window, in scan order: offsets from the window corner.
  static int64_t tap_table(const Pool2dParams& p, TapRange rows, int64_t* offset, T* offset_t) {
    int64_t taps = 0;
    for (int64_t i = rows.first; i < rows.last; ++i)
      for (int64_t j = 0; j < p.kw; ++j, ++taps) {
        offset[taps] = i * p.dh * p.w + j * p.dw;
        offset_t[taps] = static_cast<T>(offset[taps]);
      }
    return taps;
  }

  static void plane(T* y, int64_t* idx, const T* x, const Pool2dParams& p, Interior in) {
    const bool vectors = in.hi - in.lo >= W;
    // Two tap tables: rows with every tap inside the input share the first; clipped rows (top and
    // bottom padding) rebuild the second.
    const int64_t kk = p.kh * p.kw;
    int64_t *full = nullptr, *clipped = nullptr, full_taps = 0;
    T *full_t = nullptr, *clipped_t = nullptr;
    if (vectors) {
      full = workspace_as<int64_t>(1, 2 * kk), clipped = full + kk;
      full_t = workspace_as<T>(2, 2 * kk), clipped_t = full_t + kk;
      full_taps = tap_table(p, TapRange{0, p.kh}, full, full_t);
    }
    for (int64_t oh = 0; oh < p.oh; ++oh) {
      const int64_t hs = oh * p.sh - p.ph;
      const TapRange rows = pool_taps(hs, p.kh, p.dh, p.h);
      T* yr = y + oh * p.ow;
      int64_t* ir = idx + oh * p.ow;
      if (rows.first >= rows.last || !vectors) {
        scalar_columns(yr, ir, x, p, hs, rows, 0, p.ow);
        continue;
      }
      scalar_columns(yr, ir, x, p, hs, rows, 0, in.lo);
      const bool whole = rows.first == 0 && rows.last == p.kh;
      const int64_t* offset = whole ? full : clipped;
      const T* offset_t = whole ? full_t : clipped_t;
      const int64_t taps = whole ? full_taps : tap_table(p, rows, clipped, clipped_t);
      const int64_t row_corner = hs * p.w - p.pw;
      if (p.sw == 1)
        vector_row<1>(yr, ir, x, p, row_corner, offset, offset_t, taps, in);
      else if (p.sw == 2)
        vector_row<2>(yr, ir, x, p, row_corner, offset, offset_t, taps, in);
      else
        vector_row<0>(yr, ir, x, p, row_corner, offset, offset_t, taps, in);
      scalar_columns(yr, ir, x, p, hs, rows, in.hi, p.ow);
    }
  }

  // Flat (rows narrower than a register): a register holds `width` consecutive outputs of the
  // flattened plane and each tap is one gather (FlatAvg's forward tables). Each lane's first tap
  // inside the input (seed: its flat index; -inf at -1 for a dilated window that misses the input)
  // seeds the running maximum, as the reference's first comparison does; then every tap is absorbed
  // in scan order, those outside the input (padding, ceil mode) gathering -inf, which never wins,
  // and the seed itself again, which changes nothing.
  // The position register holds the flat input index, exact in T on these small planes.
  static void flat_plane(T* y, int64_t* idx, const T* x, const FlatAvg& F, const T* base_t, const T* seed_t) {
    const reg minus_inf = V::set1(-std::numeric_limits<T>::infinity());
    alignas(64) int64_t tail[W];
    for (int64_t v = 0; v < F.vecs; ++v) {
      const std::int32_t* bases = F.base.data() + v * W;
      const std::uint32_t* m = F.mask.data() + v * F.taps;
      const reg corner = V::load(base_t + v * W);
      reg best = V::gather_lanes(x, F.seed.data() + v * W, F.seeded[v], minus_inf);
      reg pos = V::load(seed_t + v * W);
      for (int64_t q = 0; q < F.taps; ++q)
        absorb(best, pos, V::gather_lanes(x + F.off[q], bases, m[q], minus_inf),
               V::add(corner, V::set1(static_cast<T>(F.off[q]))));
      const int64_t at = v * W;
      if (at + W <= F.hw) {
        V::store(y + at, best);
        V::store_index(idx + at, pos, 0, 0);
      } else {
        V::store_partial(y + at, best, int(F.hw - at));
        V::store_index(tail, pos, 0, 0);
        std::copy(tail, tail + (F.hw - at), idx + at);
      }
    }
  }

  static void forward(T* y, int64_t* idx, const T* x, const Pool2dParams& p) {
    const int64_t in_plane = p.h * p.w, out_plane = p.oh * p.ow;
    // Offsets inside a window must be exact in T, and fit the int32 conversion of store_index.
    const int64_t max_offset = (p.kh - 1) * p.dh * p.w + (p.kw - 1) * p.dw;
    const bool exact = max_offset < (int64_t(1) << std::min(std::numeric_limits<T>::digits, 31));
    const Interior in = exact ? interior_columns(p) : Interior{0, 0};
    if (in.hi - in.lo < W && in_plane <= kFlatPoolMaxPlane) {
      const FlatAvg& F = flat_avg<T>(p, false);
      // Positions as T for the argmax register; a window that misses the input starts (and stays)
      // at the reference's index -1.
      std::vector<T> base_t(static_cast<size_t>(F.vecs * W)), seed_t(base_t.size());
      for (size_t i = 0; i < base_t.size(); ++i) {
        base_t[i] = static_cast<T>(F.base[i]);
        seed_t[i] = F.seeded[i / W] >> (i % W) & 1u ? static_cast<T>(F.seed[i]) : T(-1);
      }
      for_each_plane(p.n * p.c, p.n * p.c * in_plane, [&](int64_t q) {
        flat_plane(y + q * out_plane, idx + q * out_plane, x + q * in_plane, F, base_t.data(), seed_t.data());
      });
      return;
    }
    for_each_plane(p.n * p.c, p.n * p.c * in_plane, [&](int64_t q) {
      plane(y + q * out_plane, idx + q * out_plane, x + q * in_plane, p, in);
    });
  }

  static bool backward(T* gx, const T* gy, const int64_t* idx, const Pool2dParams& p) {
    const int64_t in_plane = p.h * p.w, out_plane = p.oh * p.ow;
    std::atomic<bool> ok{true};
    // Plane by plane: the zeroed plane stays in cache for the scatter, so grad_x is written once.
    for_each_plane(p.n * p.c, p.n * p.c * in_plane, [&](int64_t q) {
      T* g = gx + q * in_plane;
      const T* go = gy + q * out_plane;
      const int64_t* iq = idx + q * out_plane;
      std::fill(g, g + in_plane, T(0));
      bool plane_ok = true;
      for (int64_t o = 0; o < out_plane; ++o) {
        const int64_t at = iq[o];
        if (static_cast<std::uint64_t>(at) >= static_cast<std::uint64_t>(in_plane)) {
          plane_ok = plane_ok && at == -1;
          continue;
        }
        g[at] += go[o];
      }
      if (!plane_ok) ok.store(false, std::memory_order_relaxed);
    });
    return ok.load();
  }
};

// ---------------------------------------------------------------------------------------------
// average pooling

template <class T>
struct AvgPool {
  using V = simd::Vec<T>;
  using reg = typename V::reg;
  static constexpr int W = V::width;

  static void scalar_columns(T* y, const T* x, const Pool2dParams& p, const AvgWindow& r, int64_t a, int64_t b) {
    for (int64_t ow = a; ow < b; ++ow) {
      const AvgWindow c = avg_window(ow, p.kw, p.sw, p.pw, p.w);
      T sum = 0;
      for (int64_t i = r.begin; i < r.end; ++i)
        for (int64_t j = c.begin; j < c.end; ++j) sum += x[i * p.w + j];
      y[ow] = sum / static_cast<T>(avg_divisor(p, r, c));
    }
  }

  static void plane(T* y, const T* x, const Pool2dParams& p, Interior in) {
    for (int64_t oh = 0; oh < p.oh; ++oh) {
      const AvgWindow r = avg_window(oh, p.kh, p.sh, p.ph, p.h);
      T* yr = y + oh * p.ow;
      if (in.hi - in.lo < W) {  // narrow rows: registers run along each window instead
        for (int64_t ow = 0; ow < p.ow; ++ow) {
          const AvgWindow c = avg_window(ow, p.kw, p.sw, p.pw, p.w);
          yr[ow] = window_sum(x, p.w, r.begin, r.end, c.begin, c.end) / static_cast<T>(avg_divisor(p, r, c));
        }
        continue;
      }
      scalar_columns(yr, x, p, r, 0, in.lo);
      // Interior windows hold kw columns each, so one divisor serves the whole row.
      const int64_t ws = in.lo * p.sw - p.pw;
      const reg divisor = V::set1(static_cast<T>(avg_divisor(p, r, AvgWindow{ws, ws + p.kw, p.kw})));
      column_blocks<W>(in.lo, in.hi, [&](int64_t o) {
        const T* corner = x + o * p.sw - p.pw;
        reg sum = V::zero();
        for (int64_t i = r.begin; i < r.end; ++i)
          for (int64_t j = 0; j < p.kw; ++j) sum = V::add(sum, V::load_strided(corner + i * p.w + j, p.sw));
        V::store(yr + o, V::div(sum, divisor));
      });
      scalar_columns(yr, x, p, r, in.hi, p.ow);
    }
  }

  static void forward(T* y, const T* x, const Pool2dParams& p) {
    const int64_t in_plane = p.h * p.w, out_plane = p.oh * p.ow;
    const AvgWindow r = avg_window(0, p.kh, p.sh, p.ph, p.h), c = avg_window(0, p.kw, p.sw, p.pw, p.w);
    if (out_plane == 1 && r.begin == 0 && r.end == p.h && c.begin == 0 && c.end == p.w)
      return global_forward(y, x, p.n * p.c, in_plane, static_cast<T>(avg_divisor(p, r, c)));
    const Interior in = interior_columns(p);
    if (in.hi - in.lo < W && in_plane <= kFlatPoolMaxPlane) {  // narrow rows: flat
      const FlatAvg& F = flat_avg<T>(p, false);
      const std::vector<T> divisor(F.divisor.begin(), F.divisor.end());
      for_each_plane(p.n * p.c, p.n * p.c * in_plane,
                     [&](int64_t q) { flat_avg_plane(y + q * out_plane, x + q * in_plane, F, divisor.data()); });
      return;
    }
    for_each_plane(p.n * p.c, p.n * p.c * in_plane,
                   [&](int64_t q) { plane(y + q * out_plane, x + q * in_plane, p, in); });
  }

  static void backward(T* gx, const T* gy, const Pool2dParams& p) {
    const int64_t in_plane = p.h * p.w, out_plane = p.oh * p.ow;
    const AvgWindow r = avg_window(0, p.kh, p.sh, p.ph, p.h), c = avg_window(0, p.kw, p.sw, p.pw, p.w);
    if (out_plane == 1 && r.begin == 0 && r.end == p.h && c.begin == 0 && c.end == p.w)
      return global_backward(gx, gy, p.n * p.c, in_plane, static_cast<T>(avg_divisor(p, r, c)));
    if (in_plane <= kFlatPoolMaxPlane) {  // flat: each input gathers gy / divisor of its windows
      const FlatAvg& F = flat_avg<T>(p, true);
      const std::vector<T> divisor(F.divisor.begin(), F.divisor.end());
      for_each_plane(p.n * p.c, p.n * p.c * in_plane, [&](int64_t q) {
        T* scaled = workspace_as<T>(kScaledSlot, out_plane);
        const T* go = gy + q * out_plane;
        for (int64_t o = 0; o < out_plane; ++o) scaled[o] = go[o] / divisor[o];
        flat_avg_plane(gx + q * in_plane, scaled, F, static_cast<const T*>(nullptr));
      });
      return;
    }
    for_each_plane(p.n * p.c, p.n * p.c * in_plane, [&](int64_t q) {
      T* g = gx + q * in_plane;
      const T* go = gy + q * out_plane;
      std::fill(g, g + in_plane, T(0));
      for (int64_t oh = 0; oh < p.oh; ++oh) {
        const AvgWindow r = avg_window(oh, p.kh, p.sh, p.ph, p.h);
        for (int64_t ow = 0; ow < p.ow; ++ow) {
          const AvgWindow c = avg_window(ow, p.kw, p.sw, p.pw, p.w);
          const T v = go[oh * p.ow + ow] / static_cast<T>(avg_divisor(p, r, c));
          window_add(g, p.w, r.begin, r.end, c.begin, c.end, v);
        }
      }
    });
  }

  static void adaptive_forward(T* y, const T* x, const AdaptivePool2dParams& p) {
    const int64_t in_plane = p.h * p.w, out_plane = p.oh * p.ow;
    if (out_plane == 1) return global_forward(y, x, p.n * p.c, in_plane, static_cast<T>(in_plane));
    for_each_plane(p.n * p.c, p.n * p.c * in_plane, [&](int64_t q) {
      const T* xq = x + q * in_plane;
      T* yq = y + q * out_plane;
      for (int64_t oh = 0; oh < p.oh; ++oh) {
        const AdaptiveWindow r = adaptive_window(oh, p.h, p.oh);
        for (int64_t ow = 0; ow < p.ow; ++ow) {
          const AdaptiveWindow c = adaptive_window(ow, p.w, p.ow);
          yq[oh * p.ow + ow] = window_sum(xq, p.w, r.begin, r.end, c.begin, c.end) /
                               static_cast<T>((r.end - r.begin) * (c.end - c.begin));
        }
      }
    });
  }

  static void adaptive_backward(T* gx, const T* gy, const AdaptivePool2dParams& p) {
    const int64_t in_plane = p.h * p.w, out_plane = p.oh * p.ow;
    if (out_plane == 1) return global_backward(gx, gy, p.n * p.c, in_plane, static_cast<T>(in_plane));
    for_each_plane(p.n * p.c, p.n * p.c * in_plane, [&](int64_t q) {
      T* g = gx + q * in_plane;
      const T* go = gy + q * out_plane;
      std::fill(g, g + in_plane, T(0));
      for (int64_t oh = 0; oh < p.oh; ++oh) {
        const AdaptiveWindow r = adaptive_window(oh, p.h, p.oh);
        for (int64_t ow = 0; ow < p.ow; ++ow) {
          const AdaptiveWindow c = adaptive_window(ow, p.w, p.ow);
          const T v = go[oh * p.ow + ow] / static_cast<T>((r.end - r.begin) * (c.end - c.begin));
          window_add(g, p.w, r.begin, r.end, c.begin, c.end, v);
        }
      }
    });
  }
};

}  // namespace

void max_pool2d_forward_f32(float* y, int64_t* i, const float* x, const Pool2dParams& p) {
  MaxPool<float>::forward(y, i, x, p);
}
void max_pool2d_forward_f64(double* y, int64_t* i, const double* x, const Pool2dParams& p) {
  MaxPool<double>::forward(y, i, x, p);
}
bool max_pool2d_backward_f32(float* gx, const float* gy, const int64_t* i, const Pool2dParams& p) {
  return MaxPool<float>::backward(gx, gy, i, p);
}
bool max_pool2d_backward_f64(double* gx, const double* gy, const int64_t* i, const Pool2dParams& p) {
  return MaxPool<double>::backward(gx, gy, i, p);
}
void avg_pool2d_forward_f32(float* y, const float* x, const Pool2dParams& p) { AvgPool<float>::forward(y, x, p); }
void avg_pool2d_forward_f64(double* y, const double* x, const Pool2dParams& p) { AvgPool<double>::forward(y, x, p); }
void avg_pool2d_backward_f32(float* gx, const float* gy, const Pool2dParams& p) {
  AvgPool<float>::backward(gx, gy, p);
}
void avg_pool2d_backward_f64(double* gx, const double* gy, const Pool2dParams& p) {
  AvgPool<double>::backward(gx, gy, p);
}
void adaptive_avg_pool2d_forward_f32(float* y, const float* x, const AdaptivePool2dParams& p) {
  AvgPool<float>::adaptive_forward(y, x, p);
}
void adaptive_avg_pool2d_forward_f64(double* y, const double* x, const AdaptivePool2dParams& p) {
  AvgPool<double>::adaptive_forward(y, x, p);
}
void adaptive_avg_pool2d_backward_f32(float* gx, const float* gy, const AdaptivePool2dParams& p) {
  AvgPool<float>::adaptive_backward(gx, gy, p);
}
void adaptive_avg_pool2d_backward_f64(double* gx, const double* gy, const AdaptivePool2dParams& p) {
  AvgPool<double>::adaptive_backward(gx, gy, p);
}

}  // namespace CNNX_ISA_NS
}  // namespace cnnx
