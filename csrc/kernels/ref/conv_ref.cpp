// Reference convolution: the definition in plain loops. Every sum runs in a fixed order
// (input channel, kernel row, kernel column; then batch and output position for the weight
// gradient), accumulated in T, so the fast paths can be compared against it with an error bound.
#include <climits>
#include <cstdint>
#include <initializer_list>

#include "cnnx/conv.h"

namespace cnnx {

// Shape rules shared by every implementation and the bindings (compiled once, here).
std::string conv2d_check(Conv2dParams& p) {
  auto positive = [](std::int64_t v) { return v > 0; };
  if (p.n < 0 || p.c < 0 || p.h < 0 || p.w < 0 || p.k < 0) return "sizes must be non-negative";
  if (!positive(p.kh) || !positive(p.kw)) return "kernel size must be positive";
  if (!positive(p.stride_h) || !positive(p.stride_w)) return "stride must be positive";
  if (!positive(p.dil_h) || !positive(p.dil_w)) return "dilation must be positive";
  if (p.pad_h < 0 || p.pad_w < 0) return "padding must be non-negative";
  if (!positive(p.groups)) return "groups must be positive";
  if (p.c % p.groups != 0) return "input channels must be divisible by groups";
  if (p.k % p.groups != 0) return "output channels must be divisible by groups";
  // The padded extent h + 2*pad and the dilated kernel extent dil*(k-1) must fit before the output
  // size is computed from them (huge padding or dilation would otherwise overflow, which is UB).
  auto extent_fits = [](std::int64_t size, std::int64_t pad, std::int64_t k, std::int64_t dil) {
    std::int64_t twice, padded, span;
    return !__builtin_mul_overflow(pad, std::int64_t{2}, &twice) && !__builtin_add_overflow(size, twice, &padded) &&
           !__builtin_mul_overflow(dil, k - 1, &span) && span < INT64_MAX;
  };
  if (!extent_fits(p.h, p.pad_h, p.kh, p.dil_h) || !extent_fits(p.w, p.pad_w, p.kw, p.dil_w))
    return "sizes overflow 64-bit indexing";
  p.oh = conv_out_size(p.h, p.kh, p.stride_h, p.pad_h, p.dil_h);
  p.ow = conv_out_size(p.w, p.kw, p.stride_w, p.pad_w, p.dil_w);
  if (p.oh <= 0 || p.ow <= 0) return "kernel size (dilated) is larger than the padded input";
  // Every element count (and its byte count) must fit in int64 so no index can wrap.
  const std::int64_t limit = INT64_MAX / 8;
  auto fits = [&](std::initializer_list<std::int64_t> dims) {
    std::int64_t total = 1;
    for (std::int64_t d : dims)
      if (d != 0 && total > limit / d) return false; else total *= d;
    return true;
  };
  if (!fits({p.n, p.c, p.h + 2 * p.pad_h, p.w + 2 * p.pad_w}) || !fits({p.n, p.k, p.oh, p.ow}) ||
      !fits({p.k, p.c, p.kh, p.kw}) || !fits({p.c, p.kh, p.kw, p.oh, p.ow}))
    return "sizes overflow 64-bit indexing";
  return "";
}

namespace ref {

using std::int64_t;

template <class T>
void conv2d_forward(T* y, const T* x, const T* w, const T* bias, const Conv2dParams& p) {
  const int64_t cg = p.c / p.groups, kg = p.k / p.groups;
  for (int64_t n = 0; n < p.n; ++n)
    for (int64_t k = 0; k < p.k; ++k) {
      const int64_t g = k / kg;
      T* yk = y + (n * p.k + k) * p.oh * p.ow;
      for (int64_t oh = 0; oh < p.oh; ++oh)
        for (int64_t ow = 0; ow < p.ow; ++ow) {
          T acc = T(0);
          for (int64_t ci = 0; ci < cg; ++ci) {
            const T* xc = x + (n * p.c + g * cg + ci) * p.h * p.w;
            const T* wk = w + (k * cg + ci) * p.kh * p.kw;
            for (int64_t i = 0; i < p.kh; ++i) {
              const int64_t ih = oh * p.stride_h - p.pad_h + i * p.dil_h;
              if (ih < 0 || ih >= p.h) continue;
              for (int64_t j = 0; j < p.kw; ++j) {
                const int64_t iw = ow * p.stride_w - p.pad_w + j * p.dil_w;
                if (iw < 0 || iw >= p.w) continue;
                acc += wk[i * p.kw + j] * xc[ih * p.w + iw];
              }
            }
          }
          yk[oh * p.ow + ow] = bias ? acc + bias[k] : acc;
        }
    }
}

// dx[n, c, ih, iw] = sum over (k in c's group, i, j) with ih = oh*s - p + i*d (same for w) of
// w[k, c - g*cg, i, j] * dy[n, k, oh, ow]: a gather per input element, so nothing accumulates
// into memory and the summation order is fixed.
template <class T>
void conv2d_backward_input(T* dx, const T* dy, const T* w, const Conv2dParams& p) {
  const int64_t cg = p.c / p.groups, kg = p.k / p.groups;
  for (int64_t n = 0; n < p.n; ++n)
    for (int64_t c = 0; c < p.c; ++c) {
      const int64_t g = c / cg, ci = c % cg;
      T* dxc = dx + (n * p.c + c) * p.h * p.w;
      for (int64_t ih = 0; ih < p.h; ++ih)
        for (int64_t iw = 0; iw < p.w; ++iw) {
          T acc = T(0);
          for (int64_t kk = 0; kk < kg; ++kk) {
            const int64_t k = g * kg + kk;
            const T* dyk = dy + (n * p.k + k) * p.oh * p.ow;
            const T* wk = w + (k * cg + ci) * p.kh * p.kw;
            for (int64_t i = 0; i < p.kh; ++i) {
              const int64_t th = ih + p.pad_h - i * p.dil_h;  // = oh * stride_h
              if (th < 0 || th % p.stride_h != 0 || th / p.stride_h >= p.oh) continue;
              for (int64_t j = 0; j < p.kw; ++j) {
                const int64_t tw = iw + p.pad_w - j * p.dil_w;
                if (tw < 0 || tw % p.stride_w != 0 || tw / p.stride_w >= p.ow) continue;
                acc += wk[i * p.kw + j] * dyk[(th / p.stride_h) * p.ow + tw / p.stride_w];
              }
            }
          }
          dxc[ih * p.w + iw] = acc;
        }
    }
}

template <class T>
void conv2d_backward_weight(T* dw, T* db, const T* x, const T* dy, const Conv2dParams& p) {
  const int64_t cg = p.c / p.groups, kg = p.k / p.groups;
  for (int64_t k = 0; k < p.k; ++k) {
    const int64_t g = k / kg;
    for (int64_t ci = 0; ci < cg; ++ci)
      for (int64_t i = 0; i < p.kh; ++i)
        for (int64_t j = 0; j < p.kw; ++j) {
          T acc = T(0);
          for (int64_t n = 0; n < p.n; ++n) {
            const T* xc = x + (n * p.c + g * cg + ci) * p.h * p.w;
            const T* dyk = dy + (n * p.k + k) * p.oh * p.ow;
            for (int64_t oh = 0; oh < p.oh; ++oh) {
              const int64_t ih = oh * p.stride_h - p.pad_h + i * p.dil_h;
              if (ih < 0 || ih >= p.h) continue;
              for (int64_t ow = 0; ow < p.ow; ++ow) {
                const int64_t iw = ow * p.stride_w - p.pad_w + j * p.dil_w;
                if (iw < 0 || iw >= p.w) continue;
                acc += dyk[oh * p.ow + ow] * xc[ih * p.w + iw];
              }
            }
          }
          dw[((k * cg + ci) * p.kh + i) * p.kw + j] = acc;
        }
    if (db) {
      T acc = T(0);
      for (int64_t n = 0; n < p.n; ++n) {
        const T* dyk = dy + (n * p.k + k) * p.oh * p.ow;
        for (int64_t o = 0; o < p.oh * p.ow; ++o) acc += dyk[o];
      }
      db[k] = acc;
    }
  }
}

template <class T>
void conv2d_forward_fused(T* y, const T* x, const T* w, const T* bias, const ConvEpilogue<T>& e,
                          const Conv2dParams& p) {
  ref::conv2d_forward(y, x, w, bias, p);
  const int64_t plane = p.oh * p.ow;
  for (int64_t n = 0; n < p.n; ++n)
    for (int64_t k = 0; k < p.k; ++k) {
      T* yk = y + (n * p.k + k) * plane;
      for (int64_t o = 0; o < plane; ++o) {
        T v = yk[o];
        if (e.scale) v = v * e.scale[k] + e.shift[k];
        if (e.relu) v = v < T(0) ? T(0) : v;
        yk[o] = v;
      }
    }
}

// One algorithm for every shape and pass: the loops above.
template <class T>
const char* conv2d_algorithm(const Conv2dParams&, ConvPass) {
  return "ref";
}

#define CNNX_INSTANTIATE(T)                                                                     \
  template const char* conv2d_algorithm<T>(const Conv2dParams&, ConvPass);                     \
  template void conv2d_forward<T>(T*, const T*, const T*, const T*, const Conv2dParams&);       \
  template void conv2d_forward_fused<T>(T*, const T*, const T*, const T*, const ConvEpilogue<T>&, \
                                        const Conv2dParams&);                                   \
  template void conv2d_backward_input<T>(T*, const T*, const T*, const Conv2dParams&);          \
  template void conv2d_backward_weight<T>(T*, T*, const T*, const T*, const Conv2dParams&);
CNNX_INSTANTIATE(float)
CNNX_INSTANTIATE(double)
#undef CNNX_INSTANTIATE

}  // namespace ref
}  // namespace cnnx
