// Reference elementwise kernels: the definitions of cnnx/elementwise.h as plain loops, the oracle
// for the fast paths and the CNNX_ISA=ref fallback. Written as comparisons, not std::max, so the
// NaN and -0.0 cases read off the contract directly. tanh and sigmoid call the C library.
#include "cnnx/elementwise.h"

#include <cmath>

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

template <class T>
void tanh_forward(T* y, const T* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = std::tanh(x[i]);
}

template <class T>
void tanh_backward(T* grad_x, const T* grad_y, const T* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const T d = T(1) - y[i] * y[i];  // two roundings, then the product's: numpy's g * (1 - y * y)
    grad_x[i] = grad_y[i] * d;
  }
}

// exp of a non-positive number only, so nothing overflows: for x < 0, exp(x)/(1+exp(x)).
template <class T>
void sigmoid_forward(T* y, const T* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const T v = x[i];
    if (v >= T(0)) {
      y[i] = T(1) / (T(1) + std::exp(-v));
    } else {
      const T e = std::exp(v);  // also the NaN case (the comparison is false): NaN out
      y[i] = e / (T(1) + e);
    }
  }
}

template <class T>
void sigmoid_backward(T* grad_x, const T* grad_y, const T* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const T gy = grad_y[i] * y[i];
    grad_x[i] = gy * (T(1) - y[i]);
  }
}

template void relu_forward<float>(float*, const float*, int64_t);
template void relu_forward<double>(double*, const double*, int64_t);
template void relu_backward<float>(float*, const float*, const float*, int64_t);
template void relu_backward<double>(double*, const double*, const double*, int64_t);
template void add_forward<float>(float*, const float*, const float*, int64_t);
template void add_forward<double>(double*, const double*, const double*, int64_t);
template void tanh_forward<float>(float*, const float*, int64_t);
template void tanh_forward<double>(double*, const double*, int64_t);
template void tanh_backward<float>(float*, const float*, const float*, int64_t);
template void tanh_backward<double>(double*, const double*, const double*, int64_t);
template void sigmoid_forward<float>(float*, const float*, int64_t);
template void sigmoid_forward<double>(double*, const double*, int64_t);
template void sigmoid_backward<float>(float*, const float*, const float*, int64_t);
template void sigmoid_backward<double>(double*, const double*, const double*, int64_t);

}  // namespace ref
}  // namespace cnnx
