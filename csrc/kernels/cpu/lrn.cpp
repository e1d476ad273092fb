// Local response normalisation, compiled once per ISA. Contract: cnnx/lrn.h.
//
// One fused pass instead of PyTorch's chain of square / pad / pool / pow / divide ops: the work is
// cut into (image, spatial block) items; for each item the kernel walks the channels in order and
// computes every output of the block from the `size` input rows of its window, which stay in L1
// (a block row is at most 4 KiB). So each input row is read from memory once, each output row
// written once, and registers run along the spatial dimension, where rows are contiguous.
// Backward keeps q_c = grad_y_c * y_c / scale_c and scale_c^-beta for the last `size` channels in
// rings of block rows (per-thread workspace) and sums the window of q for each channel.
//
// Window sums are recomputed for every channel (size adds per element), in ascending channel
// order with separate multiply and add, exactly as the reference (scale equals it bit for bit): a
// sliding sum would be cheaper but lets rounding errors drift along the channels (and can turn a
// sum of squares negative). Outputs multiply by scale^-beta (see inverse_powers: AlexNet's and
// GoogLeNet's beta = 0.75 and beta = 0.5 use reciprocal square roots, beta = 1 one division,
// other exponents std::pow per lane), so they may differ from the reference's x / pow(s, beta)
// in the last few bits.
// Threads split items; every element's sums are those of the reference, whatever the thread count.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include "cnnx/lrn.h"
#include "cnnx/runtime.h"
#include "cpu/parallel.h"
#include "cpu/simd.h"

namespace cnnx {
namespace CNNX_ISA_NS {

namespace {

using std::int64_t;

constexpr int64_t kMinElementsPerThread = 16384;
constexpr int64_t kBlockBytes = 4096;

// Scalar lanes with Vec's interface, for the ends of blocks.
template <class T>
struct Scalar {
  using reg = T;
  using mask = bool;
  static constexpr int width = 1;
  static reg zero() { return T(0); }
  static reg set1(T v) { return v; }
  static reg load(const T* p) { return *p; }
  static void store(T* p, reg v) { *p = v; }
  static reg add(reg a, reg b) { return a + b; }
  static reg sub(reg a, reg b) { return a - b; }
  static reg mul(reg a, reg b) { return a * b; }
  static reg div(reg a, reg b) { return a / b; }
  static reg sqrt(reg a) { return std::sqrt(a); }
  static reg rsqrt(reg a) { return T(1) / std::sqrt(a); }
  static mask gt_or_nan(reg a, reg b) { return a > b || std::isnan(a); }
  static bool any(mask m) { return m; }
};

enum class Power { one, half, three_quarters, general };

Power power_of(double beta) {
  if (beta == 1.0) return Power::one;
  if (beta == 0.5) return Power::half;
  if (beta == 0.75) return Power::three_quarters;
  return Power::general;
}

// scale^-beta and 1/scale for the lanes of s. For beta 0.5 and 0.75 both come from the
// reciprocal square root t = s^-1/2 (s^-3/4 = t * (s t)^-1/2, 1/s = t^2): multiplies instead of
// the divider-bound sqrt and div. A register holding a scale that is not a finite positive
// normal number (0, inf, NaN, or a negative k) takes the exact division path, so those lanes
// follow the reference's IEEE results.
template <Power P, class L, class T>
static inline void inverse_powers(typename L::reg s, T beta, typename L::reg* inv_pow, typename L::reg* inv_s) {
  using reg = typename L::reg;
  const reg one = L::set1(T(1));
  if constexpr (P == Power::half || P == Power::three_quarters) {
    const bool ordinary = !L::any(L::gt_or_nan(L::set1(std::numeric_limits<T>::min()), s)) &&
                          !L::any(L::gt_or_nan(s, L::set1(std::numeric_limits<T>::max())));
    if (ordinary) {
      const reg t = L::rsqrt(s);
      *inv_pow = P == Power::half ? t : L::mul(t, L::rsqrt(L::mul(s, t)));
      *inv_s = L::mul(t, t);
      return;
    }
    const reg r = L::sqrt(s);
    *inv_pow = L::div(one, P == Power::half ? r : L::mul(r, L::sqrt(r)));
  } else if constexpr (P == Power::one) {
    *inv_pow = L::div(one, s);
  } else {
    alignas(64) T lanes[L::width];
    L::store(lanes, s);
    for (int i = 0; i < L::width; ++i) lanes[i] = T(1) / std::pow(lanes[i], beta);
    *inv_pow = L::load(lanes);
  }
  *inv_s = P == Power::one ? *inv_pow : L::div(one, s);
}

struct Geometry {
  int64_t c, hw, block, blocks;  // block: elements per spatial block; blocks per image
};

// Spatial blocks of at most kBlockBytes, and enough of them that every thread gets several items.
template <class T>
Geometry geometry(const LrnParams& p, int threads) {
  const int64_t hw = p.h * p.w, width = simd::Vec<T>::width;
  const int64_t max_block = kBlockBytes / static_cast<int64_t>(sizeof(T));
  int64_t blocks = std::max<int64_t>(1, (hw + max_block - 1) / max_block);
  const int64_t wanted = (4 * threads + p.n - 1) / std::max<int64_t>(p.n, 1);
  blocks = std::max(blocks, std::min(wanted, (hw + width - 1) / width));
  int64_t block = (hw + blocks - 1) / blocks;
  block = std::min(max_block, (block + width - 1) / width * width);
  return {p.c, hw, block, (hw + block - 1) / block};
}

template <class F>
void for_each_item(const LrnParams& p, const Geometry& g, int threads, F&& item) {
  parallel::region(threads, [&](int tid, int nt) {
    const parallel::Range r = parallel::split(p.n * g.blocks, tid, nt);
    for (int64_t i = r.begin; i < r.end; ++i) {
      const int64_t n = i / g.blocks, s0 = (i % g.blocks) * g.block;
      item(n, s0, std::min(g.block, g.hw - s0));
    }
  });
}

int threads_for(const LrnParams& p) {
  const int64_t elements = p.n * p.c * p.h * p.w;
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(get_num_threads(), elements / kMinElementsPerThread)));
}

template <class T, Power P>
struct Lrn {
  // Channel c of one item: positions [s, end) of the rows at x/y/scale (each the item's image,
  // offset to its block), `L` lanes at a time.
  template <class L>
  static void forward_span(T* y, T* scale, const T* x, const LrnParams& p, const Geometry& g, int64_t c,
                           int64_t s, int64_t end) {
    const int64_t lo = std::max<int64_t>(0, c - lrn_before(p.size));
    const int64_t hi = std::min<int64_t>(p.c - 1, c + lrn_after(p.size));
    const typename L::reg coef = L::set1(static_cast<T>(p.alpha / static_cast<double>(p.size)));
    const typename L::reg k = L::set1(static_cast<T>(p.k));
    const T beta = static_cast<T>(p.beta);
    for (; s + L::width <= end; s += L::width) {
      typename L::reg sum = L::zero();
      for (int64_t j = lo; j <= hi; ++j) {
        const typename L::reg v = L::load(x + j * g.hw + s);
        sum = L::add(sum, L::mul(v, v));
      }
      const typename L::reg sc = L::add(k, L::mul(coef, sum));
      typename L::reg inv_pow, inv_s;
      inverse_powers<P, L>(sc, beta, &inv_pow, &inv_s);
      L::store(scale + c * g.hw + s, sc);
      L::store(y + c * g.hw + s, L::mul(L::load(x + c * g.hw + s), inv_pow));
    }
  }

