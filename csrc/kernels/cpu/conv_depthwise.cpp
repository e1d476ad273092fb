// Depthwise convolution (groups == C, K = m*C), direct kernels compiled once per ISA.
// Contract: cnnx/conv.h. Called by conv.cpp when groups == C.
//
// Depthwise layers do about 2*KH*KW FLOPs per byte moved, so they are bound by memory bandwidth,
// not by arithmetic: the aim is to read each input plane once and write each output plane once.
// Each input plane is first copied into a small "phase-split padded plane" in the thread's
// workspace (L1/L2 resident):
//   buf[r][ph][l] = xpad[r][l * SW + ph]      r: padded row, ph: column phase (0 <= ph < SW)
// where xpad is the plane with its zero padding. The input column of output ow under kernel column
// j is ow*SW + j*DW, which is buf[..][(j*DW) % SW][ow + (j*DW) / SW]: consecutive outputs read
// consecutive buffer entries for every stride, so all three directions run on contiguous vectors
// with no bounds checks. Rows are computed Vec-wide past OW into a scratch row (then the valid
// part is copied out), so the buffer has slack columns that only ever hold zeros.
//
// Threads split (image, channel) planes for the forward and input gradient, and channels for the
// weight gradient (each channel sums its images in order, on one thread): results are bitwise
// identical for any thread count.
#include <algorithm>
#include <cstdint>
#include <cstring>

#include "cnnx/conv.h"
#include "cnnx/runtime.h"
#include "cpu/parallel.h"
#include "cpu/simd.h"

namespace cnnx {
namespace CNNX_ISA_NS {

namespace {

using std::int64_t;

constexpr int kPlaneSlot = 3;  // phase-split plane (slots 0-2 belong to the GEMM)
constexpr int kRowSlot = 2;    // scratch rows

struct Layout {
  int64_t hp, sw, owv, len, max_off;  // padded rows, phases, OW rounded up to Vec, entries per phase

