// 2-D convolution (cross-correlation, as in PyTorch), NCHW activations, OIHW weights.
//
// Shapes: input x  N x C x H x W; weight w  K x (C/G) x KH x KW; bias  K (optional, may be null);
//         output y  N x K x OH x OW with OH = conv_out_size(H, KH, stride_h, pad_h, dil_h) (same for W).
// Groups G split the channels: output channels [g*K/G, (g+1)*K/G) see input channels
// [g*C/G, (g+1)*C/G). Depthwise is G == C (with K = m*C, a channel multiplier m).
// Zero padding pad_h rows above and below, pad_w columns left and right.
//
//   conv2d_forward         y  = conv(x, w) + bias
//   conv2d_backward_input  dx = d<y, dy>/dx        (the transposed convolution of dy)
//   conv2d_backward_weight dw = d<y, dy>/dw, db = sum of dy over N, OH, OW (db may be null)
//
// Every function overwrites its outputs (no accumulation); arrays are dense C-order and must not
// overlap. All index arithmetic is 64-bit. Results are deterministic: for a given input and thread
// count the output is bitwise identical on every run (fast paths never split a sum across threads).
// Validation (positive sizes, divisibility by G, OH, OW >= 1) is the caller's job: conv2d_check()
// returns an empty string for valid parameters, otherwise what is wrong.
#pragma once

#include <cstdint>
#include <string>

namespace cnnx {

struct Conv2dParams {
  std::int64_t n = 0, c = 0, h = 0, w = 0;   // input
  std::int64_t k = 0, kh = 0, kw = 0;        // output channels, kernel size
  std::int64_t oh = 0, ow = 0;               // output size: set with conv_out_size()
  std::int64_t stride_h = 1, stride_w = 1;
  std::int64_t pad_h = 0, pad_w = 0;
  std::int64_t dil_h = 1, dil_w = 1;
  std::int64_t groups = 1;
};

// floor((n + 2p - d*(k-1) - 1) / s) + 1; <= 0 when the (dilated) kernel is larger than the padded input.
inline std::int64_t conv_out_size(std::int64_t n, std::int64_t k, std::int64_t s, std::int64_t p,
                                  std::int64_t d) {
  const std::int64_t span = n + 2 * p - d * (k - 1) - 1;
  return span < 0 ? 0 : span / s + 1;
}

// Fills p.oh / p.ow and returns "" when p describes a valid convolution, else a message.
std::string conv2d_check(Conv2dParams& p);

// A tail on conv2d_forward's output, per output channel k: v = v * scale[k] + shift[k] (a multiply,
// then an add: batch_norm's evaluation exactly), then, when relu, v < 0 ? 0 : v (NaN kept, as relu).
// scale and shift are both given or both null. conv2d_forward_fused is bitwise equal to
// conv2d_forward followed by those passes; fused, the tail runs while the output is in cache
// (inference's convolution -> batch norm -> ReLU in one kernel).
template <class T>
struct ConvEpilogue {
  const T* scale = nullptr;
  const T* shift = nullptr;
  bool relu = false;
};

// Dispatching entry points (the active ISA's implementation, see dispatch.h).
template <class T>
void conv2d_forward(T* y, const T* x, const T* w, const T* bias, const Conv2dParams& p);
template <class T>
void conv2d_forward_fused(T* y, const T* x, const T* w, const T* bias, const ConvEpilogue<T>& e,
                          const Conv2dParams& p);
template <class T>
void conv2d_backward_input(T* dx, const T* dy, const T* w, const Conv2dParams& p);
template <class T>
void conv2d_backward_weight(T* dw, T* db, const T* x, const T* dy, const Conv2dParams& p);

// Which algorithm the active implementation runs for one pass of p under the current setting
// (runtime.h, set_conv_algorithm): "gemm", "direct", "winograd", "rows" or "depthwise" ("ref" on the
// reference table). A forced algorithm that cannot compute p reports the one that runs instead.
// Asks the same rules the kernels follow, and computes nothing.
enum class ConvPass { kForward, kBackwardInput, kBackwardWeight };
template <class T>
const char* conv2d_algorithm(const Conv2dParams& p, ConvPass pass);

namespace ref {
// Direct loops over the definition: the oracle for the fast paths and the CNNX_ISA=ref path.
template <class T>
void conv2d_forward(T* y, const T* x, const T* w, const T* bias, const Conv2dParams& p);
template <class T>
void conv2d_forward_fused(T* y, const T* x, const T* w, const T* bias, const ConvEpilogue<T>& e,
                          const Conv2dParams& p);
template <class T>
void conv2d_backward_input(T* dx, const T* dy, const T* w, const Conv2dParams& p);
template <class T>
void conv2d_backward_weight(T* dw, T* db, const T* x, const T* dy, const Conv2dParams& p);
template <class T>
const char* conv2d_algorithm(const Conv2dParams& p, ConvPass pass);  // "ref"
}  // namespace ref

}  // namespace cnnx
