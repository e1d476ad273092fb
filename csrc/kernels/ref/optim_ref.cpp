// Reference optimizer steps: the definitions of cnnx/optim.h as plain loops, the oracle for the
// fast paths and the CNNX_ISA=ref fallback. One statement per numpy operation of cnnx/optim/sgd.py
// and adam.py, so the rounding sequence reads off that code directly.
#include "cnnx/optim.h"

#include <cmath>

namespace cnnx {
namespace ref {

using std::int64_t;

template <class T>
void sgd_step(T* param, const T* grad, T* buf, int64_t n, const SgdParams& s) {
  // The Python floats rounded to T once, as numpy does with a weak scalar.
  const T lr = T(s.lr), wd = T(s.weight_decay), mom = T(s.momentum), keep = T(1.0 - s.dampening);
  const bool decay = s.weight_decay != 0, momentum = s.momentum != 0, damp = s.dampening != 0;
  for (int64_t i = 0; i < n; ++i) {
    const T p = param[i];
    T g = grad[i];
    if (s.maximize) g = -g;
    if (decay) g = p * wd + g;
    if (momentum) {
      T b;
      if (s.first_step) {
        b = g;
      } else {
        b = buf[i] * mom;
        b = damp ? b + g * keep : b + g;
      }
      buf[i] = b;
      g = s.nesterov ? b * mom + g : b;
    }
    param[i] = p - g * lr;
  }
}

template <class T>
void adam_step(T* param, const T* grad, T* exp_avg, T* exp_avg_sq, T* max_exp_avg_sq, int64_t n,
               const AdamParams& a) {
  const T wd = T(a.weight_decay), decay = T(1.0 - a.lr * a.weight_decay);
  const T c1 = T(1.0 - a.beta1), beta2 = T(a.beta2), c2 = T(1.0 - a.beta2);
  const T bc2 = T(a.bias_correction2_sqrt), eps = T(a.eps), neg_step = T(-a.step_size);
  const bool has_decay = a.weight_decay != 0;
  for (int64_t i = 0; i < n; ++i) {
    T p = param[i];
    T g = grad[i];
    if (a.maximize) g = -g;
    if (has_decay) {
      if (a.decoupled)
        p = p * decay;
      else
        g = a.maximize ? g + p * wd : p * wd + g;  // numpy's operand order in each case
    }
    const T m = exp_avg[i] + (g - exp_avg[i]) * c1;
    T v = exp_avg_sq[i] * beta2;
    v = v + (g * g) * c2;
    exp_avg[i] = m;
    exp_avg_sq[i] = v;
    if (a.amsgrad) {
      // np.maximum(vmax, v): vmax where vmax >= v or vmax is NaN, else v (NaN v included).
      const T old = max_exp_avg_sq[i];
      v = (old >= v || old != old) ? old : v;
      max_exp_avg_sq[i] = v;
    }
    T d = std::sqrt(v) / bc2;
    d = d + eps;
    d = m / d;
    param[i] = p + d * neg_step;
  }
}

template void sgd_step<float>(float*, const float*, float*, int64_t, const SgdParams&);
template void sgd_step<double>(double*, const double*, double*, int64_t, const SgdParams&);
template void adam_step<float>(float*, const float*, float*, float*, float*, int64_t, const AdamParams&);
template void adam_step<double>(double*, const double*, double*, double*, double*, int64_t, const AdamParams&);

}  // namespace ref
}  // namespace cnnx