  // Entries of the whole buffer.
  int64_t size() const { return hp * sw * len; }
  int64_t row(int64_t r, int64_t ph) const { return (r * sw + ph) * len; }
};

template <class T>
Layout layout_of(const Conv2dParams& p) {
  constexpr int64_t W = simd::Vec<T>::width;
  Layout L;
  L.hp = p.h + 2 * p.pad_h;
  L.sw = p.stride_w;
  L.owv = (p.ow + W - 1) / W * W;
  L.max_off = (p.kw - 1) * p.dil_w / p.stride_w;
  const int64_t wp = p.w + 2 * p.pad_w;
  // Every phase holds its real columns and the reads of a Vec-rounded output row.
  L.len = std::max((wp + L.sw - 1) / L.sw, L.owv + L.max_off);
  return L;
}

// Fills buf with plane x (H x W) split into phases, padding and slack zeroed.
template <class T>
void split_plane(T* buf, const T* x, const Conv2dParams& p, const Layout& L) {
  std::fill(buf, buf + L.size(), T(0));
  for (int64_t ih = 0; ih < p.h; ++ih) {
    const T* src = x + ih * p.w;
    const int64_t r = ih + p.pad_h;
    if (L.sw == 1) {
      std::memcpy(buf + L.row(r, 0) + p.pad_w, src, size_t(p.w) * sizeof(T));
      continue;
    }
    for (int64_t iw = 0; iw < p.w; ++iw) {
      const int64_t c = iw + p.pad_w;
      buf[L.row(r, c % L.sw) + c / L.sw] = src[iw];
    }
  }
}

// The inverse for the input gradient: dx plane = the real (unpadded) entries of buf.
template <class T>
void merge_plane(T* dx, const T* buf, const Conv2dParams& p, const Layout& L) {
  for (int64_t ih = 0; ih < p.h; ++ih) {
    T* dst = dx + ih * p.w;
    const int64_t r = ih + p.pad_h;
    if (L.sw == 1) {
      std::memcpy(dst, buf + L.row(r, 0) + p.pad_w, size_t(p.w) * sizeof(T));
      continue;
    }
    for (int64_t iw = 0; iw < p.w; ++iw) {
      const int64_t c = iw + p.pad_w;
      dst[iw] = buf[L.row(r, c % L.sw) + c / L.sw];
    }
  }
}

// out[0:owv] = sum over (i, j) of wk[i, j] * the buffer row that output row oh reads for (i, j).
// Four vectors of outputs stay in registers across all KH*KW taps.
template <class T>
void output_row(T* out, const T* buf, const T* wk, int64_t oh, const Conv2dParams& p, const Layout& L) {
  using V = simd::Vec<T>;
  using R = typename V::reg;
  constexpr int64_t W = V::width;
  int64_t o = 0;
  for (; o + 4 * W <= L.owv; o += 4 * W) {
    R a0 = V::zero(), a1 = V::zero(), a2 = V::zero(), a3 = V::zero();
    for (int64_t i = 0; i < p.kh; ++i) {
      const int64_t r = oh * p.stride_h + i * p.dil_h;
      for (int64_t j = 0; j < p.kw; ++j) {
        const int64_t t = j * p.dil_w;
        const T* src = buf + L.row(r, t % L.sw) + t / L.sw + o;
        const R wv = V::set1(wk[i * p.kw + j]);
        a0 = V::fmadd(wv, V::load(src), a0);
        a1 = V::fmadd(wv, V::load(src + W), a1);
        a2 = V::fmadd(wv, V::load(src + 2 * W), a2);
        a3 = V::fmadd(wv, V::load(src + 3 * W), a3);
      }
    }
    V::store(out + o, a0);
    V::store(out + o + W, a1);
    V::store(out + o + 2 * W, a2);
    V::store(out + o + 3 * W, a3);
  }
  for (; o < L.owv; o += W) {
    R a0 = V::zero();
    for (int64_t i = 0; i < p.kh; ++i) {
      const int64_t r = oh * p.stride_h + i * p.dil_h;
      for (int64_t j = 0; j < p.kw; ++j) {
        const int64_t t = j * p.dil_w;
        a0 = V::fmadd(V::set1(wk[i * p.kw + j]), V::load(buf + L.row(r, t % L.sw) + t / L.sw + o), a0);
      }
    }
    V::store(out + o, a0);
  }
}

}  // namespace

template <class T>
void depthwise_forward(T* y, const T* x, const T* w, const T* bias, const Conv2dParams& p) {
  const Layout L = layout_of<T>(p);
  const int64_t mult = p.k / p.c, taps = p.kh * p.kw, ohw = p.oh * p.ow;
  parallel::region(get_num_threads(), [&](int tid, int nt) {
    T* buf = workspace_as<T>(kPlaneSlot, L.size());
    T* row = workspace_as<T>(kRowSlot, L.owv);
    const parallel::Range planes = parallel::split(p.n * p.c, tid, nt);
    for (int64_t nc = planes.begin; nc < planes.end; ++nc) {
      const int64_t n = nc / p.c, c = nc % p.c;
      split_plane(buf, x + nc * p.h * p.w, p, L);
      for (int64_t m = 0; m < mult; ++m) {
        const int64_t k = c * mult + m;
        T* yk = y + (n * p.k + k) * ohw;
        const T b = bias ? bias[k] : T(0);
        for (int64_t oh = 0; oh < p.oh; ++oh) {
          output_row(row, buf, w + k * taps, oh, p, L);
          T* dst = yk + oh * p.ow;
          if (bias)
            for (int64_t o = 0; o < p.ow; ++o) dst[o] = row[o] + b;
          else
            std::memcpy(dst, row, size_t(p.ow) * sizeof(T));
        }
      }
    }
  });
}

// dx is the scatter of dy through the same taps: buf[row(oh, i, j)][ow + off] += w[i, j] * dy[oh, ow],
// into a phase-split padded plane that is then merged back (its padding entries are discarded).
template <class T>
void depthwise_backward_input(T* dx, const T* dy, const T* w, const Conv2dParams& p) {
  using V = simd::Vec<T>;
  constexpr int64_t W = V::width;
  const Layout L = layout_of<T>(p);
  const int64_t mult = p.k / p.c, taps = p.kh * p.kw, ohw = p.oh * p.ow;
  parallel::region(get_num_threads(), [&](int tid, int nt) {
    T* buf = workspace_as<T>(kPlaneSlot, L.size());
    T* row = workspace_as<T>(kRowSlot, L.owv);
    std::fill(row + p.ow, row + L.owv, T(0));  // slack lanes scatter zeros
    const parallel::Range planes = parallel::split(p.n * p.c, tid, nt);
    for (int64_t nc = planes.begin; nc < planes.end; ++nc) {
      const int64_t n = nc / p.c, c = nc % p.c;
      std::fill(buf, buf + L.size(), T(0));
      for (int64_t m = 0; m < mult; ++m) {
        const int64_t k = c * mult + m;
        const T* wk = w + k * taps;
        for (int64_t oh = 0; oh < p.oh; ++oh) {
          std::memcpy(row, dy + (n * p.k + k) * ohw + oh * p.ow, size_t(p.ow) * sizeof(T));
          for (int64_t i = 0; i < p.kh; ++i) {
            const int64_t r = oh * p.stride_h + i * p.dil_h;
            for (int64_t j = 0; j < p.kw; ++j) {
              const int64_t t = j * p.dil_w;
              T* dst = buf + L.row(r, t % L.sw) + t / L.sw;
              const typename V::reg wv = V::set1(wk[i * p.kw + j]);
              for (int64_t o = 0; o < L.owv; o += W)
                V::store(dst + o, V::fmadd(wv, V::load(row + o), V::load(dst + o)));
            }
          }
        }
      }
      merge_plane(dx + nc * p.h * p.w, buf, p, L);
    }
  });
}

// dw[k, i, j] = sum over images, then output positions, of dy[k, oh, ow] * x tap (i, j). One
// channel's images run in order on one thread; per image the positions are summed in Vec lanes and
// the lanes reduced in a fixed order.
template <class T>
void depthwise_backward_weight(T* dw, const T* x, const T* dy, const Conv2dParams& p) {
  using V = simd::Vec<T>;
  using R = typename V::reg;
  constexpr int64_t W = V::width;
  const Layout L = layout_of<T>(p);
  const int64_t mult = p.k / p.c, taps = p.kh * p.kw, ohw = p.oh * p.ow;
  parallel::region(get_num_threads(), [&](int tid, int nt) {
    T* buf = workspace_as<T>(kPlaneSlot, L.size());
    T* dyp = workspace_as<T>(kRowSlot, p.oh * L.owv);  // dy plane, rows padded with zeros to owv
    const parallel::Range chans = parallel::split(p.c, tid, nt);
    for (int64_t c = chans.begin; c < chans.end; ++c) {
      for (int64_t m = 0; m < mult; ++m) std::fill(dw + (c * mult + m) * taps, dw + (c * mult + m + 1) * taps, T(0));
      for (int64_t n = 0; n < p.n; ++n) {
        split_plane(buf, x + (n * p.c + c) * p.h * p.w, p, L);
        for (int64_t m = 0; m < mult; ++m) {
          const int64_t k = c * mult + m;
          for (int64_t oh = 0; oh < p.oh; ++oh) {
            T* d = dyp + oh * L.owv;
            std::memcpy(d, dy + (n * p.k + k) * ohw + oh * p.ow, size_t(p.ow) * sizeof(T));
            std::fill(d + p.ow, d + L.owv, T(0));
          }
          for (int64_t i = 0; i < p.kh; ++i)
            for (int64_t j = 0; j < p.kw; ++j) {
              const int64_t t = j * p.dil_w;
              R acc = V::zero();
              for (int64_t oh = 0; oh < p.oh; ++oh) {
                const T* src = buf + L.row(oh * p.stride_h + i * p.dil_h, t % L.sw) + t / L.sw;
                const T* d = dyp + oh * L.owv;
                for (int64_t o = 0; o < L.owv; o += W) acc = V::fmadd(V::load(d + o), V::load(src + o), acc);
              }
              alignas(64) T lanes[W];
              V::store(lanes, acc);
              T sum = T(0);
              for (int64_t l = 0; l < W; ++l) sum += lanes[l];
              dw[k * taps + i * p.kw + j] += sum;
            }
        }
      }
    }
  });
}

#define CNNX_INSTANTIATE(T)                                                                          \
  template void depthwise_forward<T>(T*, const T*, const T*, const T*, const Conv2dParams&);        \
  template void depthwise_backward_input<T>(T*, const T*, const T*, const Conv2dParams&);           \
  template void depthwise_backward_weight<T>(T*, const T*, const T*, const Conv2dParams&);
CNNX_INSTANTIATE(float)
CNNX_INSTANTIATE(double)
#undef CNNX_INSTANTIATE

}  // namespace CNNX_ISA_NS
}  // namespace cnnx
