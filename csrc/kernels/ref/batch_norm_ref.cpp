// Reference batch norm: the definitions of cnnx/batch_norm.h, one channel at a time, every sum a
// plain sequential double loop. The oracle for the fast paths and the CNNX_ISA=ref fallback.
#include <cmath>

#include "cnnx/batch_norm.h"

namespace cnnx {
namespace ref {

using std::int64_t;

template <class T>
void batch_norm_forward(T* y, T* save_mean, T* save_invstd, T* running_mean, T* running_var, const T* x,
                        const T* weight, const T* bias, const BatchNormParams& p) {
  const int64_t m = p.n * p.hw;
  for (int64_t c = 0; c < p.c; ++c) {
    double mean, invstd;
    if (p.training) {
      if (m == 0) {
        save_mean[c] = save_invstd[c] = T(0);
        continue;
      }
      double sum = 0;
      for (int64_t n = 0; n < p.n; ++n)
        for (int64_t s = 0; s < p.hw; ++s) sum += x[(n * p.c + c) * p.hw + s];
      mean = sum / static_cast<double>(m);
      double dev = 0;
      for (int64_t n = 0; n < p.n; ++n)
        for (int64_t s = 0; s < p.hw; ++s) {
          const double d = x[(n * p.c + c) * p.hw + s] - mean;
          dev += d * d;
        }
      invstd = 1.0 / std::sqrt(dev / static_cast<double>(m) + p.eps);
      if (running_mean != nullptr) {
        const double unbiased = dev / static_cast<double>(m - 1);
        running_mean[c] = static_cast<T>((1.0 - p.momentum) * running_mean[c] + p.momentum * mean);
        running_var[c] = static_cast<T>((1.0 - p.momentum) * running_var[c] + p.momentum * unbiased);
      }
    } else {
      mean = running_mean[c];
      invstd = 1.0 / std::sqrt(static_cast<double>(running_var[c]) + p.eps);
    }
    save_mean[c] = static_cast<T>(mean);
    save_invstd[c] = static_cast<T>(invstd);
    const double a = (weight != nullptr ? weight[c] : 1.0) * invstd;
    const T at = static_cast<T>(a);
    const T bt = static_cast<T>((bias != nullptr ? bias[c] : 0.0) - mean * a);
    for (int64_t n = 0; n < p.n; ++n) {
      const int64_t off = (n * p.c + c) * p.hw;
      for (int64_t s = 0; s < p.hw; ++s) y[off + s] = x[off + s] * at + bt;
    }
  }
}

template <class T>
void batch_norm_backward(T* grad_x, T* grad_weight, T* grad_bias, const T* grad_y, const T* x, const T* weight,
                         const T* save_mean, const T* save_invstd, const BatchNormParams& p) {
  const int64_t m = p.n * p.hw;
  for (int64_t c = 0; c < p.c; ++c) {
    const double mean = save_mean[c], invstd = save_invstd[c];
    double sum_g = 0, dot = 0;  // sum(grad_y), sum(grad_y * (x - mean))
    for (int64_t n = 0; n < p.n; ++n)
      for (int64_t s = 0; s < p.hw; ++s) {
        const int64_t at = (n * p.c + c) * p.hw + s;
        sum_g += grad_y[at];
        dot += grad_y[at] * (x[at] - mean);
      }
    grad_bias[c] = static_cast<T>(sum_g);
    grad_weight[c] = static_cast<T>(dot * invstd);
    const T w_invstd = static_cast<T>((weight != nullptr ? weight[c] : 1.0) * invstd);
    if (p.training && m > 0) {
      // grad_x = w*invstd * ((grad_y - mean_g) - (x - mean) * proj), proj = dot*invstd^2/M.
      const T mean_g = static_cast<T>(sum_g / static_cast<double>(m));
      const T proj = static_cast<T>(dot * invstd * invstd / static_cast<double>(m));
      const T mean_t = static_cast<T>(mean);
      for (int64_t n = 0; n < p.n; ++n) {
        const int64_t off = (n * p.c + c) * p.hw;
        for (int64_t s = 0; s < p.hw; ++s)
          grad_x[off + s] = ((grad_y[off + s] - mean_g) - (x[off + s] - mean_t) * proj) * w_invstd;
      }
    } else {
      for (int64_t n = 0; n < p.n; ++n) {
        const int64_t off = (n * p.c + c) * p.hw;
        for (int64_t s = 0; s < p.hw; ++s) grad_x[off + s] = grad_y[off + s] * w_invstd;
      }
    }
  }
}

template void batch_norm_forward<float>(float*, float*, float*, float*, float*, const float*, const float*,
                                        const float*, const BatchNormParams&);
template void batch_norm_forward<double>(double*, double*, double*, double*, double*, const double*,
                                         const double*, const double*, const BatchNormParams&);
template void batch_norm_backward<float>(float*, float*, float*, const float*, const float*, const float*,
                                         const float*, const float*, const BatchNormParams&);
template void batch_norm_backward<double>(double*, double*, double*, const double*, const double*,
                                          const double*, const double*, const double*, const BatchNormParams&);

}  // namespace ref
}  // namespace cnnx
