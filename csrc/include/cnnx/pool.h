// 2-D pooling over NCHW planes: max (with argmax indices), average, adaptive average.
//
// Contract (every implementation: ref, generic, avx2, avx512):
//   Input x is N x C x H x W, output y is N x C x OH x OW, both dense C order. Every (n, c) plane is
//   pooled on its own; kernels overwrite their outputs (gradients included: nothing accumulates
//   across calls). All index arithmetic is 64-bit.
//   Output window (oh, ow) starts at input row oh*SH - PH and column ow*SW - PW; its taps are
//   kh*DH, kw*DW further on (kh < KH, kw < KW). Taps outside the input are skipped (padding never
//   holds a value). The output size follows PyTorch (pool_output_size below).
//
//   max_pool2d_forward: y = the maximum over the window's taps; indices = the flat position
//     h*W + w of that tap inside its input plane (PyTorch's convention). Scanning taps row by row, a
//     tap replaces the running maximum when it is greater, or when it is NaN; so a window holding
//     NaN gives NaN with the index of its last NaN, and on ties the first tap wins (PyTorch's CPU
//     rule). A window with no tap inside the input gives -inf and index -1.
//   max_pool2d_backward: grad_x = 0 except grad_x[index] += grad_y for every output, summed in
//     raster order of the outputs. Index -1 is skipped; any other index outside [0, H*W) is skipped
//     and makes the call return false (the caller reports it) - nothing is written out of bounds.
//   avg_pool2d_forward: y = (sum of the taps) / divisor, with PyTorch's divisor: divisor_override
//     when non-zero; else, with count_include_pad, the window size clipped to the padded input
//     [-PH, H+PH) x [-PW, W+PW); else the number of taps inside the input. No dilation (DH = DW = 1).
//   avg_pool2d_backward: grad_x[tap] += grad_y / divisor for every tap of every output.
//   adaptive_avg_pool2d: output row i averages input rows [floor(i*H/OH), ceil((i+1)*H/OH)), and
//     likewise for columns (PyTorch); OH > H is allowed (windows then repeat rows). Backward spreads
//     grad_y / window size over each window.
//   Results are bitwise identical for any thread count: threads split whole planes.
#pragma once

#include <algorithm>
#include <cstdint>

namespace cnnx {

struct Pool2dParams {
  std::int64_t n = 0, c = 0, h = 0, w = 0;  // input
  std::int64_t oh = 0, ow = 0;              // output (pool_output_size)
  std::int64_t kh = 1, kw = 1, sh = 1, sw = 1, ph = 0, pw = 0, dh = 1, dw = 1;
  bool count_include_pad = true;       // avg_pool2d only
  std::int64_t divisor_override = 0;   // avg_pool2d only; 0 = none
};

struct AdaptivePool2dParams {
  std::int64_t n = 0, c = 0, h = 0, w = 0, oh = 0, ow = 0;
};

// Output extent of one pooled dimension, PyTorch's rule: floor (or ceil) of
// (in + 2*pad - dilation*(kernel-1) - 1) / stride, plus one; in ceil mode the last window must start
// inside the input or its left padding, else it is dropped. Returns <= 0 when the window does not
// fit (callers report "output size is too small"). Arguments are validated by the caller (kernel,
// stride, dilation >= 1; 0 <= pad <= kernel/2; no overflow).
inline std::int64_t pool_output_size(std::int64_t in, std::int64_t kernel, std::int64_t stride,
                                     std::int64_t pad, std::int64_t dilation, bool ceil_mode) {
  const std::int64_t span = in + 2 * pad - dilation * (kernel - 1) - 1;
  if (span < 0) return 0;
  std::int64_t out = (ceil_mode ? span + stride - 1 : span) / stride + 1;
  if (ceil_mode && (out - 1) * stride >= in + pad) --out;
  return out;
}

// The taps of a window starting at `start` (kernel k, dilation d) that fall inside [0, size):
// tap indices [first, last). first >= last means none.
struct TapRange {
  std::int64_t first, last;
};
inline TapRange pool_taps(std::int64_t start, std::int64_t k, std::int64_t d, std::int64_t size) {
  const std::int64_t first = start < 0 ? (-start + d - 1) / d : 0;
  const std::int64_t last = start > size - 1 ? 0 : std::min(k, (size - 1 - start) / d + 1);
  return {first, last};
}

// Average pooling window of one dimension (no dilation): the clipped input range [begin, end) and
// the extent `padded` counted by count_include_pad (the window clipped to the padded input).
struct AvgWindow {
  std::int64_t begin, end, padded;
};
inline AvgWindow avg_window(std::int64_t o, std::int64_t k, std::int64_t s, std::int64_t p,
                            std::int64_t size) {
  const std::int64_t start = o * s - p;
  const std::int64_t stop = std::min(start + k, size + p);
  return {std::max<std::int64_t>(start, 0), std::min(stop, size), stop - start};
}

// The divisor of average-pooling output (rows x cols window), PyTorch's rule.
inline std::int64_t avg_divisor(const Pool2dParams& p, const AvgWindow& r, const AvgWindow& c) {
  if (p.divisor_override != 0) return p.divisor_override;
  if (p.count_include_pad) return r.padded * c.padded;
  return (r.end - r.begin) * (c.end - c.begin);
}

// Adaptive window of output i of `out` over an input extent `in`: [floor(i*in/out), ceil((i+1)*in/out)).
// The caller guarantees in * out fits in int64.
struct AdaptiveWindow {
  std::int64_t begin, end;
};
inline AdaptiveWindow adaptive_window(std::int64_t i, std::int64_t in, std::int64_t out) {
  return {i * in / out, ((i + 1) * in + out - 1) / out};
}

// Dispatching entry points: run the implementation of the active ISA (see dispatch.h).
template <class T>
void max_pool2d_forward(T* y, std::int64_t* indices, const T* x, const Pool2dParams& p);
template <class T>
bool max_pool2d_backward(T* grad_x, const T* grad_y, const std::int64_t* indices, const Pool2dParams& p);
template <class T>
void avg_pool2d_forward(T* y, const T* x, const Pool2dParams& p);
template <class T>
void avg_pool2d_backward(T* grad_x, const T* grad_y, const Pool2dParams& p);
template <class T>
void adaptive_avg_pool2d_forward(T* y, const T* x, const AdaptivePool2dParams& p);
template <class T>
void adaptive_avg_pool2d_backward(T* grad_x, const T* grad_y, const AdaptivePool2dParams& p);

namespace ref {
// Plain loops over each window: the oracle the fast paths are tested against, and CNNX_ISA=ref.
template <class T>
void max_pool2d_forward(T* y, std::int64_t* indices, const T* x, const Pool2dParams& p);
template <class T>
bool max_pool2d_backward(T* grad_x, const T* grad_y, const std::int64_t* indices, const Pool2dParams& p);
template <class T>
void avg_pool2d_forward(T* y, const T* x, const Pool2dParams& p);
template <class T>
void avg_pool2d_backward(T* grad_x, const T* grad_y, const Pool2dParams& p);
template <class T>
void adaptive_avg_pool2d_forward(T* y, const T* x, const AdaptivePool2dParams& p);
template <class T>
void adaptive_avg_pool2d_backward(T* grad_x, const T* grad_y, const AdaptivePool2dParams& p);
}  // namespace ref

}  // namespace cnnx
