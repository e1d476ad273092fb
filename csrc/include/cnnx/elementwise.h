// Elementwise kernels over n values of dense arrays (any shape, flattened): ReLU forward and
// backward, same-shape addition (ResNet's residual add), tanh and sigmoid forward and backward.
// PyTorch's semantics; bit for bit except the tanh and sigmoid forwards (see below).
//
// Contract (every implementation: ref, generic, avx2, avx512):
//   relu_forward:  y[i] = x[i] < 0 ? 0 : x[i]. NaN stays NaN (the comparison is false) and -0.0 stays
//     -0.0, as torch.relu gives (its clamp_min keeps the sign of a zero input; numpy's
//     np.maximum(x, 0) gives +0.0 there). Forward saves y for backward: y > 0 wherever x > 0.
//   relu_backward: grad_x[i] = y[i] <= 0 ? 0 : grad_y[i], PyTorch's threshold_backward(grad_y, y, 0):
//     a NaN or infinite gradient where y <= 0 gives 0 (not NaN, as grad_y * (y > 0) would), and a
//     NaN y (from a NaN input) passes its gradient through.
//   add_forward:   y[i] = a[i] + b[i] (one IEEE addition per element).
//   tanh_backward:    grad_x[i] = grad_y[i] * (1 - y[i] * y[i]), evaluated as written: y*y, then
//     1 - that, then the product, three roundings and no fused multiply-add (the project compiles
//     with -ffp-contract=off and the vector code has no fmadd here), so it is bitwise numpy's
//     g * (1 - y * y).
//   sigmoid_backward: grad_x[i] = (grad_y[i] * y[i]) * (1 - y[i]), in that order: bitwise numpy's
//     g * y * (1 - y). (PyTorch groups it as g * (1 - y) * y: within an ulp or two of this.)
//   tanh_forward, sigmoid_forward: y[i] = tanh(x[i]), 1 / (1 + exp(-x[i])). The reference calls
//     std::tanh and std::exp (the stable form: 1/(1+exp(-x)) for x >= 0, exp(x)/(1+exp(x)) else);
//     the fast paths evaluate their own approximation, so they are NOT bitwise equal to the
//     reference. Their contract, tested over a dense sweep of every magnitude: float within 2 ulp
//     of the exact value rounded to float, double within 4 ulp (measured: tanh 1 ulp, sigmoid 2); odd
//     symmetry of tanh including tanh(-0.0) = -0.0; subnormal inputs of tanh returned unchanged;
//     results exactly +-1 (tanh), 0 or 1 (sigmoid) where the exact value rounds there, and +-inf
//     gives those limits; NaN in gives NaN out; sigmoid is never negative and never NaN for a
//     non-NaN input. Every lane is computed alone, so the fast results do not depend on the thread
//     count or on where a value sits in the array.
//   Outputs are overwritten. An output may be the same array as an input (same pointer: in place),
//   never a partial overlap. n may be 0 (nothing is read or written).
//   No value depends on another, so results (all but the tanh and sigmoid forwards) are bitwise
//   identical to the reference for every ISA and thread count; the fast versions only choose how
//   the range is split and vectorised.
#pragma once

#include <cstdint>

namespace cnnx {

// Dispatching entry points: run the implementation of the active ISA (see dispatch.h).
template <class T>
void relu_forward(T* y, const T* x, std::int64_t n);
template <class T>
void relu_backward(T* grad_x, const T* grad_y, const T* y, std::int64_t n);
template <class T>
void add_forward(T* y, const T* a, const T* b, std::int64_t n);
template <class T>
void tanh_forward(T* y, const T* x, std::int64_t n);
template <class T>
void tanh_backward(T* grad_x, const T* grad_y, const T* y, std::int64_t n);
template <class T>
void sigmoid_forward(T* y, const T* x, std::int64_t n);
template <class T>
void sigmoid_backward(T* grad_x, const T* grad_y, const T* y, std::int64_t n);

namespace ref {
// One plain loop each: the oracle and the CNNX_ISA=ref path.
template <class T>
void relu_forward(T* y, const T* x, std::int64_t n);
template <class T>
void relu_backward(T* grad_x, const T* grad_y, const T* y, std::int64_t n);
template <class T>
void add_forward(T* y, const T* a, const T* b, std::int64_t n);
template <class T>
void tanh_forward(T* y, const T* x, std::int64_t n);
template <class T>
void tanh_backward(T* grad_x, const T* grad_y, const T* y, std::int64_t n);
template <class T>
void sigmoid_forward(T* y, const T* x, std::int64_t n);
template <class T>
void sigmoid_backward(T* grad_x, const T* grad_y, const T* y, std::int64_t n);
}  // namespace ref

}  // namespace cnnx
