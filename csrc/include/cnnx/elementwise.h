// Elementwise kernels over n values of dense arrays (any shape, flattened): ReLU forward and
// backward, same-shape addition (ResNet's residual add). PyTorch's semantics, bit for bit.
//
// Contract (every implementation: ref, generic, avx2, avx512):
//   relu_forward:  y[i] = x[i] < 0 ? 0 : x[i]. NaN stays NaN (the comparison is false) and -0.0 stays
//     -0.0, as torch.relu gives (its clamp_min keeps the sign of a zero input; numpy's
//     np.maximum(x, 0) gives +0.0 there). Forward saves y for backward: y > 0 wherever x > 0.
//   relu_backward: grad_x[i] = y[i] <= 0 ? 0 : grad_y[i], PyTorch's threshold_backward(grad_y, y, 0):
//     a NaN or infinite gradient where y <= 0 gives 0 (not NaN, as grad_y * (y > 0) would), and a
//     NaN y (from a NaN input) passes its gradient through.
//   add_forward:   y[i] = a[i] + b[i] (one IEEE addition per element).
//   Outputs are overwritten. An output may be the same array as an input (same pointer: in place),
//   never a partial overlap. n may be 0 (nothing is read or written).
//   No value depends on another, so results are bitwise identical to the reference for every ISA
//   and thread count; the fast versions only choose how the range is split and vectorised.
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

namespace ref {
// One plain loop each: the oracle and the CNNX_ISA=ref path.
template <class T>
void relu_forward(T* y, const T* x, std::int64_t n);
template <class T>
void relu_backward(T* grad_x, const T* grad_y, const T* y, std::int64_t n);
template <class T>
void add_forward(T* y, const T* a, const T* b, std::int64_t n);
}  // namespace ref

}  // namespace cnnx
