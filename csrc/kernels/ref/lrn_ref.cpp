// Reference LRN: the definitions of cnnx/lrn.h computed one element at a time, each window sum
// freshly in ascending channel order. The oracle for the fast paths and the CNNX_ISA=ref fallback.
#include <algorithm>
#include <cmath>

#include "cnnx/lrn.h"

namespace cnnx {
namespace ref {

using std::int64_t;

template <class T>
void lrn_forward(T* y, T* scale, const T* x, const LrnParams& p) {
  const int64_t hw = p.h * p.w;
  const T coef = static_cast<T>(p.alpha / static_cast<double>(p.size));
  const T k = static_cast<T>(p.k), beta = static_cast<T>(p.beta);
  for (int64_t n = 0; n < p.n; ++n) {
    const int64_t base = n * p.c * hw;
    for (int64_t c = 0; c < p.c; ++c) {
      const int64_t lo = std::max<int64_t>(0, c - lrn_before(p.size));
      const int64_t hi = std::min<int64_t>(p.c - 1, c + lrn_after(p.size));
      for (int64_t s = 0; s < hw; ++s) {
        T sum = 0;
        for (int64_t j = lo; j <= hi; ++j) {
          const T v = x[base + j * hw + s];
          sum += v * v;
        }
        const int64_t at = base + c * hw + s;
        const T sc = k + coef * sum;
        scale[at] = sc;
        y[at] = x[at] / std::pow(sc, beta);
      }
    }
  }
}

template <class T>
void lrn_backward(T* grad_x, const T* grad_y, const T* x, const T* y, const T* scale, const LrnParams& p) {
  const int64_t hw = p.h * p.w;
  const T coef = static_cast<T>(2.0 * p.alpha * p.beta / static_cast<double>(p.size));
  const T beta = static_cast<T>(p.beta);
  for (int64_t n = 0; n < p.n; ++n) {
    const int64_t base = n * p.c * hw;
    for (int64_t j = 0; j < p.c; ++j) {
      // The channels whose window holds j.
      const int64_t lo = std::max<int64_t>(0, j - lrn_after(p.size));
      const int64_t hi = std::min<int64_t>(p.c - 1, j + lrn_before(p.size));
      for (int64_t s = 0; s < hw; ++s) {
        T sum = 0;
        for (int64_t c = lo; c <= hi; ++c) {
          const int64_t at = base + c * hw + s;
          sum += grad_y[at] * y[at] / scale[at];
        }
        const int64_t at = base + j * hw + s;
        grad_x[at] = grad_y[at] / std::pow(scale[at], beta) - coef * x[at] * sum;
      }
    }
  }
}

template void lrn_forward<float>(float*, float*, const float*, const LrnParams&);
template void lrn_forward<double>(double*, double*, const double*, const LrnParams&);
template void lrn_backward<float>(float*, const float*, const float*, const float*, const float*, const LrnParams&);
template void lrn_backward<double>(double*, const double*, const double*, const double*, const double*,
                                   const LrnParams&);

}  // namespace ref
}  // namespace cnnx
