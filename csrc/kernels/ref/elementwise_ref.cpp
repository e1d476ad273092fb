// Reference elementwise kernels: the definitions of cnnx/elementwise.h as plain loops, the oracle
// for the fast paths and the CNNX_ISA=ref fallback. Written as comparisons, not std::max, so the
// NaN and -0.0 cases read off the contract directly.
#include "cnnx/elementwise.h"

namespace cnnx {
namespace ref {

using std::int64_t;

template <class T>
void relu_forward(T* y, const T* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] < T(0) ? T(0) : x[i];
}

template <class T>
void relu_backward(T* grad_x, const T* grad_y, const T* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) grad_x[i] = y[i] <= T(0) ? T(0) : grad_y[i];
}

template <class T>
void add_forward(T* y, const T* a, const T* b, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = a[i] + b[i];
}

template void relu_forward<float>(float*, const float*, int64_t);
template void relu_forward<double>(double*, const double*, int64_t);
template void relu_backward<float>(float*, const float*, const float*, int64_t);
template void relu_backward<double>(double*, const double*, const double*, int64_t);
template void add_forward<float>(float*, const float*, const float*, int64_t);
template void add_forward<double>(double*, const double*, const double*, int64_t);

}  // namespace ref
}  // namespace cnnx
