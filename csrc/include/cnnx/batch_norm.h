// Batch normalisation over NCHW (per channel c, statistics over N, H and W), PyTorch's semantics.
//
// Contract (every implementation: ref, generic, avx2, avx512):
//   x, y, grad_x, grad_y are N x C x H x W dense C order (hw = H*W); per-channel vectors have C
//   entries. weight and bias may be null (1 and 0). M = N*hw values per channel.
//   forward, training: mean = sum(x)/M, var = sum((x-mean)^2)/M (two passes, sums in double),
//     invstd = 1/sqrt(var + eps); y = x * a + b with a = weight*invstd, b = bias - mean*a (a, b
//     computed in double, rounded to T once). save_mean = mean, save_invstd = invstd. When the
//     running statistics are given (both or neither) they are updated in place:
//     running = (1 - momentum) * running + momentum * stat, with the unbiased variance
//     var * M / (M - 1) for running_var. M == 0 (batch 0): y is empty, save_mean = save_invstd = 0,
//     running statistics untouched. M == 1 is rejected by the caller (PyTorch: "expected more than
//     1 value per channel when training").
//   forward, eval: mean = running_mean, invstd = 1/sqrt(running_var + eps) (both required), same y;
//     save_mean / save_invstd are these statistics.
//   backward, training: with xhat = (x - mean) * invstd,
//     grad_bias = sum(grad_y), grad_weight = sum(grad_y * xhat),
//     grad_x = weight * invstd * (grad_y - grad_bias/M - xhat * grad_weight/M).
//   backward, eval (statistics were constants): grad_x = weight * invstd * grad_y, same
//     grad_weight and grad_bias. Kernels overwrite their outputs.
//   Results are bitwise identical for any thread count: each channel's sums run on one thread in a
//   fixed order (threads split channels, never a sum).
#pragma once

#include <cstdint>

namespace cnnx {

struct BatchNormParams {
  std::int64_t n = 0, c = 0, hw = 0;
  bool training = true;
  double momentum = 0.1, eps = 1e-5;
};

// Dispatching entry points: run the implementation of the active ISA (see dispatch.h).
template <class T>
void batch_norm_forward(T* y, T* save_mean, T* save_invstd, T* running_mean, T* running_var, const T* x,
                        const T* weight, const T* bias, const BatchNormParams& p);
template <class T>
void batch_norm_backward(T* grad_x, T* grad_weight, T* grad_bias, const T* grad_y, const T* x, const T* weight,
                         const T* save_mean, const T* save_invstd, const BatchNormParams& p);

namespace ref {
// Plain loops, one channel at a time: the oracle and the CNNX_ISA=ref path.
template <class T>
void batch_norm_forward(T* y, T* save_mean, T* save_invstd, T* running_mean, T* running_var, const T* x,
                        const T* weight, const T* bias, const BatchNormParams& p);
template <class T>
void batch_norm_backward(T* grad_x, T* grad_weight, T* grad_bias, const T* grad_y, const T* x, const T* weight,
                         const T* save_mean, const T* save_invstd, const BatchNormParams& p);
}  // namespace ref

}  // namespace cnnx