  static void forward(T* y, T* scale, const T* x, const LrnParams& p) {
    if (p.n * p.c * p.h * p.w == 0) return;
    const int threads = threads_for(p);
    const Geometry g = geometry<T>(p, threads);
    using V = simd::Vec<T>;
    for_each_item(p, g, threads, [&](int64_t n, int64_t s0, int64_t len) {
      const int64_t image = n * p.c * g.hw;
      const int64_t vec_end = s0 + len / V::width * V::width;
      for (int64_t c = 0; c < p.c; ++c) {
        forward_span<V>(y + image, scale + image, x + image, p, g, c, s0, vec_end);
        forward_span<Scalar<T>>(y + image, scale + image, x + image, p, g, c, vec_end, s0 + len);
      }
    });
  }

  // q_c = grad_y_c * y_c / scale_c over [s, end) into the ring row q (indexed from the block start
  // s0), and the factor scale_c^-beta of channel c's own gradient term into the row f.
  template <class L>
  static void q_span(T* q, T* f, const T* gy, const T* y, const T* scale, T beta, int64_t s0, int64_t s,
                     int64_t end) {
    for (; s + L::width <= end; s += L::width) {
      typename L::reg inv_pow, inv_s;
      inverse_powers<P, L>(L::load(scale + s), beta, &inv_pow, &inv_s);
      L::store(q + (s - s0), L::mul(L::mul(L::load(gy + s), L::load(y + s)), inv_s));
      L::store(f + (s - s0), inv_pow);
    }
  }

