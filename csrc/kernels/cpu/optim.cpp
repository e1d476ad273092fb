// Optimizer steps, compiled once per ISA. Contract: cnnx/optim.h.
//
// One pass over the parameter: each vector of elements is loaded from the parameter, the gradient
// and the state, carried through the whole update in registers, and stored back, where the numpy
// code (cnnx/optim) makes one pass over memory (or over an L2-sized block) per operation. The lane
// arithmetic is the reference's, operation for operation (mul, add, sub, div, sqrt; never fmadd),
// so every ISA gives the reference's bits; the last n % width elements go through one masked
// vector, so nothing outside the arrays is touched.
//
// These steps move 3 to 5 streams of memory per element and do little arithmetic: as for the
// elementwise family, a second thread pays off once its share clearly outlasts waking it. Threads
// take contiguous runs of kChunk elements (whole cache lines at the 4 KiB / 16-byte alignments the
// arrays have), and no element depends on another, so the thread count never changes a result.
#include <algorithm>
#include <cstdint>

#include "cnnx/optim.h"
#include "cnnx/runtime.h"
#include "cpu/parallel.h"
#include "cpu/simd.h"

namespace cnnx {
namespace CNNX_ISA_NS {

namespace {

using std::int64_t;

// The elementwise family's measured cut-off (elementwise.cpp): a thread per 32K elements. An
// optimizer step streams more arrays per element than ReLU or add, so the same count is, if
// anything, on the cautious side.
constexpr int64_t kMinElementsPerThread = int64_t(1) << 15;
constexpr int64_t kChunk = 4096;

// Runs body(begin, end) over [0, n), split across threads when n is large enough to pay for them.
template <class F>
void split_range(int64_t n, F&& body) {
  parallel::split_range(get_num_threads(), n, kMinElementsPerThread, kChunk, body);
}

// f(i, k) for consecutive runs of k lanes covering [begin, end): k = width except for the last run.
template <class T, class F>
static CNNX_INLINE void for_vectors(int64_t begin, int64_t end, F&& f) {
  constexpr int W = simd::Vec<T>::width;
  int64_t i = begin;
  for (; i + W <= end; i += W) f(i, W);
  if (i < end) f(i, static_cast<int>(end - i));
}

// k lanes at p: a full vector, or a masked one reading / writing nothing past p[k-1].
template <class T>
static CNNX_INLINE typename simd::Vec<T>::reg load(const T* p, int k) {
  using V = simd::Vec<T>;
  return k == V::width ? V::load(p) : V::load_partial(p, k);
}
template <class T>
static CNNX_INLINE void store(T* p, typename simd::Vec<T>::reg v, int k) {
  using V = simd::Vec<T>;
  if (k == V::width)
    V::store(p, v);
  else
    V::store_partial(p, v, k);
}

template <class T>
void sgd(T* param, const T* grad, T* buf, int64_t n, const SgdParams& s) {
  using V = simd::Vec<T>;
  using R = typename V::reg;
  const R lr = V::set1(T(s.lr)), wd = V::set1(T(s.weight_decay)), mom = V::set1(T(s.momentum));
  const R keep = V::set1(T(1.0 - s.dampening));
  const bool decay = s.weight_decay != 0, momentum = s.momentum != 0, damp = s.dampening != 0;
  const bool maximize = s.maximize, first = s.first_step, nesterov = s.nesterov;
  split_range(n, [&](int64_t begin, int64_t end) {
    for_vectors<T>(begin, end, [&](int64_t i, int k) {
      const R p = load(param + i, k);
      R g = load(grad + i, k);
      if (maximize) g = V::neg(g);
      if (decay) g = V::add(V::mul(p, wd), g);
      if (momentum) {
        R b = g;
        if (!first) {
          b = V::mul(load(buf + i, k), mom);
          b = V::add(b, damp ? V::mul(g, keep) : g);
        }
        store(buf + i, b, k);
        g = nesterov ? V::add(V::mul(b, mom), g) : b;
      }
      store(param + i, V::sub(p, V::mul(g, lr)), k);
    });
  });
}

template <class T>
void adam(T* param, const T* grad, T* exp_avg, T* exp_avg_sq, T* vmax, int64_t n, const AdamParams& a) {
  using V = simd::Vec<T>;
  using R = typename V::reg;
  const R wd = V::set1(T(a.weight_decay)), decay = V::set1(T(1.0 - a.lr * a.weight_decay));
  const R c1 = V::set1(T(1.0 - a.beta1)), beta2 = V::set1(T(a.beta2)), c2 = V::set1(T(1.0 - a.beta2));
  const R bc2 = V::set1(T(a.bias_correction2_sqrt)), eps = V::set1(T(a.eps)), neg_step = V::set1(T(-a.step_size));
  const bool has_decay = a.weight_decay != 0, decoupled = a.decoupled, maximize = a.maximize;
  const bool amsgrad = a.amsgrad;
  split_range(n, [&](int64_t begin, int64_t end) {
    for_vectors<T>(begin, end, [&](int64_t i, int k) {
      R p = load(param + i, k);
      R g = load(grad + i, k);
      if (maximize) g = V::neg(g);
      if (has_decay) {
        if (decoupled)
          p = V::mul(p, decay);
        else
          g = maximize ? V::add(g, V::mul(p, wd)) : V::add(V::mul(p, wd), g);
      }
      R m = load(exp_avg + i, k);
      m = V::add(m, V::mul(V::sub(g, m), c1));
      R v = V::mul(load(exp_avg_sq + i, k), beta2);
      v = V::add(v, V::mul(V::mul(g, g), c2));
      store(exp_avg + i, m, k);
      store(exp_avg_sq + i, v, k);
      if (amsgrad) {
        // np.maximum(vmax, v): vmax where it is NaN; else v where v > vmax or v is NaN; else vmax.
        const R old = load(vmax + i, k);
        v = V::select(V::is_nan(old), old, V::select(V::gt_or_nan(v, old), v, old));
        store(vmax + i, v, k);
      }
      R d = V::add(V::div(V::sqrt(v), bc2), eps);
      d = V::div(m, d);
      store(param + i, V::add(p, V::mul(d, neg_step)), k);
    });
  });
}

}  // namespace

void sgd_step_f32(float* param, const float* grad, float* buf, int64_t n, const SgdParams& s) {
  sgd(param, grad, buf, n, s);
}
void sgd_step_f64(double* param, const double* grad, double* buf, int64_t n, const SgdParams& s) {
  sgd(param, grad, buf, n, s);
}
void adam_step_f32(float* param, const float* grad, float* m, float* v, float* vmax, int64_t n, const AdamParams& a) {
  adam(param, grad, m, v, vmax, n, a);
}
void adam_step_f64(double* param, const double* grad, double* m, double* v, double* vmax, int64_t n,
                   const AdamParams& a) {
  adam(param, grad, m, v, vmax, n, a);
}

}  // namespace CNNX_ISA_NS
}  // namespace cnnx
