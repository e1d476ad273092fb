// Optimizer steps: one fused pass over a parameter, its gradient and its optimizer state, updating
// the parameter and the state in place. The numpy code in cnnx/optim/sgd.py and adam.py is the
// specification: every kernel performs, per element, the same IEEE operations in the same order, so
// the results are bitwise those of that code (for float and double alike).
//
// Scalars. numpy combines a float32 array with a Python float by first rounding the float to
// float32 (NEP 50: a Python float is a "weak" scalar) and then computing in float32. The params
// below are therefore doubles holding exactly the Python floats the numpy code uses (derived ones
// such as 1 - dampening or lr / (1 - beta1^t) computed in double by the caller, as Python does), and
// each kernel rounds them once to T and applies them in T. Where the numpy code tests a
// hyper-parameter for truth (`if weight_decay:`), the kernel tests it for != 0.
//
// sgd_step (SGD._step), for each i, with g = grad[i], p = param[i], b = momentum_buffer[i]:
//   g = -g                                   if maximize (a sign flip, as np.negative)
//   g = p * T(weight_decay) + g              if weight_decay != 0
//   if momentum != 0:
//     b = g                                  on the first step (first_step)
//     b = b * T(momentum) + g * T(1 - dampening)   afterwards, if dampening != 0
//     b = b * T(momentum) + g                      afterwards, if dampening == 0
//     g = b * T(momentum) + g  if nesterov  else  b
//   p = p - g * T(lr)
// Every product and sum is rounded on its own (no fused multiply-add: -ffp-contract=off, and the
// vector code calls none). momentum_buffer may be null when momentum == 0 (it is not touched).
//
// adam_step (Adam._step / AdamW._step), with m = exp_avg[i], v = exp_avg_sq[i], vmax = max_exp_avg_sq[i]:
//   g = -g                                   if maximize
//   if weight_decay != 0:
//     p = p * T(1 - lr * weight_decay)       decoupled (AdamW)
//     g = p * T(weight_decay) + g            otherwise (with maximize: g + p * T(weight_decay))
//   m = m + (g - m) * T(1 - beta1)
//   v = v * T(beta2) + (g * g) * T(1 - beta2)
//   vmax = max(vmax, v), NaN-propagating as np.maximum; the update then reads vmax  (amsgrad)
//   p = p + (m / (sqrt(vhat) / T(bias_correction2_sqrt) + T(eps))) * T(-step_size)
// sqrt and the divisions are the correctly rounded IEEE operations. max_exp_avg_sq is null unless
// amsgrad. step_size = lr / (1 - beta1^t) and bias_correction2_sqrt = sqrt(1 - beta2^t) come from
// the caller (Python's ** is the C library's pow; the kernels do not re-derive them).
//
// All arrays have n elements, dense; n may be 0 (nothing is read or written). They must not overlap
// one another (each element is read before it is written, but the numpy code's order of in-place
// passes over a shared array is not reproduced). NaN results are NaN wherever numpy's are; their
// payload and sign follow the same operand order but are not part of the tested contract.
// No element depends on another, so every ISA and thread count gives the reference's bits.
#pragma once

#include <cstdint>

namespace cnnx {

struct SgdParams {
  double lr = 0;
  double momentum = 0;      // 0: no momentum buffer
  double dampening = 0;     // applied as T(1 - dampening) when != 0
  double weight_decay = 0;  // L2 penalty added to the gradient when != 0
  bool nesterov = false;
  bool maximize = false;
  bool first_step = false;  // the buffer is new: it receives the gradient instead of being updated
};

struct AdamParams {
  double lr = 0;
  double beta1 = 0, beta2 = 0;
  double eps = 0;
  double weight_decay = 0;
  double step_size = 0;              // lr / (1 - beta1^step), as the caller computes it in double
  double bias_correction2_sqrt = 0;  // sqrt(1 - beta2^step)
  bool decoupled = false;            // AdamW: decay the parameter, not the gradient
  bool maximize = false;
  bool amsgrad = false;              // max_exp_avg_sq is given and updated
};

// Dispatching entry points: run the implementation of the active ISA (see dispatch.h).
template <class T>
void sgd_step(T* param, const T* grad, T* momentum_buffer, std::int64_t n, const SgdParams& p);
template <class T>
void adam_step(T* param, const T* grad, T* exp_avg, T* exp_avg_sq, T* max_exp_avg_sq, std::int64_t n,
               const AdamParams& p);

namespace ref {
// One plain loop each: the oracle and the CNNX_ISA=ref path.
template <class T>
void sgd_step(T* param, const T* grad, T* momentum_buffer, std::int64_t n, const SgdParams& p);
template <class T>
void adam_step(T* param, const T* grad, T* exp_avg, T* exp_avg_sq, T* max_exp_avg_sq, std::int64_t n,
               const AdamParams& p);
}  // namespace ref

}  // namespace cnnx