  // Channel j's gradient over [s, end): `window` are the ring rows of q for the channels whose
  // window holds j, in ascending channel order; f is j's row of scale^-beta.
  template <class L>
  static void backward_span(T* gx, const T* gy, const T* x, const T* const* window, int64_t count, const T* f,
                            const LrnParams& p, const Geometry& g, int64_t j, int64_t s0, int64_t s, int64_t end) {
    const typename L::reg coef = L::set1(static_cast<T>(2.0 * p.alpha * p.beta / static_cast<double>(p.size)));
    const int64_t row = j * g.hw;
    for (; s + L::width <= end; s += L::width) {
      typename L::reg sum = L::zero();
      for (int64_t c = 0; c < count; ++c) sum = L::add(sum, L::load(window[c] + (s - s0)));
      const typename L::reg first = L::mul(L::load(gy + row + s), L::load(f + (s - s0)));
      L::store(gx + row + s, L::sub(first, L::mul(L::mul(coef, L::load(x + row + s)), sum)));
    }
  }

  static void backward(T* gx, const T* gy, const T* x, const T* y, const T* scale, const LrnParams& p) {
    if (p.n * p.c * p.h * p.w == 0) return;
    const int threads = threads_for(p);
    const Geometry g = geometry<T>(p, threads);
    using V = simd::Vec<T>;
    const int64_t ring_rows = std::min(p.size, p.c);
    for_each_item(p, g, threads, [&](int64_t n, int64_t s0, int64_t len) {
      // Two rings of block rows: q_c, and channel c's own factor scale_c^-beta.
      T* ring = workspace_as<T>(0, 2 * ring_rows * g.block);
      T* f_ring = ring + ring_rows * g.block;
      const T** window = static_cast<const T**>(workspace(3, static_cast<std::size_t>(ring_rows) * sizeof(T*)));
      const T beta = static_cast<T>(p.beta);
      const int64_t image = n * p.c * g.hw;
      const int64_t vec_end = s0 + len / V::width * V::width;
      int64_t next = 0;  // first channel whose q is not in the ring yet
      for (int64_t j = 0; j < p.c; ++j) {
        for (const int64_t need = std::min<int64_t>(p.c - 1, j + lrn_before(p.size)); next <= need; ++next) {
          const int64_t row = image + next * g.hw;
          T* q = ring + (next % ring_rows) * g.block;
          T* f = f_ring + (next % ring_rows) * g.block;
          q_span<V>(q, f, gy + row, y + row, scale + row, beta, s0, s0, vec_end);
          q_span<Scalar<T>>(q, f, gy + row, y + row, scale + row, beta, s0, vec_end, s0 + len);
        }
        const int64_t lo = std::max<int64_t>(0, j - lrn_after(p.size));
        const int64_t hi = std::min<int64_t>(p.c - 1, j + lrn_before(p.size));
        for (int64_t c = lo; c <= hi; ++c) window[c - lo] = ring + (c % ring_rows) * g.block;
        const T* f = f_ring + (j % ring_rows) * g.block;
        backward_span<V>(gx + image, gy + image, x + image, window, hi - lo + 1, f, p, g, j, s0, s0, vec_end);
        backward_span<Scalar<T>>(gx + image, gy + image, x + image, window, hi - lo + 1, f, p, g, j, s0, vec_end,
                                 s0 + len);
      }
    });
  }
};

template <class T>
void forward(T* y, T* scale, const T* x, const LrnParams& p) {
  switch (power_of(p.beta)) {
    case Power::one: return Lrn<T, Power::one>::forward(y, scale, x, p);
    case Power::half: return Lrn<T, Power::half>::forward(y, scale, x, p);
    case Power::three_quarters: return Lrn<T, Power::three_quarters>::forward(y, scale, x, p);
    case Power::general: return Lrn<T, Power::general>::forward(y, scale, x, p);
  }
}

template <class T>
void backward(T* gx, const T* gy, const T* x, const T* y, const T* scale, const LrnParams& p) {
  switch (power_of(p.beta)) {
    case Power::one: return Lrn<T, Power::one>::backward(gx, gy, x, y, scale, p);
    case Power::half: return Lrn<T, Power::half>::backward(gx, gy, x, y, scale, p);
    case Power::three_quarters: return Lrn<T, Power::three_quarters>::backward(gx, gy, x, y, scale, p);
    case Power::general: return Lrn<T, Power::general>::backward(gx, gy, x, y, scale, p);
  }
}

}  // namespace

void lrn_forward_f32(float* y, float* s, const float* x, const LrnParams& p) { forward(y, s, x, p); }
void lrn_forward_f64(double* y, double* s, const double* x, const LrnParams& p) { forward(y, s, x, p); }
void lrn_backward_f32(float* gx, const float* gy, const float* x, const float* y, const float* s, const LrnParams& p) {
  backward(gx, gy, x, y, s, p);
}
void lrn_backward_f64(double* gx, const double* gy, const double* x, const double* y, const double* s,
                      const LrnParams& p) {
  backward(gx, gy, x, y, s, p);
}

}  // namespace CNNX_ISA_NS
}  // namespace cnnx
