// Elementwise kernels, compiled once per ISA. Contract: cnnx/elementwise.h.
//
// One pass over the values: full vectors (four per step, so several loads are in flight), then one
// masked vector for the last n % width values, so nothing outside the arrays is touched. Each
// output lane of relu, add and the tanh/sigmoid backwards is a compare-and-select or the
// reference's arithmetic on the same lanes of the inputs, so every ISA and thread count gives the
// reference's bits. The tanh and sigmoid forwards are the one exception: their own vector
// approximation (below), not the C library's, within the accuracy contract of elementwise.h; still
// one lane at a time, so any thread count gives the same bits.
//
// These kernels move memory and do almost no arithmetic: one thread runs near one core's bandwidth
// and a second pays off only when its share takes clearly longer than waking it (a few
// microseconds). Below kMinElementsPerThread values per thread the call stays on the caller.
// Threads take contiguous runs of kChunk values, so two threads never write into one cache line
// (the arrays come from the 4 KiB-aligned output allocator or numpy's 16-byte alignment: a shared
// line is then possible only at the chunk boundaries of a misaligned view, where it costs time,
// never correctness).
#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "cnnx/elementwise.h"
#include "cnnx/runtime.h"
#include "cpu/parallel.h"
#include "cpu/simd.h"

namespace cnnx {
namespace CNNX_ISA_NS {

namespace {

using std::int64_t;

// Measured on the 2-core box (float32, ReLU in place and add, back-to-back calls, 1 thread vs 2):
// at 32K values the second thread ties for ReLU (2.6 vs 2.7 us) and wins a little for add (5.2 vs
// 4.0 us); at 64K it wins for both (5.0 -> 3.9 us, 10.1 -> 6.8 us). Back-to-back calls find the
// worker spinning; one that has gone to sleep costs more to wake, hence the larger side: a
// thread per 32K values, i.e. two threads from 64K values on.
constexpr int64_t kMinElementsPerThread = int64_t(1) << 15;
constexpr int64_t kChunk = 4096;  // values per scheduling unit: a whole number of cache lines

// Runs body(begin, end) over [0, n), split across threads when n is large enough to pay for them.
template <class F>
void split_range(int64_t n, F&& body) {
  parallel::split_range(get_num_threads(), n, kMinElementsPerThread, kChunk, body);
}

// y[i] = op(x[i]) for i in [begin, end), in registers of V. y may be x (each step loads its lanes
// before it stores them).
template <class T, class Op>
static inline void map1(T* y, const T* x, int64_t begin, int64_t end, Op op) {
  using V = simd::Vec<T>;
  constexpr int W = V::width;
  int64_t i = begin;
  for (; i + 4 * W <= end; i += 4 * W) {
    const typename V::reg v0 = V::load(x + i), v1 = V::load(x + i + W);
    const typename V::reg v2 = V::load(x + i + 2 * W), v3 = V::load(x + i + 3 * W);
    V::store(y + i, op(v0));
    V::store(y + i + W, op(v1));
    V::store(y + i + 2 * W, op(v2));
    V::store(y + i + 3 * W, op(v3));
  }
  for (; i + W <= end; i += W) V::store(y + i, op(V::load(x + i)));
  if (i < end) {
    const int rest = static_cast<int>(end - i);
    V::store_partial(y + i, op(V::load_partial(x + i, rest)), rest);
  }
}

// y[i] = op(a[i], b[i]) for i in [begin, end); y may be a or b.
template <class T, class Op>
static inline void map2(T* y, const T* a, const T* b, int64_t begin, int64_t end, Op op) {
  using V = simd::Vec<T>;
  constexpr int W = V::width;
  int64_t i = begin;
  for (; i + 4 * W <= end; i += 4 * W) {
    const typename V::reg a0 = V::load(a + i), a1 = V::load(a + i + W);
    const typename V::reg a2 = V::load(a + i + 2 * W), a3 = V::load(a + i + 3 * W);
    const typename V::reg b0 = V::load(b + i), b1 = V::load(b + i + W);
    const typename V::reg b2 = V::load(b + i + 2 * W), b3 = V::load(b + i + 3 * W);
    V::store(y + i, op(a0, b0));
    V::store(y + i + W, op(a1, b1));
    V::store(y + i + 2 * W, op(a2, b2));
    V::store(y + i + 3 * W, op(a3, b3));
  }
  for (; i + W <= end; i += W) V::store(y + i, op(V::load(a + i), V::load(b + i)));
  if (i < end) {
    const int rest = static_cast<int>(end - i);
    V::store_partial(y + i, op(V::load_partial(a + i, rest), V::load_partial(b + i, rest)), rest);
  }
}

template <class T>
void relu_fwd(T* y, const T* x, int64_t n) {
  using V = simd::Vec<T>;
  const typename V::reg zero = V::zero();
  // Zero where 0 > x, else x: the reference's x < 0 ? 0 : x. NaN fails the comparison and is kept;
  // so is -0.0. (A max instruction would not do: _mm512_max_ps(x, 0) returns its second operand,
  // 0, when x is NaN, and max(-0.0, 0) is either zero depending on the operand order.)
  split_range(n, [&](int64_t begin, int64_t end) {
    map1(y, x, begin, end, [zero](typename V::reg v) { return V::select(V::gt_or_nan(zero, v), zero, v); });
  });
}

template <class T>
void relu_bwd(T* gx, const T* gy, const T* y, int64_t n) {
  using V = simd::Vec<T>;
  const typename V::reg zero = V::zero();
  // grad where y > 0 or y is NaN, else 0: the reference's y <= 0 ? 0 : grad. Selecting (not
  // multiplying by a 0/1 mask) keeps an infinite or NaN gradient out of the y <= 0 lanes.
  split_range(n, [&](int64_t begin, int64_t end) {
    map2(gx, gy, y, begin, end,
         [zero](typename V::reg g, typename V::reg v) { return V::select(V::gt_or_nan(v, zero), g, zero); });
  });
}

template <class T>
void add(T* y, const T* a, const T* b, int64_t n) {
  using V = simd::Vec<T>;
  split_range(n, [&](int64_t begin, int64_t end) {
    map2(y, a, b, begin, end, [](typename V::reg u, typename V::reg v) { return V::add(u, v); });
  });
}

// ---------------------------------------------------------------------------------------------
// tanh and sigmoid: vector exp by range reduction and a polynomial, tanh from it.
//
// exp(t) = 2^n * exp(r) with n = round(t / ln2) and r = t - n*ln2 in about [-ln2/2, ln2/2]. ln2 is
// split in two (Cody-Waite): ln2_hi keeps few enough bits that n*ln2_hi is exact for every n used
// here (|n| <= 152 for float, 1076 for double), and t - n*ln2_hi is exact too (both are multiples of
// t's ulp and the difference is below 1/2), so r carries only the rounding of n*ln2_lo. On r,
// exp(r) = 1 + r*(1 + r*Q(r)) with Q a polynomial fitted to (exp(r) - 1 - r)/r^2 (Chebyshev
// interpolation, degree 4 for float, 9 for double; the fit errs by ~1e-7 resp. ~2e-16 relative to
// Q, and Q*r^2 is at most 6% of exp(r)). 2^n is built in the exponent field (simd pow2i).
//
// tanh(x) = sign(x) * tanh(a), a = |x|:
//   a < 0.625:  a + a^3 * P(a^2), P fitted to (tanh(a) - a)/a^3 on [0, 0.625^2] (degree 5 for
//               float, 11 for double; P errs by ~5e-9 resp. ~1e-17). The a^3 term is at most 13%
//               of the result, so the result carries about one rounding. Subnormal a: a^3 underflows
//               to 0 and a comes back unchanged.
//   a >= 0.625: 1 - 2/(1 + exp(2a)), the subtracted term at most 0.445 (so its few ulp of error
//               are at most ~1.5 ulp of the result, which is >= 0.555). a is clamped to 10 (float)
//               or 20 (double), where 2/(1+exp(2a)) is below half an ulp of 1 and the result is
//               exactly 1: +-inf gives +-1.
// Both branches are computed for every lane and one is selected; the sign is put back bitwise (so
// tanh(-0.0) = -0.0) and NaN lanes return the input.
//
// sigmoid(x): e = exp(-|x|) in (0, 1], never overflowing; x >= 0 gives 1/(1 + e), x < 0 gives
// e/(1 + e) = exp(x)/(1 + exp(x)), one division either way (a division rather than numpy's e * r
// saves a rounding: the float error bound goes from 3 ulp to 2). |x| is clamped to 104 (float) or
// 746 (double), beyond which exp(-|x|) rounds to 0. Results below the smallest normal number are
// produced by scaling in two steps, 2^n1 * 2^n2 with n1 + n2 = n, each a normal power of two, so
// the subnormal result is rounded once (and an underflowing one becomes 0, as exp's would).

template <class T>
struct ExpTanhConsts;

template <>
struct ExpTanhConsts<float> {
  static constexpr float log2e = 1.44269504f;
  static constexpr float ln2_hi = 0.693145751953125f;  // 16 significant bits
  static constexpr float ln2_lo = 1.42860677e-6f;
  static constexpr float exp_q[] = {0.0013926175888627768f, 0.008363173343241215f, 0.041666556149721146f,
                                    0.16666577756404877f, 0.5f};  // highest degree first
  static constexpr float tanh_small = 0.625f;
  static constexpr float tanh_clamp = 10.0f;
  static constexpr float tanh_p[] = {0.002292744815349579f, -0.008343945257365704f, 0.02176891826093197f,
                                     -0.053959257900714874f, 0.13333304226398468f, -0.3333333432674408f};
  static constexpr float sigmoid_clamp = 104.0f;
};

template <>
struct ExpTanhConsts<double> {
  static constexpr double log2e = 1.4426950408889634;
  static constexpr double ln2_hi = 0.6931471803691238;  // 32 significant bits
  static constexpr double ln2_lo = 1.9082149292705877e-10;
  static constexpr double exp_q[] = {2.5100375832561234e-08, 2.7620075879983367e-07, 2.7557268480310024e-06,
                                     2.4801521322368692e-05, 0.00019841269863040545, 0.0013888888917196719,
                                     0.008333333333330065,   0.041666666666624164,   0.16666666666666669,
                                     0.5000000000000001};
  static constexpr double tanh_small = 0.625;
  static constexpr double tanh_clamp = 20.0;
  static constexpr double tanh_p[] = {6.485163482793113e-06,  -3.12011014257974e-05,   9.257116129556769e-05,
                                      -0.0002375906496055562, 0.0005896606577757043,  -0.0014557754120478055,
                                      0.0035921217511549622,  -0.008863235103240878,  0.021869488519008305,
                                      -0.05396825396789699,   0.13333333333333042,    -0.3333333333333333};
  static constexpr double sigmoid_clamp = 746.0;
};

// c[0]*x^(N-1) + ... + c[N-1], by Horner's rule.
template <class T, std::size_t N>
static CNNX_INLINE typename simd::Vec<T>::reg horner(typename simd::Vec<T>::reg x, const T (&c)[N]) {
  using V = simd::Vec<T>;
  typename V::reg p = V::set1(c[0]);
  for (std::size_t k = 1; k < N; ++k) p = V::fmadd(p, x, V::set1(c[k]));
  return p;
}

// exp(t) = exp(r) * 2^n: returns exp(r) and sets n (a whole number). t finite, |t| <= 746.
template <class T>
static CNNX_INLINE typename simd::Vec<T>::reg exp_reduced(typename simd::Vec<T>::reg t, typename simd::Vec<T>::reg& n) {
  using V = simd::Vec<T>;
  using C = ExpTanhConsts<T>;
  n = V::round(V::mul(t, V::set1(C::log2e)));
  typename V::reg r = V::fmadd(n, V::set1(-C::ln2_hi), t);  // exact
  r = V::fmadd(n, V::set1(-C::ln2_lo), r);
  const typename V::reg one = V::set1(T(1));
  return V::fmadd(r, V::fmadd(r, horner<T>(r, C::exp_q), one), one);
}

template <class T>
static CNNX_INLINE typename simd::Vec<T>::reg tanh_vec(typename simd::Vec<T>::reg x) {
  using V = simd::Vec<T>;
  using C = ExpTanhConsts<T>;
  const typename V::reg one = V::set1(T(1));
  typename V::reg a = V::abs(x);
  const typename V::mask small = V::lt(a, V::set1(C::tanh_small));
  a = V::select(V::lt(a, V::set1(C::tanh_clamp)), a, V::set1(C::tanh_clamp));  // NaN -> clamp (fixed below)
  const typename V::reg s = V::mul(a, a);
  const typename V::reg poly = V::fmadd(V::mul(a, s), horner<T>(s, C::tanh_p), a);
  typename V::reg n;
  const typename V::reg p = exp_reduced<T>(V::add(a, a), n);  // (sets n: a statement of its own)
  const typename V::reg e = V::mul(p, V::pow2i(n));             // n <= 58
  const typename V::reg big = V::sub(one, V::div(V::set1(T(2)), V::add(one, e)));
  const typename V::reg t = V::copysign(V::select(small, poly, big), x);
  return V::select(V::is_nan(x), x, t);
}

template <class T>
static CNNX_INLINE typename simd::Vec<T>::reg sigmoid_vec(typename simd::Vec<T>::reg x) {
  using V = simd::Vec<T>;
  using C = ExpTanhConsts<T>;
  const typename V::reg one = V::set1(T(1));
  typename V::reg a = V::abs(x);
  a = V::select(V::lt(a, V::set1(C::sigmoid_clamp)), a, V::set1(C::sigmoid_clamp));  // NaN -> clamp
  typename V::reg n;
  const typename V::reg p = exp_reduced<T>(V::sub(V::zero(), a), n);
  const typename V::reg n1 = V::round(V::mul(n, V::set1(T(0.5))));
  const typename V::reg e = V::mul(V::mul(p, V::pow2i(n1)), V::pow2i(V::sub(n, n1)));
  // One division: 1/(1 + e) for x >= 0 (and -0.0), e/(1 + e) for x < 0.
  const typename V::reg y = V::div(V::select(V::lt(x, V::zero()), e, one), V::add(one, e));
  return V::select(V::is_nan(x), x, y);
}

template <class T>
void tanh_fwd(T* y, const T* x, int64_t n) {
  using V = simd::Vec<T>;
  split_range(n, [&](int64_t begin, int64_t end) {
    map1(y, x, begin, end, [](typename V::reg v) { return tanh_vec<T>(v); });
  });
}

template <class T>
void sigmoid_fwd(T* y, const T* x, int64_t n) {
  using V = simd::Vec<T>;
  split_range(n, [&](int64_t begin, int64_t end) {
    map1(y, x, begin, end, [](typename V::reg v) { return sigmoid_vec<T>(v); });
  });
}

// The backward expressions as the reference writes them: separate multiplies and subtractions
// (no fmadd), hence the reference's (and numpy's) bits.
template <class T>
void tanh_bwd(T* gx, const T* gy, const T* y, int64_t n) {
  using V = simd::Vec<T>;
  const typename V::reg one = V::set1(T(1));
  split_range(n, [&](int64_t begin, int64_t end) {
    map2(gx, gy, y, begin, end,
         [one](typename V::reg g, typename V::reg v) { return V::mul(g, V::sub(one, V::mul(v, v))); });
  });
}

template <class T>
void sigmoid_bwd(T* gx, const T* gy, const T* y, int64_t n) {
  using V = simd::Vec<T>;
  const typename V::reg one = V::set1(T(1));
  split_range(n, [&](int64_t begin, int64_t end) {
    map2(gx, gy, y, begin, end,
         [one](typename V::reg g, typename V::reg v) { return V::mul(V::mul(g, v), V::sub(one, v)); });
  });
}

}  // namespace

void relu_forward_f32(float* y, const float* x, int64_t n) { relu_fwd(y, x, n); }
void relu_forward_f64(double* y, const double* x, int64_t n) { relu_fwd(y, x, n); }
void relu_backward_f32(float* gx, const float* gy, const float* y, int64_t n) { relu_bwd(gx, gy, y, n); }
void relu_backward_f64(double* gx, const double* gy, const double* y, int64_t n) { relu_bwd(gx, gy, y, n); }
void add_forward_f32(float* y, const float* a, const float* b, int64_t n) { add(y, a, b, n); }
void add_forward_f64(double* y, const double* a, const double* b, int64_t n) { add(y, a, b, n); }
void tanh_forward_f32(float* y, const float* x, int64_t n) { tanh_fwd(y, x, n); }
void tanh_forward_f64(double* y, const double* x, int64_t n) { tanh_fwd(y, x, n); }
void tanh_backward_f32(float* gx, const float* gy, const float* y, int64_t n) { tanh_bwd(gx, gy, y, n); }
void tanh_backward_f64(double* gx, const double* gy, const double* y, int64_t n) { tanh_bwd(gx, gy, y, n); }
void sigmoid_forward_f32(float* y, const float* x, int64_t n) { sigmoid_fwd(y, x, n); }
void sigmoid_forward_f64(double* y, const double* x, int64_t n) { sigmoid_fwd(y, x, n); }
void sigmoid_backward_f32(float* gx, const float* gy, const float* y, int64_t n) { sigmoid_bwd(gx, gy, y, n); }
void sigmoid_backward_f64(double* gx, const double* gy, const double* y, int64_t n) { sigmoid_bwd(gx, gy, y, n); }

}  // namespace CNNX_ISA_NS
}  // namespace cnnx
