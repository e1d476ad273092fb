// Local response normalisation across channels, NCHW (PyTorch's convention, as Caffe's).
//
// Contract (every implementation: ref, generic, avx2, avx512):
//   x, y, scale are N x C x H x W, dense C order. For channel c the window is channels
//   [c - size/2, c + (size-1)/2] clipped to [0, C) (PyTorch pads size/2 channels before and
//   (size-1)/2 after, then averages over `size`), and
//       scale_c = k + alpha / size * sum over the window of x_j^2,     y_c = x_c / scale_c^beta.
//   The AlexNet paper's alpha (not divided by size) is alpha_paper = alpha / size: callers convert.
//   forward writes y and scale (saved for backward). backward writes grad_x, the exact gradient:
//       grad_x_j = grad_y_j * scale_j^-beta
//                  - 2 alpha beta / size * x_j * sum over {c : j in window(c)} of grad_y_c * y_c / scale_c
//   where j is in window(c) exactly when c is in [j - (size-1)/2, j + size/2]. Kernels overwrite
//   their outputs. Results are bitwise identical for any thread count (threads split spatial
//   blocks; every sum runs over channels in ascending order). scale is the reference's bit for
//   bit on every path; the fast paths multiply by scale^-beta, for float from reciprocal square
//   roots when beta is 0.5 or 0.75, so y and grad_x may differ from the reference in the last few
//   bits.
#pragma once

#include <cstdint>

namespace cnnx {

struct LrnParams {
  std::int64_t n = 0, c = 0, h = 0, w = 0;
  std::int64_t size = 1;  // >= 1
  double alpha = 1e-4, beta = 0.75, k = 1.0;
};

// Channels before and after c in c's window (before the clip to [0, C)).
inline std::int64_t lrn_before(std::int64_t size) { return size / 2; }
inline std::int64_t lrn_after(std::int64_t size) { return (size - 1) / 2; }

// Dispatching entry points: run the implementation of the active ISA (see dispatch.h).
template <class T>
void lrn_forward(T* y, T* scale, const T* x, const LrnParams& p);
template <class T>
void lrn_backward(T* grad_x, const T* grad_y, const T* x, const T* y, const T* scale, const LrnParams& p);

namespace ref {
// Plain loops, one output element at a time: the oracle and the CNNX_ISA=ref path.
template <class T>
void lrn_forward(T* y, T* scale, const T* x, const LrnParams& p);
template <class T>
void lrn_backward(T* grad_x, const T* grad_y, const T* x, const T* y, const T* scale, const LrnParams& p);
}  // namespace ref

}  // namespace cnnx
