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
#include <array>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>
#include <vector>

#include "cnnx/conv.h"
#include "cnnx/runtime.h"
#include "cpu/conv_geometry.h"
#include "cpu/flat_plan.h"
#include "cpu/parallel.h"
#include "cpu/plan_cache.h"
#include "cpu/simd.h"

namespace cnnx {
namespace CNNX_ISA_NS {

namespace {

using std::int64_t;
using namespace flat;

constexpr int kPlaneSlot = 3;  // phase-split plane (slots 0-2 belong to the GEMM)
constexpr int kRowSlot = 2;    // scratch rows

struct Layout {
  int64_t hp, sw, owv, len, max_off;  // padded rows, phases, OW rounded up to Vec, entries per phase
  std::vector<int64_t> tap;           // tap[i*KW + j]: where output (0, 0) reads tap (i, j)
  int64_t out_row;                    // distance between the reads of consecutive output rows

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
  // Offsets computed once, so the inner loops never divide.
  for (int64_t i = 0; i < p.kh; ++i)
    for (int64_t j = 0; j < p.kw; ++j) {
      const int64_t t = j * p.dil_w;
      L.tap.push_back(L.row(i * p.dil_h, t % L.sw) + t / L.sw);
    }
  L.out_row = p.stride_h * L.sw * L.len;
  return L;
}

// dst[0:n] = src[0:n] in vectors, the tail masked: the rows here are short (7 to 224 values), and
// for a 7x7 plane a memcpy call per row cost more than the convolution itself.
template <class T>
CNNX_INLINE void copy_row(T* dst, const T* src, int64_t n) {
  using V = simd::Vec<T>;
  int64_t i = 0;
  for (; i + V::width <= n; i += V::width) V::store(dst + i, V::load(src + i));
  if (i < n) V::store_partial(dst + i, V::load_partial(src + i, int(n - i)), int(n - i));
}

// Fills buf with plane x (H x W) split into phases, padding and slack zeroed.
template <class T>
void split_plane(T* buf, const T* x, const Conv2dParams& p, const Layout& L) {
  std::fill(buf, buf + L.size(), T(0));
  for (int64_t ih = 0; ih < p.h; ++ih) {
    const T* src = x + ih * p.w;
    const int64_t r = ih + p.pad_h;
    if (L.sw == 1) {
      copy_row(buf + L.row(r, 0) + p.pad_w, src, p.w);
      continue;
    }
    for (int64_t ph = 0; ph < L.sw; ++ph) {  // phase ph holds padded columns l*SW + ph
      int64_t lo, hi;
      valid_range(p.w, L.len, L.sw, p.pad_w, ph, &lo, &hi);  // entries l: column l*SW + ph - PW
      T* dst = buf + L.row(r, ph);
      const T* from = src + ph - p.pad_w;  // from[l * SW] is entry l
      using V = simd::Vec<T>;
      int64_t l = lo;
      for (; l + V::width <= hi; l += V::width) V::store(dst + l, V::load_strided(from + l * L.sw, L.sw));
      for (; l < hi; ++l) dst[l] = from[l * L.sw];
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
      copy_row(dst, buf + L.row(r, 0) + p.pad_w, p.w);
      continue;
    }
    for (int64_t ph = 0; ph < L.sw; ++ph) {
      int64_t lo, hi;
      valid_range(p.w, L.len, L.sw, p.pad_w, ph, &lo, &hi);  // entries l: column l*SW + ph - PW
      const T* src = buf + L.row(r, ph);
      for (int64_t l = lo; l < hi; ++l) dst[l * L.sw + ph - p.pad_w] = src[l];
    }
  }
}

// Outputs [o, o + NV*W) of rows [oh, oh + R): the KH*KW taps accumulated in R*NV independent
// registers (enough of them to hide the FMA latency; one row of a small plane has too few vectors).
template <class T, int R, int NV>
CNNX_INLINE void taps(typename simd::Vec<T>::reg* acc, const T* buf, const T* wk, int64_t oh, int64_t o,
                      const Conv2dParams& p, const Layout& L) {
  using V = simd::Vec<T>;
  constexpr int64_t W = V::width;
  for (int a = 0; a < R * NV; ++a) acc[a] = V::zero();
  const T* base = buf + oh * L.out_row + o;
  const int64_t ntaps = p.kh * p.kw;
  for (int64_t q = 0; q < ntaps; ++q) {
    const T* src = base + L.tap[q];
    const typename V::reg wv = V::set1(wk[q]);
    for (int r = 0; r < R; ++r)
      for (int v = 0; v < NV; ++v)
        acc[r * NV + v] = V::fmadd(wv, V::load(src + r * L.out_row + v * W), acc[r * NV + v]);
  }
}

// Stores R rows x NV vectors of results plus the bias at out (row stride OW), dropping lanes >= OW
// (a masked store: a scalar tail loop here became a memmove call per row).
template <class T, int R, int NV>
CNNX_INLINE void store_rows(T* out, const typename simd::Vec<T>::reg* acc, T bias, int64_t o, const Conv2dParams& p) {
  using V = simd::Vec<T>;
  constexpr int64_t W = V::width;
  const typename V::reg vb = V::set1(bias);
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < NV; ++v) {
      const int64_t at = o + v * W;
      T* dst = out + r * p.ow + at;
      if (at + W <= p.ow) {
        V::store(dst, V::add(acc[r * NV + v], vb));
      } else if (at < p.ow) {
        V::store_partial(dst, V::add(acc[r * NV + v], vb), int(p.ow - at));
      }
    }
}

// Output rows [oh, oh + R) starting at out: R x NV accumulators at a time along the row, and the
// last (vecs mod NV) vectors in one narrower step.
template <class T, int R, int NV>
void output_rows(T* out, const T* buf, const T* wk, T bias, int64_t oh, const Conv2dParams& p, const Layout& L) {
  using V = simd::Vec<T>;
  constexpr int64_t W = V::width;
  typename V::reg acc[R * NV];
  int64_t o = 0;
  for (; o + NV * W <= L.owv; o += NV * W) {
    taps<T, R, NV>(acc, buf, wk, oh, o, p, L);
    store_rows<T, R, NV>(out, acc, bias, o, p);
  }
  if constexpr (NV > 1) {
    const int64_t left = (L.owv - o) / W;
    if (left > 0) {
      // One step of `left` (< NV) vectors, with the same R rows.
      switch (left) {
#define CNNX_REST(n)                                                   \
  case n:                                                              \
    if constexpr (n < NV) {                                            \
      taps<T, R, n>(acc, buf, wk, oh, o, p, L);                        \
      store_rows<T, R, n>(out, acc, bias, o, p);                       \
    }                                                                  \
    break;
        CNNX_REST(1) CNNX_REST(2) CNNX_REST(3) CNNX_REST(4) CNNX_REST(5) CNNX_REST(6) CNNX_REST(7)
#undef CNNX_REST
        default: break;
      }
    }
  }
}

// One output plane (OH x OW at out). A row of `vecs` vectors is computed vecs-wide (up to 8), and
// rows are taken 8, 4 or 2 at a time when a row alone has too few vectors to keep 8 accumulators busy.
template <class T>
void output_plane(T* out, const T* buf, const T* wk, T bias, const Conv2dParams& p, const Layout& L) {
  constexpr int64_t W = simd::Vec<T>::width;
  const int64_t vecs = L.owv / W;
  int64_t oh = 0;
  if (vecs == 1) {
    for (; oh + 8 <= p.oh; oh += 8) output_rows<T, 8, 1>(out + oh * p.ow, buf, wk, bias, oh, p, L);
    // The last rows together too (a 7x7 or 14x14 plane would otherwise end with lone rows).
    switch (p.oh - oh) {
#define CNNX_ROWS(r)                                                            \
  case r:                                                                       \
    output_rows<T, r, 1>(out + oh * p.ow, buf, wk, bias, oh, p, L);             \
    return;
      CNNX_ROWS(1) CNNX_ROWS(2) CNNX_ROWS(3) CNNX_ROWS(4) CNNX_ROWS(5) CNNX_ROWS(6) CNNX_ROWS(7)
#undef CNNX_ROWS
      default: return;
    }
  }
  if (vecs == 2)
    for (; oh + 4 <= p.oh; oh += 4) output_rows<T, 4, 2>(out + oh * p.ow, buf, wk, bias, oh, p, L);
  else if (vecs <= 4)
    for (; oh + 2 <= p.oh; oh += 2) output_rows<T, 2, 4>(out + oh * p.ow, buf, wk, bias, oh, p, L);
  for (; oh < p.oh; ++oh) output_rows<T, 1, 8>(out + oh * p.ow, buf, wk, bias, oh, p, L);
}

// ---------------------------------------------------------------------------------------------
// Flat kernels (cpu/flat_plan.h): a plane as one run of values.

// Strided dx gathers 9 taps per vector of which about a quarter of the lanes are live: faster than
// the row kernels' scatter only on small planes (14x14: 1.4x; 28x28: 0.87x).
constexpr int64_t kGatherDxMaxPlane = 16 * 16;

inline bool flat_applies(const Conv2dParams& p) {
  return p.kh * p.kw <= 25 && (shift_applies(p) || p.h * p.w <= kGatherMaxPlane);
}

// Vectors [v0, v0 + NB) of P output planes (of one plan): P x NB independent accumulators over the
// taps. NT: the tap count when known at compile time (0: F.ntaps), so that the NB masks of a tap are
// fixed offsets from one pointer (a runtime stride cost a register per vector and spilled the loop).
// P = 2 pairs planes of at most 4 vectors (7x7), whose 4 chains alone would wait on the FMA latency.
template <class T, bool G, int NB, int NT, int P>
CNNX_INLINE void flat_block(T* const* out, const T* const* x, const T* const* wk, const T* bias, int64_t v0,
                            const FlatPlan& F) {
  using V = simd::Vec<T>;
  constexpr int64_t W = V::width;
  const int64_t ntaps = NT ? NT : F.ntaps;
  typename V::reg acc[P][NB];
  for (int i = 0; i < P; ++i)
    for (int b = 0; b < NB; ++b) acc[i][b] = V::zero();
  const std::uint32_t* m0 = F.mask.data() + v0 * ntaps;
  for (int64_t q = 0; q < ntaps; ++q) {
    const std::uint32_t* m = m0 + q;
    for (int i = 0; i < P; ++i) {
      const typename V::reg wv = V::set1(wk[i][q]);
      if constexpr (G) {
        for (int b = 0; b < NB; ++b)
          acc[i][b] = V::fmadd(wv, flat_load<T, G>(x[i], v0 + b, q, m[b * ntaps], F), acc[i][b]);
      } else {  // one shifted run: vector b of tap q at a fixed offset from xq
        const T* xq = shifted(x[i], v0 * W + F.off[q]);
        for (int b = 0; b < NB; ++b)
          acc[i][b] = V::fmadd(wv, V::load_lanes(shifted(xq, b * W), m[b * ntaps]), acc[i][b]);
      }
    }
  }
  for (int i = 0; i < P; ++i) {
    const typename V::reg vb = V::set1(bias[i]);
    for (int b = 0; b < NB; ++b) {
      const int64_t at = (v0 + b) * W;
      if (at + W <= F.hw)
        V::store(out[i] + at, V::add(acc[i][b], vb));
      else
        V::store_partial(out[i] + at, V::add(acc[i][b], vb), int(F.hw - at));
    }
  }
}

// P whole output planes: 8 vectors at a time, then the rest in one narrower block (P == 2: planes
// of at most 4 vectors, one block).
template <class T, bool G, int NT, int P>
void flat_planes_taps(T* const* out, const T* const* x, const T* const* wk, const T* bias, const FlatPlan& F) {
  int64_t v = 0;
  if constexpr (P == 1)
    for (; v + 8 <= F.vecs; v += 8) flat_block<T, G, 8, NT, P>(out, x, wk, bias, v, F);
  switch (F.vecs - v) {
#define CNNX_FLAT(n)                                                             \
  case n:                                                                        \
    if constexpr (P * n <= 8) flat_block<T, G, n, NT, P>(out, x, wk, bias, v, F); \
    break;
    CNNX_FLAT(1) CNNX_FLAT(2) CNNX_FLAT(3) CNNX_FLAT(4) CNNX_FLAT(5) CNNX_FLAT(6) CNNX_FLAT(7)
#undef CNNX_FLAT
    default: break;
  }
}

// 3x3 and 5x5 kernels (every depthwise layer of the seed's models) with their tap count fixed.
template <class T, bool G, int P = 1>
void flat_planes(T* const* out, const T* const* x, const T* const* wk, const T* bias, const FlatPlan& F) {
  if (F.ntaps == 9) return flat_planes_taps<T, G, 9, P>(out, x, wk, bias, F);
  if (F.ntaps == 25) return flat_planes_taps<T, G, 25, P>(out, x, wk, bias, F);
  flat_planes_taps<T, G, 0, P>(out, x, wk, bias, F);
}

template <class T, bool G>
void flat_plane(T* out, const T* x, const T* wk, T bias, const FlatPlan& F) {
  flat_planes<T, G>(&out, &x, &wk, &bias, F);
}

template <class T, bool G>
void flat_forward(T* y, const T* x, const T* w, const T* bias, const Conv2dParams& p, const FlatPlan& F) {
  const int64_t mult = p.k / p.c;
  parallel::region(get_num_threads(), [&](int tid, int nt) {
    const parallel::Range planes = parallel::split(p.n * p.c, tid, nt);
    int64_t nc = planes.begin;
    if (mult == 1 && F.vecs <= 4)  // small planes in pairs (output plane nc reads input plane nc)
      for (; nc + 2 <= planes.end; nc += 2) {
        T* out[2] = {y + nc * F.hw, y + (nc + 1) * F.hw};
        const T* in[2] = {x + nc * p.h * p.w, x + (nc + 1) * p.h * p.w};
        const T* wk[2] = {w + nc % p.c * F.ntaps, w + (nc + 1) % p.c * F.ntaps};
        const T b[2] = {bias ? bias[nc % p.c] : T(0), bias ? bias[(nc + 1) % p.c] : T(0)};
        flat_planes<T, G, 2>(out, in, wk, b, F);
      }
    for (; nc < planes.end; ++nc) {
      const int64_t n = nc / p.c, c = nc % p.c;
      for (int64_t m = 0; m < mult; ++m) {
        const int64_t k = c * mult + m;
        flat_plane<T, G>(y + (n * p.k + k) * F.hw, x + nc * p.h * p.w, w + k * F.ntaps, bias ? bias[k] : T(0), F);
      }
    }
  });
}

// acc[q] += gv * tap q's inputs under vector v.
template <class T, bool G, int NT>
CNNX_INLINE void flat_weight_step(typename simd::Vec<T>::reg (&acc)[NT], typename simd::Vec<T>::reg gv, const T* xp,
                                  const T* const (&xq)[NT], int64_t v, const FlatPlan& F) {
  using V = simd::Vec<T>;
  const std::uint32_t* m = F.mask.data() + v * NT;
  if constexpr (!G) {
    if (F.whole[v]) {  // inside the plane for every tap: plain loads (most vectors of a large plane)
      for (int q = 0; q < NT; ++q) acc[q] = V::fmadd(gv, V::load(xq[q] + v * V::width), acc[q]);
      return;
    }
  }
  for (int q = 0; q < NT; ++q)
    acc[q] = V::fmadd(gv, G ? flat_load<T, G>(xp, v, q, m[q], F) : V::load_lanes(shifted(xq[q], v * V::width), m[q]),
                      acc[q]);
}

// One image's plane of channel k into its running sums: NT vectors at sums (one per tap, lanes
// kept apart), loaded, advanced over the plane's vectors in order, and stored back.
template <class T, bool G, int NT>
void flat_weight_plane(T* sums, const T* xp, const T* g, const FlatPlan& F) {
  using V = simd::Vec<T>;
  constexpr int64_t W = V::width;
  typename V::reg acc[NT];
  for (int q = 0; q < NT; ++q) acc[q] = V::load(sums + q * W);
  const T* xq[NT];
  if constexpr (!G)
    for (int q = 0; q < NT; ++q) xq[q] = shifted(xp, F.off[q]);
  // Whole vectors, then the partial last one. One loop with both loads kept every sum on the stack
  // (stored after each FMA) to merge its two paths.
  const int64_t full = F.hw / W;
  for (int64_t v = 0; v < full; ++v) flat_weight_step<T, G, NT>(acc, V::load(g + v * W), xp, xq, v, F);
  if (full < F.vecs) flat_weight_step<T, G, NT>(acc, V::load_partial(g + full * W, int(F.hw - full * W)), xp, xq, full, F);
  for (int q = 0; q < NT; ++q) V::store(sums + q * W, acc[q]);
}

// *sum += the n values at g, by lane: four rotating accumulators (one chain of adds would wait on
// each add), folded in a fixed order.
template <class T>
CNNX_INLINE void add_plane(T* sum, const T* g, int64_t n) {
  using V = simd::Vec<T>;
  constexpr int64_t W = V::width;
  typename V::reg acc[4] = {V::zero(), V::zero(), V::zero(), V::zero()};
  int64_t o = 0;
  for (; o + 4 * W <= n; o += 4 * W)
    for (int a = 0; a < 4; ++a) acc[a] = V::add(acc[a], V::load(g + o + a * W));
  for (int a = 0; o < n; o += W, ++a) acc[a] = V::add(acc[a], o + W <= n ? V::load(g + o) : V::load_partial(g + o, int(n - o)));
  V::store(sum, V::add(V::load(sum), V::add(V::add(acc[0], acc[1]), V::add(acc[2], acc[3]))));
}

// dw: each thread owns a range of channels and sums them over the images in order, image by image
// across its channels (so x and dy are read in memory order; channel by channel, image after
// image, a 7x7 layer at batch 32 read 32 scattered 196-byte planes per channel and ran at a tenth
// of the bandwidth). The running sums (NT vectors per output channel) wait in the thread's
// workspace between images; plane(sums, x plane, dy plane) advances one channel's by one image. The
// lanes are reduced once at the end, in a fixed order. With db, the bias gradient comes along: the
// dy plane just read (in L1) is summed into a running vector of its own (a separate pass over dy
// would read it from memory again).
template <class T, int NT, class Plane>
void weight_in_image_order(T* dw, T* db, const T* x, const T* dy, const Conv2dParams& p, Plane plane) {
  using V = simd::Vec<T>;
  constexpr int64_t W = V::width;
  const int64_t mult = p.k / p.c;
  parallel::region(get_num_threads(), [&](int tid, int nt) {
    const parallel::Range chans = parallel::split(p.c, tid, nt);
    if (chans.begin >= chans.end) return;
    const int64_t ks = (chans.end - chans.begin) * mult;  // my output channels, from chans.begin * mult
    const int64_t per = (NT + (db ? 1 : 0)) * W;           // running sums per channel: NT taps [, bias]
    T* sums = workspace_as<T>(kPlaneSlot, ks * per);
    std::fill(sums, sums + ks * per, T(0));
    for (int64_t n = 0; n < p.n; ++n)
      for (int64_t c = chans.begin; c < chans.end; ++c)
        for (int64_t m = 0; m < mult; ++m) {
          const int64_t k = c * mult + m;
          T* s = sums + (k - chans.begin * mult) * per;
          const T* g = dy + (n * p.k + k) * p.oh * p.ow;
          plane(s, x + (n * p.c + c) * p.h * p.w, g);
          if (db) add_plane(s + NT * W, g, p.oh * p.ow);
        }
    for (int64_t u = 0; u < ks; ++u) {
      for (int q = 0; q < NT; ++q) dw[(chans.begin * mult + u) * NT + q] = V::reduce_add(V::load(sums + u * per + q * W));
      if (db) db[chans.begin * mult + u] = V::reduce_add(V::load(sums + u * per + NT * W));
    }
  });
}

template <class T, bool G, int NT>
void flat_weight(T* dw, T* db, const T* x, const T* dy, const Conv2dParams& p, const FlatPlan& F) {
  weight_in_image_order<T, NT>(dw, db, x, dy, p, [&](T* sums, const T* xp, const T* g) {
    flat_weight_plane<T, G, NT>(sums, xp, g, F);
  });
}

template <class T, bool G>
bool flat_backward_weight(T* dw, T* db, const T* x, const T* dy, const Conv2dParams& p, const FlatPlan& F) {
  const int64_t ntaps = p.kh * p.kw;
  if (ntaps != 9 && ntaps != 25) return false;  // register-resident sums for 3x3 and 5x5 only
  if (ntaps == 9)
    flat_weight<T, G, 9>(dw, db, x, dy, p, F);
  else
    flat_weight<T, G, 25>(dw, db, x, dy, p, F);
  return true;
}

// ---------------------------------------------------------------------------------------------
// Row-vector kernels: small stride-1 planes under a "same" K x K kernel (K = 3 or 5, padding K/2,
// no dilation, one output channel per input channel): MobileNet's 14x14 and 7x7 layers.
//
// A row of such a plane fits in one vector with K/2 lanes to spare, and on narrow planes (7x7 float
// on AVX-512) G = 2 planes share a vector, each in a slot of width/G lanes: its row in the first W
// lanes, zeros after. Each input row is loaded once and slid sideways K ways (copy j holds input
// column c + j - K/2 in lane c, zeros sliding in at the ends; a slot's spare lanes are the padding
// of both its own row end and the next slot's row start). The K x K slid copies of the K rows under
// an output row stay in registers, rolling down the plane a row at a time, so tap (i, j) of output
// row oh is the register win[i][j], with no load at all. The flat kernels mask and split-load every
// tap of every vector instead (no vector of a 7x7 or 14x14 plane is clear of the row ends).
// Measured (one thread, 32 images): forward 7x7x1024 35 -> 24 ns a plane, 14x14x512 100 -> 60;
// slid rows in an aligned buffer instead of registers were 10-25% slower. Taps are added in the
// reference's order, from zero, then the bias: the flat kernels' sums, bit for bit.

// K, or 0 where the row-vector kernels do not apply.
inline int row_vector_k(const Conv2dParams& p) {
  const bool same = p.kh == p.kw && (p.kh == 3 || p.kh == 5) && p.pad_h == p.kh / 2 && p.pad_w == p.kw / 2;
  return same && p.k == p.c && p.stride_h == 1 && p.stride_w == 1 && p.dil_h == 1 && p.dil_w == 1 ? int(p.kh) : 0;
}

// G, the planes per vector (1 or 2), or 0 where a row does not fit.
template <class T>
int row_vector_planes(const Conv2dParams& p) {
  constexpr int64_t W = simd::Vec<T>::width;
  const int64_t need = p.w + p.kw / 2;
  return 2 * need <= W ? 2 : need <= W ? 1 : 0;
}

// Lanes of slot g's row.
template <class T, int G>
CNNX_INLINE std::uint32_t slot_lanes(int64_t w, int g) {
  return ((1u << w) - 1u) << (g * (simd::Vec<T>::width / G));
}

// A K x K register window rolling down the rows of a plane: at output row oh, tap(i, j) is copy j
// of input row oh + i - K/2. Rows::put(dst, r) makes the K copies of row r (zero outside the plane);
// the row-vector kernels slide a row in registers, the strip kernels load it shifted. The window is
// a ring (row r in slot r mod K) and walk() unrolls the rows K at a time, so every slot is a fixed
// register: a new row is made once and never moved. Measured (one thread, 7x7x1024 forward): the
// rolling copy (K*(K-1) register moves a row) and the per-row bookkeeping cost 30-40% of the time.
template <class T, int K, class Rows>
struct Window {
  using R = typename simd::Vec<T>::reg;
  R s[K][K];
  Rows rows;

  CNNX_INLINE explicit Window(const Rows& r) : rows(r) {}

  // Calls body(oh, tap) for oh = 0, 1, ..., h - 1 in turn. Ring = false keeps row oh + i - K/2 in
  // s[i], moving the window up a row at a time: for the K = 5 forward, whose 25 weights and 25
  // window registers do not fit in 32, the unrolled ring spilled worse (25% slower).
  template <bool Ring = true, class Body>
  CNNX_INLINE void walk(int64_t h, Body&& body) {
    if constexpr (!Ring) {
      for (int i = 1; i < K; ++i) rows.put(s[i], i - 1 - K / 2);
      for (int64_t oh = 0; oh < h; ++oh) {
        for (int i = 0; i + 1 < K; ++i)
          for (int j = 0; j < K; ++j) s[i][j] = s[i + 1][j];
        rows.put(s[K - 1], oh + K / 2);
        body(oh, [this](int i, int j) -> R { return s[i][j]; });
      }
      return;
    }
    for (int i = 0; i + 1 < K; ++i) rows.put(s[i], i - K / 2);  // rows -K/2 .. K/2 - 1, oh = 0's ring
    int64_t oh = 0;
    for (; oh + K <= h; oh += K) round(oh, body, std::make_integer_sequence<int, K>());
    // The last h mod K rows each on a window of their own: going on with the ring after the loop
    // (its slots then depend on h) makes the compiler keep it, and the caller's sums, in memory.
    for (; oh < h; ++oh) {
      R t[K][K];
      for (int i = 0; i < K; ++i) rows.put(t[i], oh + i - K / 2);
      body(oh, [&t](int i, int j) -> R { return t[i][j]; });
    }
  }

 private:
  template <class Body, int... P>
  CNNX_INLINE void round(int64_t oh, Body& body, std::integer_sequence<int, P...>) {
    (step<P>(oh + P, body), ...);
  }
  // Output row oh, with oh = P mod K: row oh + i - K/2 is in slot (P + i) mod K.
  template <int P, class Body>
  CNNX_INLINE void step(int64_t oh, Body& body) {
    rows.put(s[(P + K - 1) % K], oh + K / 2);  // over row oh - 1 - K/2, now done with
    body(oh, [this](int i, int j) -> R { return s[(P + i) % K][j]; });
  }
};

// Rows of G planes (each h x w) for the row-vector kernels: copy j of row r is the row slid by K/2 - j.
// Clean: every lane outside the slots' rows zero, as the weight gradient needs (dy's zero lanes
// meet these there, and zero times an Inf is NaN). The forward needs no cleaning: a lane past a row's
// end (its last values slid there) is read only by output lanes that are dropped, and a slot's first
// lane reads the previous slot's spare lanes, which only zeros reach (w + K/2 <= slot width).
template <class T, int K, int G, bool Clean>
struct SlidRows {
  using V = simd::Vec<T>;
  using R = typename V::reg;
  static constexpr int64_t SLOT = V::width / G;

  CNNX_INLINE SlidRows(const T* const* planes, int64_t h, int64_t w) : h_(h), w_(w) {
    for (int g = 0; g < G; ++g) in_[g] = planes[g], lanes_[g] = slot_lanes<T, G>(w, g), all_ |= lanes_[g];
  }
  CNNX_INLINE void put(R (&dst)[K], int64_t r) const {
    R row = V::zero();
    if (r >= 0 && r < h_) {
      row = V::load_lanes(in_[0] + r * w_, lanes_[0]);
      if constexpr (G == 2) row = V::blend_lanes(row, V::load_lanes(shifted(in_[1] + r * w_, -SLOT), lanes_[1]), lanes_[1]);
    }
    slide_all(dst, row, std::make_index_sequence<K>());
  }

 private:
  template <std::size_t... J>
  CNNX_INLINE void slide_all(R (&dst)[K], R row, std::index_sequence<J...>) const {
    if constexpr (Clean)
      ((dst[J] = V::blend_lanes(V::zero(), V::template slide<K / 2 - int(J)>(row), all_)), ...);
    else
      ((dst[J] = V::template slide<K / 2 - int(J)>(row)), ...);
  }
  const T* in_[G];
  int64_t h_, w_;
  std::uint32_t lanes_[G], all_ = 0;
};

// The 3x3 stride-1 kernels' scatter form, for ISAs with 16 vector registers (AVX2). The window form
// sums each output row in one chain of 9 FMAs from 9 window registers and 9 weights: on 16 registers
// it keeps the weights and masks in memory, and its chains (36 cycles of latency each) left the FMA
// units idle most of the time (14 cycles an output vector on Zen 3). Here each input row is still
// loaded once per kernel column, but each load goes to the three outputs it belongs to: row r is
// kernel row 2 of output r - 1 (which it completes), row 1 of output r and row 0 of output r + 1
// (which it starts). 9 weights, 3 sums and the load fit in 16 registers, three chains are in flight,
// and every sum still takes its taps in the reference's (i, j) order from zero, padding as zeros:
// the window form's bits. Rows: load(r, j), copy j of input row r (its columns shifted by j - 1, zero
// outside the plane); store(oh, sum), which adds the bias; step(), once per input row after the first.
template <class T, class Rows>
CNNX_INLINE void scatter_3x3(const typename simd::Vec<T>::reg (&wv)[9], int64_t h, Rows& rows) {
  using V = simd::Vec<T>;
  using R = typename V::reg;
  R a, b = V::zero(), c = V::zero();  // output 0's kernel row 0 is padding: zero, exactly
  for (int j = 0; j < 3; ++j) {
    const R v = rows.load(0, j);
    b = V::fmadd(wv[3 + j], v, b);
    c = V::fmadd(wv[j], v, c);
  }
  a = b, b = c;  // before row r: a holds output r - 1 (kernel rows 0, 1 done), b output r (row 0 done)
  for (int64_t r = 1; r < h; ++r) {
    rows.step();
    c = V::zero();
    for (int j = 0; j < 3; ++j) {
      const R v = rows.load(r, j);
      a = V::fmadd(wv[6 + j], v, a);
      b = V::fmadd(wv[3 + j], v, b);
      c = V::fmadd(wv[j], v, c);
    }
    rows.store(r - 1, a);
    a = b, b = c;
  }
  for (int j = 0; j < 3; ++j) a = V::fmadd(wv[6 + j], V::zero(), a);  // the padding row under the plane
  rows.store(h - 1, a);
}

// The row-vector Rows for scatter_3x3 (G == 1): copy j of a row is a load one column before or after
// it, the lanes that would read outside the row masked off (the same lanes as SlidRows' slides, so
// the same values in every lane). The stores spill into the plane's next rows, stored later, as in
// row_vector_group, and past the plane's last row into the next plane where that comes after this
// one on the same thread (spill_end). For scatter_3x3_weight, m[j] also drops the lanes past the row.
template <class T>
std::uint32_t scatter_row_lanes(int64_t w, int j, bool clean) {  // lanes l with 0 <= l + j - 1 < w [and l < w]
  const std::uint32_t row = slot_lanes<T, 1>(w, 0);
  return (row << 1 >> j) & (clean ? row : (std::uint32_t(1) << simd::Vec<T>::width) - 1u);
}

template <class T>
struct ScatterPlaneRows {
  using V = simd::Vec<T>;
  using R = typename V::reg;
  const T* in;
  T* out;
  int64_t h, w;
  std::uint32_t m[3], lanes;
  R vb;
  bool spill_end;

  const T* g = nullptr;  // dy plane, for the weight gradient

  CNNX_INLINE R load(int64_t r, int j) const { return V::load_lanes(shifted(in, r * w + j - 1), m[j]); }
  CNNX_INLINE R grad(int64_t oh) const { return V::load_lanes(g + oh * w, lanes); }
  CNNX_INLINE void store(int64_t oh, R sum) {
    if (spill_end || oh * w + V::width <= h * w)
      V::store(out + oh * w, V::add(sum, vb));
    else
      V::store_lanes(out + oh * w, V::add(sum, vb), lanes);
  }
  CNNX_INLINE void step() {}
};

// The weight gradient's scatter form (16 registers): tap (i, j) sums dy row oh times copy j of input
// row oh + i - 1. Walked by input row, copy j of row r goes to taps (0, j), (1, j) and (2, j) times dy
// rows r + 1, r and r - 1, which stay in registers: 9 sums, 3 dy rows and the load (the window
// form's 9 sums and 9 window registers spilled). Each sum still adds its products with dy's rows in
// order, the window form's bits; only the products with the padding rows (zeros) are left out: a sum
// that starts at +0 never becomes -0, so adding +-0 changes no bit, and an Inf in dy no longer meets
// a padding zero (NaN), as in the reference. Rows: load(r, j) as for scatter_3x3 but zero on every
// lane outside the row; grad(oh), dy row oh, zero outside it; step() once per input row. Db: the dy
// rows summed too, in order, into db (with Db).
template <class T, bool Db, class Rows>
CNNX_INLINE void scatter_3x3_weight(typename simd::Vec<T>::reg* acc, typename simd::Vec<T>::reg& db, int64_t h,
                                    Rows& rows) {
  using V = simd::Vec<T>;
  using R = typename V::reg;
  R before = V::zero(), here = rows.grad(0), after = V::zero();
  if constexpr (Db) db = V::add(db, here);
  auto row = [&](int64_t r, auto up, auto down) {  // up: dy row r - 1 exists; down: dy row r + 1
    rows.step();
    if constexpr (decltype(down)::value) {
      after = rows.grad(r + 1);
      if constexpr (Db) db = V::add(db, after);
    }
    for (int j = 0; j < 3; ++j) {
      const R v = rows.load(r, j);
      if constexpr (decltype(down)::value) acc[j] = V::fmadd(after, v, acc[j]);
      acc[3 + j] = V::fmadd(here, v, acc[3 + j]);
      if constexpr (decltype(up)::value) acc[6 + j] = V::fmadd(before, v, acc[6 + j]);
    }
    before = here, here = after;
  };
  using Yes = std::true_type;
  using No = std::false_type;
  if (h == 1) return row(0, No(), No());
  row(0, No(), Yes());
  for (int64_t r = 1; r + 1 < h; ++r) row(r, Yes(), Yes());
  row(h - 1, Yes(), No());
}

// The G lanes-blocks of a vector: v0 on slot 0's lanes, v1 on slot 1's (G == 2).
template <class T, int G>
CNNX_INLINE typename simd::Vec<T>::reg per_slot(T v0, T v1) {
  using V = simd::Vec<T>;
  constexpr int64_t W = V::width;
  if constexpr (G == 1) return V::set1(v0);
  else return V::blend_lanes(V::set1(v0), V::set1(v1), ((1u << W) - 1u) & ~((1u << (W / 2)) - 1u));
}

// G whole output planes from G input planes (weights wk[g], biases b[g]). Each output row is one
// chain of K*K FMAs; consecutive rows are independent, and the out-of-order core overlaps them.
// Inlined into the loop over planes: as a call per pair of 7x7 planes it ran 4-10% slower
// (7x7x1024 at batch 32), the call's entry and exit breaking the overlap between pairs.
template <class T, int K, int G>
CNNX_INLINE void row_vector_group(T* const* out, const T* const* in, const T* const* wk, const T* b, const Conv2dParams& p) {
  using V = simd::Vec<T>;
  constexpr int64_t SLOT = V::width / G;
  typename V::reg wv[K * K];
  for (int q = 0; q < K * K; ++q) wv[q] = per_slot<T, G>(wk[0][q], wk[G - 1][q]);
  const typename V::reg bias = per_slot<T, G>(b[0], b[G - 1]);
  std::uint32_t lanes[G];
  T* o[G];  // slot g's output plane, shifted to its lanes
  for (int g = 0; g < G; ++g) lanes[g] = slot_lanes<T, G>(p.w, g), o[g] = shifted(out[g], -g * SLOT);
  const int64_t w = p.w;
  Window<T, K, SlidRows<T, K, G, false>> win({in, p.h, p.w});
  win.template walk<K == 3>(p.h, [&](int64_t oh, const auto& tap) {
    typename V::reg acc = V::zero();
    for (int i = 0; i < K; ++i)
      for (int j = 0; j < K; ++j) acc = V::fmadd(wv[i * K + j], tap(i, j), acc);
    acc = V::add(acc, bias);
    // One plane: a whole vector that ends inside the plane spills only into later rows, which walk()
    // stores after this one (it visits the rows in order), overwriting the spill. A masked store is microcoded on AMD's Zen 2/3, and
    // 7x7 planes on AVX2 (7 of 8 lanes) ran 1.4x faster this way.
    if (G == 1 && oh * w + V::width <= p.h * w)
      V::store(o[0] + oh * w, acc);
    else
      for (int g = 0; g < G; ++g) V::store_lanes(o[g] + oh * w, acc, lanes[g]);
  });
}

template <class T, int K>
void row_vector_forward(T* y, const T* x, const T* w, const T* bias, const Conv2dParams& p) {
  const int64_t hw = p.h * p.w;
  const int g = row_vector_planes<T>(p);
  parallel::region(get_num_threads(), [&](int tid, int nt) {
    const parallel::Range planes = parallel::split(p.n * p.c, tid, nt);
    int64_t nc = planes.begin, c = nc % p.c;
    auto next = [&](int64_t ch) { return ch + 1 == p.c ? 0 : ch + 1; };
    if (g == 2)
      for (; nc + 2 <= planes.end; nc += 2, c = next(next(c))) {
        T* out[2] = {y + nc * hw, y + (nc + 1) * hw};
        const T* in[2] = {x + nc * hw, x + (nc + 1) * hw};
        const T* wk[2] = {w + c * K * K, w + next(c) * K * K};
        const T b[2] = {bias ? bias[c] : T(0), bias ? bias[next(c)] : T(0)};
        row_vector_group<T, K, 2>(out, in, wk, b, p);
      }
    for (; nc < planes.end; ++nc, c = next(c)) {
      T* out = y + nc * hw;
      const T* in = x + nc * hw;
      const T* wk = w + c * K * K;
      const T b = bias ? bias[c] : T(0);
      if constexpr (K == 3 && simd::kVectorRegisters < 32) {
        using V = simd::Vec<T>;
        typename V::reg wv[9];
        for (int q = 0; q < 9; ++q) wv[q] = V::set1(wk[q]);
        ScatterPlaneRows<T> rows{in, out, p.h, p.w, {}, slot_lanes<T, 1>(p.w, 0), V::set1(b), nc + 1 < planes.end};
        for (int j = 0; j < 3; ++j) rows.m[j] = scatter_row_lanes<T>(p.w, j, false);
        scatter_3x3<T>(wv, p.h, rows);
      } else {
        row_vector_group<T, K, 1>(&out, &in, &wk, &b, p);
      }
    }
  });
}

// dw (and db) on the same windows: dw[c, i, j] += dy row oh (of G channels side by side) times
// win[i][j], K*K running sums per group of G channels (slot g's lanes hold channel G*m + g's) and
// one more for db, the images in order. Both factors are zero on every lane outside a slot's row,
// so nothing there reaches a sum. Threads split whole groups, and a channel always sits in the same
// slot, so the bits do not depend on the thread count.
template <class T, int K, int G>
void row_vector_weight(T* dw, T* db, const T* x, const T* dy, const Conv2dParams& p) {
  using V = simd::Vec<T>;
  constexpr int64_t W = V::width, SLOT = W / G, Q = K * K + 1;  // K*K taps, then the bias
  const int64_t hw = p.h * p.w, groups = (p.c + G - 1) / G, w = p.w;
  const std::uint32_t lanes0 = slot_lanes<T, G>(w, 0), lanes1 = slot_lanes<T, G>(w, G - 1);
  parallel::region(get_num_threads(), [&](int tid, int nt) {
    const parallel::Range mine = parallel::split(groups, tid, nt);
    if (mine.begin >= mine.end) return;
    T* sums = workspace_as<T>(kPlaneSlot, (mine.end - mine.begin) * Q * W);
    std::fill(sums, sums + (mine.end - mine.begin) * Q * W, T(0));
    for (int64_t n = 0; n < p.n; ++n)
      for (int64_t m = mine.begin; m < mine.end; ++m) {
        const int64_t c0 = m * G, c1 = std::min(c0 + G - 1, p.c - 1);  // a lone last channel fills both slots
        const T* in[2] = {x + (n * p.c + c0) * hw, x + (n * p.c + c1) * hw};
        const T* g0 = dy + (n * p.c + c0) * hw;
        const T* g1 = dy + (n * p.c + c1) * hw;
        T* s = sums + (m - mine.begin) * Q * W;
        typename V::reg acc[Q];
        for (int q = 0; q < Q; ++q) acc[q] = V::load(s + q * W);
        if constexpr (K == 3 && G == 1 && simd::kVectorRegisters < 32) {
          ScatterPlaneRows<T> rows{in[0], nullptr, p.h, w, {}, lanes0, V::zero(), false, g0};
          for (int j = 0; j < 3; ++j) rows.m[j] = scatter_row_lanes<T>(w, j, true);
          typename V::reg sum_db = acc[9];
          if (db)
            scatter_3x3_weight<T, true>(acc, sum_db, p.h, rows);
          else
            scatter_3x3_weight<T, false>(acc, sum_db, p.h, rows);
          acc[9] = sum_db;
          for (int q = 0; q < Q; ++q) V::store(s + q * W, acc[q]);
          continue;
        }
        Window<T, K, SlidRows<T, K, G, true>> win({in, p.h, p.w});
        win.walk(p.h, [&](int64_t oh, const auto& tap) {
          typename V::reg gv = V::load_lanes(g0 + oh * w, lanes0);
          if constexpr (G == 2) gv = V::blend_lanes(gv, V::load_lanes(shifted(g1 + oh * w, -SLOT), lanes1), lanes1);
          for (int i = 0; i < K; ++i)
            for (int j = 0; j < K; ++j) acc[i * K + j] = V::fmadd(gv, tap(i, j), acc[i * K + j]);
          if (db) acc[K * K] = V::add(acc[K * K], gv);
        });
        for (int q = 0; q < Q; ++q) V::store(s + q * W, acc[q]);
      }
    const typename V::reg zero = V::zero();
    for (int64_t m = mine.begin; m < mine.end; ++m)
      for (int g = 0; g < G && m * G + g < p.c; ++g) {
        const std::uint32_t lanes = ((1u << SLOT) - 1u) << (g * SLOT);
        auto sum = [&](int q) { return V::reduce_add(V::blend_lanes(zero, V::load(sums + ((m - mine.begin) * Q + q) * W), lanes)); };
        for (int q = 0; q < K * K; ++q) dw[(m * G + g) * K * K + q] = sum(q);
        if (db) db[m * G + g] = sum(K * K);
      }
  });
}

// ---------------------------------------------------------------------------------------------
// Strip kernels: the same layers on planes too wide for a row per vector (MobileNet's 112x112,
// 56x56 and 28x28 layers). The plane is cut into strips one vector wide, and each strip is walked
// down the rows with the row-vector kernels' window: the K shifted copies of each new input row are
// K loads (masked at the plane's edges, so lanes outside the plane, or past the last column, are
// zero), after which the K x K taps of an output row are registers. The flat kernels load all K*K
// taps of every output vector instead (9 loads, most of them split across cache lines, per 9 FMAs).
template <class T, int K>
struct Strip {
  using V = simd::Vec<T>;
  using R = typename V::reg;
  static constexpr int64_t W = V::width;
  std::uint32_t in[K], out;  // lanes of shifted copy j inside the plane; lanes of real outputs
  int64_t c0;                // the strip's first column

  Strip(int64_t first_column, int64_t w) : c0(first_column) {
    out = 0;
    for (int64_t l = 0; l < W; ++l)
      if (c0 + l < w) out |= 1u << l;
    for (int j = 0; j < K; ++j) {
      in[j] = 0;
      for (int64_t l = 0; l < W; ++l) {
        const int64_t col = c0 + l + j - K / 2;
        if (c0 + l < w && col >= 0 && col < w) in[j] |= 1u << l;
      }
    }
  }
};

// The strips of a w-wide plane, made once per call (their masks take a loop over the lanes).
// Overlap (for kernels that store each output once, not sums): a last strip that would be partial
// starts at w - W instead, so it stores whole vectors, its first columns again with the same bits.
// AVX2 has no cheap masked store (microcoded on AMD's Zen 2/3): 14x14 planes, half of whose stores
// were masked, ran 1.4x faster this way.
template <class T, int K>
std::vector<Strip<T, K>> strips_of(int64_t w, bool overlap) {
  constexpr int64_t W = simd::Vec<T>::width;
  std::vector<Strip<T, K>> strips;
  for (int64_t c0 = 0; c0 < w; c0 += W) strips.emplace_back(overlap && c0 + W > w && w > W ? w - W : c0, w);
  return strips;
}

// Rows of one strip for the strip kernels: copy j of row r is its columns shifted by j - K/2, zero
// outside the plane (and on lanes past its last column).
template <class T, int K>
struct StripRows {
  using V = simd::Vec<T>;
  using R = typename V::reg;

  CNNX_INLINE StripRows(const T* plane, int64_t h, int64_t w, const Strip<T, K>& st) : x_(plane), h_(h), w_(w), st_(st) {}
  CNNX_INLINE void put(R (&dst)[K], int64_t r) const {
    const bool inside = r >= 0 && r < h_;
    const T* row = x_ + r * w_ + st_.c0 - K / 2;
    for (int j = 0; j < K; ++j) dst[j] = inside ? V::load_lanes(shifted(row, j), st_.in[j]) : V::zero();
  }

 private:
  const T* x_;
  int64_t h_, w_;
  const Strip<T, K>& st_;
};

// Walking a strip down the rows reads a plane column-wise, one cache line a row, which the hardware
// prefetchers follow badly when the plane comes from memory (at batch 8 the strips ran slower than
// the flat kernels). So the next planes are fetched ahead in memory order, a line per output row.
template <class T, int RW2>
struct PlaneAhead {
  const char* a;
  const char* b;
  int64_t off = 0, last;
  CNNX_INLINE PlaneAhead(const T* next, const T* next2, int64_t hw)
      : a(reinterpret_cast<const char*>(next)), b(reinterpret_cast<const char*>(next2)),
        last((hw - 1) * int64_t(sizeof(T))) {}
  // Branch-free (a branch in the row loop keeps the kernels' running sums in memory): past the
  // plane's end it fetches the last line again.
  CNNX_INLINE void step() {
    __builtin_prefetch(a + off);
    __builtin_prefetch(b + off, RW2);
    off = std::min(off + 64, last);
  }
};

template <class T, int K>
void strip_plane(T* out, const T* in, const T* wk, T bias, const std::vector<Strip<T, K>>& strips, const Conv2dParams& p) {
  using V = simd::Vec<T>;
  const int64_t hw = p.h * p.w, w = p.w;
  PlaneAhead<T, 1> ahead(in + hw, out + hw, hw);
  typename V::reg wv[K * K];
  for (int q = 0; q < K * K; ++q) wv[q] = V::set1(wk[q]);
  const typename V::reg vb = V::set1(bias);
  for (const Strip<T, K>& st : strips) {
    Window<T, K, StripRows<T, K>> win({in, p.h, p.w, st});
    T* o = out + st.c0;
    const std::uint32_t lanes = st.out;
    win.walk(p.h, [&](int64_t oh, const auto& tap) {
      ahead.step();
      typename V::reg acc = V::zero();
      for (int i = 0; i < K; ++i)
        for (int j = 0; j < K; ++j) acc = V::fmadd(wv[i * K + j], tap(i, j), acc);
      V::store_lanes(o + oh * w, V::add(acc, vb), lanes);
    });
  }
}

// The strips' Rows for scatter_3x3 and scatter_3x3_weight: the loads of kernel column j masked where
// Mask has bit j (columns past the plane's edge, or past its last column), dy's where it has bit 3,
// and the next planes fetched ahead as strip_plane does. The forward's strips overlap (strips_of), so
// its stores are whole.
template <class T, unsigned Mask, int RW2>
struct ScatterStripRows {
  using V = simd::Vec<T>;
  using R = typename V::reg;
  const T* row0;  // kernel column j of input row r: row0 + r*w + j
  int64_t w;
  const Strip<T, 3>& st;
  PlaneAhead<T, RW2>& ahead;
  T* out = nullptr;  // the forward's
  R vb{};
  const T* g = nullptr;  // the weight gradient's dy

  CNNX_INLINE R load(int64_t r, int j) const {
    const T* at = shifted(row0, r * w + j);
    return (Mask >> j) & 1u ? V::load_lanes(at, st.in[j]) : V::load(at);
  }
  CNNX_INLINE R grad(int64_t oh) const { return Mask & 8u ? V::load_lanes(g + oh * w, st.out) : V::load(g + oh * w); }
  CNNX_INLINE void store(int64_t oh, R sum) { V::store(out + oh * w, V::add(sum, vb)); }
  CNNX_INLINE void step() { ahead.step(); }
};

// Calls f(std::integral_constant<unsigned, Mask>) with the Mask of strip st (see ScatterStripRows);
// column 1 is masked only together with dy (a partial last strip of the weight gradient).
template <class T, class F>
CNNX_INLINE void with_strip_mask(const Strip<T, 3>& st, F&& f) {
  constexpr std::uint32_t all = (std::uint32_t(1) << simd::Vec<T>::width) - 1u;
  if (st.out != all) return f(std::integral_constant<unsigned, 15>());
  switch ((st.in[0] != all ? 1u : 0u) | (st.in[2] != all ? 4u : 0u)) {
    case 0: return f(std::integral_constant<unsigned, 0>());
    case 1: return f(std::integral_constant<unsigned, 1>());
    case 4: return f(std::integral_constant<unsigned, 4>());
    default: return f(std::integral_constant<unsigned, 5>());
  }
}

template <class T>
void scatter_plane(T* out, const T* in, const T* wk, T bias, const std::vector<Strip<T, 3>>& strips, const Conv2dParams& p) {
  using V = simd::Vec<T>;
  const int64_t hw = p.h * p.w;
  PlaneAhead<T, 1> ahead(in + hw, out + hw, hw);
  typename V::reg wv[9];
  for (int q = 0; q < 9; ++q) wv[q] = V::set1(wk[q]);
  const typename V::reg vb = V::set1(bias);
  for (const Strip<T, 3>& st : strips)
    with_strip_mask(st, [&](auto mask) {
      if constexpr (mask.value != 15) {  // the strips overlap: every output whole
        ScatterStripRows<T, mask.value, 1> rows{shifted(in, st.c0 - 1), p.w, st, ahead, out + st.c0, vb};
        scatter_3x3<T>(wv, p.h, rows);
      }
    });
}

template <class T, int K>
void strip_forward(T* y, const T* x, const T* w, const T* bias, const Conv2dParams& p) {
  const int64_t hw = p.h * p.w;
  const std::vector<Strip<T, K>> strips = strips_of<T, K>(p.w, true);
  parallel::region(get_num_threads(), [&](int tid, int nt) {
    const parallel::Range planes = parallel::split(p.n * p.c, tid, nt);
    for (int64_t nc = planes.begin; nc < planes.end; ++nc) {
      const int64_t c = nc % p.c;
      if constexpr (K == 3 && simd::kVectorRegisters < 32)
        scatter_plane<T>(y + nc * hw, x + nc * hw, w + c * 9, bias ? bias[c] : T(0), strips, p);
      else
        strip_plane<T, K>(y + nc * hw, x + nc * hw, w + c * K * K, bias ? bias[c] : T(0), strips, p);
    }
  });
}

// One image's plane into its K*K running sums (lanes kept apart) at sums.
template <class T, int K>
void strip_weight_plane(T* sums, const T* x, const T* g, const std::vector<Strip<T, K>>& strips, const Conv2dParams& p) {
  using V = simd::Vec<T>;
  constexpr int64_t W = V::width;
  typename V::reg acc[K * K];
  for (int q = 0; q < K * K; ++q) acc[q] = V::load(sums + q * W);
  const int64_t hw = p.h * p.w, w = p.w;
  PlaneAhead<T, 0> ahead(x + hw, g + hw, hw);
  for (const Strip<T, K>& st : strips) {
    Window<T, K, StripRows<T, K>> win({x, p.h, p.w, st});
    const T* gs = g + st.c0;
    const std::uint32_t lanes = st.out;
    win.walk(p.h, [&](int64_t oh, const auto& tap) {
      ahead.step();
      const typename V::reg gv = V::load_lanes(gs + oh * w, lanes);
      for (int i = 0; i < K; ++i)
        for (int j = 0; j < K; ++j) acc[i * K + j] = V::fmadd(gv, tap(i, j), acc[i * K + j]);
    });
  }
  for (int q = 0; q < K * K; ++q) V::store(sums + q * W, acc[q]);
}

// strip_weight_plane in scatter form (16 registers, K = 3).
template <class T>
void scatter_weight_plane(T* sums, const T* x, const T* g, const std::vector<Strip<T, 3>>& strips, const Conv2dParams& p) {
  using V = simd::Vec<T>;
  constexpr int64_t W = V::width;
  typename V::reg acc[9];
  for (int q = 0; q < 9; ++q) acc[q] = V::load(sums + q * W);
  const int64_t hw = p.h * p.w;
  PlaneAhead<T, 0> ahead(x + hw, g + hw, hw);
  for (const Strip<T, 3>& st : strips)
    with_strip_mask(st, [&](auto mask) {
      ScatterStripRows<T, mask.value, 0> rows{shifted(x, st.c0 - 1), p.w, st, ahead};
      rows.g = g + st.c0;
      typename V::reg no_db;
      scatter_3x3_weight<T, false>(acc, no_db, p.h, rows);
    });
  for (int q = 0; q < 9; ++q) V::store(sums + q * W, acc[q]);
}

template <class T, int K>
void strip_weight(T* dw, T* db, const T* x, const T* dy, const Conv2dParams& p) {
  const std::vector<Strip<T, K>> strips = strips_of<T, K>(p.w, false);
  weight_in_image_order<T, K * K>(dw, db, x, dy, p, [&](T* sums, const T* xp, const T* g) {
    if constexpr (K == 3 && simd::kVectorRegisters < 32)
      scatter_weight_plane<T>(sums, xp, g, strips, p);
    else
      strip_weight_plane<T, K>(sums, xp, g, strips, p);
  });
}

// dx of a 3x3, stride-2, padding-1 layer with one output channel per input channel (MobileNet's
// downsampling layers), gathered from dy with no scatter, no gather instructions and no padded
// copy. dx row ih takes kernel row 1 from dy row ih/2 when ih is even, and rows 0 and 2 from dy rows
// (ih+1)/2 and (ih-1)/2 when odd; within a row, the even columns 2b take kernel column 1 times dy[b],
// the odd columns 2b+1 columns 0 and 2 times dy[b+1] and dy[b]. Both classes are whole vectors over
// b, interleaved (zip) into the row. Taps are added in the reference's (i, j) order.
inline bool s2_3x3_applies(const Conv2dParams& p) {
  return p.k == p.c && p.kh == 3 && p.kw == 3 && p.stride_h == 2 && p.stride_w == 2 && p.pad_h == 1 &&
         p.pad_w == 1 && p.dil_h == 1 && p.dil_w == 1;
}

// One dy row's share of a block of dx columns: a = dy[b] and b1 = dy[b + 1] under kernel row k add
// k[1] * a to even column 2b, k[0] * b1 + k[2] * a to odd column 2b + 1.
template <class T>
CNNX_INLINE void s2_3x3_taps(typename simd::Vec<T>::reg& e, typename simd::Vec<T>::reg& o,
                             const typename simd::Vec<T>::reg* k, typename simd::Vec<T>::reg a,
                             typename simd::Vec<T>::reg b1) {
  using V = simd::Vec<T>;
  e = V::fmadd(k[1], a, e);
  o = V::fmadd(k[0], b1, o);
  o = V::fmadd(k[2], a, o);
}

// Columns [c0, c0 + 2W) of dx row `out` from NR dy rows d[r] (kernel rows k[r], in kernel-row order):
// the whole vectors of the interior, with no bounds to check.
template <class T, int NR>
CNNX_INLINE void s2_3x3_block(T* out, const T* const* d, const typename simd::Vec<T>::reg (*const* k), int64_t b0) {
  using V = simd::Vec<T>;
  constexpr int64_t W = V::width;
  typename V::reg e = V::zero(), o = V::zero();
  for (int r = 0; r < NR; ++r) s2_3x3_taps<T>(e, o, k[r], V::load(d[r] + b0), V::load(d[r] + b0 + 1));
  typename V::reg lo, hi;
  V::zip(e, o, lo, hi);
  V::store(out + 2 * b0, lo);
  V::store(out + 2 * b0 + W, hi);
}

template <class T>
void s2_3x3_plane(T* dx, const T* dy, const T* wk, const Conv2dParams& p) {
  using V = simd::Vec<T>;
  using R = typename V::reg;
  constexpr int64_t W = V::width;
  auto load_first = [](const T* a, int64_t n) {  // a[0, n), zero past n (n may be <= 0)
    return n >= W ? V::load(a) : n > 0 ? V::load_partial(a, int(n)) : V::zero();
  };
  R kv[3][3];  // the weights, broadcast once per plane
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) kv[i][j] = V::set1(wk[i * 3 + j]);
  const int64_t even = (p.w + 1) / 2;  // even columns of a dx row (<= OW)
  // Blocks [b0, b0 + W) whose loads (dy[b0, b0 + W + 1)) and stores (2W columns) are all whole.
  const int64_t whole = std::min({even, p.ow - 1, p.w / 2}) - W + 1;
  for (int64_t ih = 0; ih < p.h; ++ih) {
    int64_t ki[2], rows[2];  // (kernel row, dy row), in kernel-row order
    int nr = 0;
    if (ih % 2 == 0) {
      ki[nr] = 1, rows[nr++] = ih / 2;
    } else {
      if ((ih + 1) / 2 < p.oh) ki[nr] = 0, rows[nr++] = (ih + 1) / 2;
      ki[nr] = 2, rows[nr++] = (ih - 1) / 2;
    }
    T* out = dx + ih * p.w;
    const T* d[2] = {dy + rows[0] * p.ow, dy + rows[nr - 1] * p.ow};
    const R* k[2] = {kv[ki[0]], kv[ki[nr - 1]]};
    int64_t b0 = 0;
    if (nr == 1)
      for (; b0 < whole; b0 += W) s2_3x3_block<T, 1>(out, d, k, b0);
    else
      for (; b0 < whole; b0 += W) s2_3x3_block<T, 2>(out, d, k, b0);
    for (; b0 < even; b0 += W) {  // the rest, under bounds
      R e = V::zero(), o = V::zero();
      for (int r = 0; r < nr; ++r) {
        const R a = load_first(d[r] + b0, even - b0);          // dy[b]
        const R b = load_first(d[r] + b0 + 1, p.ow - 1 - b0);  // dy[b + 1], where b + 1 < OW
        s2_3x3_taps<T>(e, o, k[r], a, b);
      }
      R lo, hi;
      V::zip(e, o, lo, hi);
      const int64_t c0 = 2 * b0;  // columns [c0, c0 + 2W) of the row
      if (p.w - c0 >= W) V::store(out + c0, lo); else V::store_partial(out + c0, lo, int(p.w - c0));
      if (p.w - c0 - W >= W) V::store(out + c0 + W, hi); else if (p.w - c0 - W > 0) V::store_partial(out + c0 + W, hi, int(p.w - c0 - W));
    }
  }
}

// The forward and weight gradient of the same layers read the input by column parity too, in
// vector-wide strips of output columns walked down the output rows (as the strip kernels do). Under
// output vector [ow0, ow0 + W), kernel column 1 reads input columns 2ow (the even lanes of the 2W
// columns from 2*ow0), column 2 reads 2ow + 1 (their odd lanes), split by one unzip of two
// contiguous loads, and column 0 reads 2ow - 1: column 2's inputs slid up a lane, the first lane
// taken from the column before the strip. Output row oh reads input rows 2oh - 1, 2oh and 2oh + 1,
// and the first is the previous output row's last, so each input row is loaded and split once. The
// lanes past the strip's outputs are zero (the weight gradient sums every lane: an Inf read there
// would turn into NaN times a zero dy). Worth it where an output row fills at least half a vector;
// narrower rows (7x7 outputs) stay with the flat kernels, which pack a whole plane into vectors.
// Measured against splitting all three rows per output vector (2 threads, batch 1): 112x112x64
// forward 0.116 -> 0.090 ms, 56x56x128 0.089 -> 0.031 ms, 28x28x256 0.083 -> 0.030 ms; dw alike.
template <class T>
bool s2_3x3_rows_pay(const Conv2dParams& p) {
  return s2_3x3_applies(p) && 2 * p.ow >= simd::Vec<T>::width;
}

template <class T>
struct S2Strip {
  using V = simd::Vec<T>;
  using R = typename V::reg;
  static constexpr int64_t W = V::width;
  std::uint32_t lo, hi, live;  // loads of columns [2*ow0, +W) and [2*ow0 + W, +W); output lanes
  int64_t ow0;
  bool first;                  // no column before the strip (ow0 == 0)

  S2Strip(int64_t s, const Conv2dParams& p) : ow0(s * W), first(s == 0) {
    const int64_t n = std::min(W, p.ow - ow0), end = std::min(p.w, 2 * (ow0 + n));  // columns the lanes read
    auto bits = [&](int64_t c) {  // lanes of columns [c, c + W) below `end`
      const int64_t k = std::clamp<int64_t>(end - c, 0, W);
      return (1u << k) - 1u;
    };
    lo = bits(2 * ow0), hi = bits(2 * ow0 + W);
    live = (1u << n) - 1u;
  }
  // t[i][j]: kernel column j's inputs from input row 2oh + i - 1 under output row oh, for the strip's
  // lanes (called with oh = 0, 1, ... in turn: row 2oh - 1 is the previous call's last).
  CNNX_INLINE void rows(const T* x, int64_t oh, const Conv2dParams& p, R (&t)[3][3]) const {
    for (int j = 0; j < 3; ++j) t[0][j] = oh == 0 ? V::zero() : t[2][j];
    taps(x + 2 * oh * p.w, t[1]);
    if (2 * oh + 1 < p.h)
      taps(x + (2 * oh + 1) * p.w, t[2]);
    else
      for (int j = 0; j < 3; ++j) t[2][j] = V::zero();
  }
  // t[j]: kernel column j's inputs from row xr for the strip's lanes.
  CNNX_INLINE void taps(const T* xr, R (&t)[3]) const {
    V::unzip(V::load_lanes(xr + 2 * ow0, lo), V::load_lanes(xr + 2 * ow0 + W, hi), t[1], t[2]);
    const R before = first ? V::zero() : V::set1(xr[2 * ow0 - 1]);
    t[0] = V::blend_lanes(V::zero(), V::blend_lanes(V::template slide<1>(t[2]), before, 1u), live);
  }
};

// PlaneAhead for the stride-2 strips: each output row of a strip reads two input rows of 2W
// columns, so that many lines of the next input plane are fetched per row (and one of the next
// output or dy plane, RW2 as there). Measured on AVX2 (AMD EPYC, 2 threads): the loads from memory
// had been two thirds of the time; 112x112x64 at batch 32 forward 3.3x, weight gradient 3.0x.
// (PlaneAhead itself keeps one offset for both planes: a second one cost the stride-1 strips' weight
// gradient, short of registers on AVX2, 3-10%.)
template <class T, int RW2>
struct S2Ahead {
  static constexpr int LINES = std::max<int>(1, int(4 * simd::Vec<T>::width * sizeof(T) / 64));
  const char* a;
  const char* b;
  int64_t off_a = 0, off_b = 0, last_a, last_b;
  CNNX_INLINE S2Ahead(const T* next_in, int64_t n_in, const T* next_out, int64_t n_out)
      : a(reinterpret_cast<const char*>(next_in)), b(reinterpret_cast<const char*>(next_out)),
        last_a((n_in - 1) * int64_t(sizeof(T))), last_b((n_out - 1) * int64_t(sizeof(T))) {}
  CNNX_INLINE void step() {
    for (int l = 0; l < LINES; ++l) {
      __builtin_prefetch(a + off_a);
      off_a = std::min(off_a + 64, last_a);
    }
    __builtin_prefetch(b + off_b, RW2);
    off_b = std::min(off_b + 64, last_b);
  }
};

// The forward on ISAs with 16 vector registers (AVX2), where the S2Strip form took 38 cycles an
// output vector on Zen 3: each input row's taps were two masked loads (the masks rebuilt every row),
// an unzip (two lane-crossing permutes), a slide, a broadcast and two blends. Here kernel column 0's
// inputs come from two more loads two columns earlier, unzipped like the others (their odd lanes are
// columns 2ow - 1); only the first and last strips mask their loads; and the unzips stay in the ISA's
// own lane order (unzip_unordered), put right once per output at the store. As in the stride-1
// scatter strips, each input row is added to the outputs it belongs to as it is split: even row 2oh
// is kernel row 1 of output oh, odd row 2oh + 1 kernel row 2 of output oh (which it completes) and
// row 0 of output oh + 1 (which it starts). Taps in the reference's order, padding as zeros: the bits
// of the form above. A last strip that would be partial overlaps the one before (ow >= W), so every
// store is whole. Zen 3, 2 threads, batch 1: 112x112x64 1.34x, 56x56x128 1.39x, 28x28x256 1.40x.
template <class T>
struct S2Cols {
  static constexpr int64_t W = simd::Vec<T>::width;
  static constexpr int64_t kOff[4] = {0, W, -2, W - 2};  // the loads at column 2*ow0 + kOff[l]
  int64_t ow0;
  std::uint32_t lanes[4];  // of each load: inside the plane and under one of the strip's live outputs
  std::uint32_t out;       // the live outputs' lanes
  bool edge = false;       // some load masked

  // Outputs [first_output, first_output + live) of the strip are live (the weight gradient's last
  // strip may be partial: its other lanes must read zeros, which times dy's zeros stay zero).
  S2Cols(int64_t first_output, int64_t w, int64_t live) : ow0(first_output), out((std::uint32_t(1) << live) - 1u) {
    for (int l = 0; l < 4; ++l) {
      lanes[l] = 0;
      for (int64_t i = 0; i < W; ++i) {
        const int64_t col = 2 * ow0 + kOff[l] + i;
        const int64_t out = (kOff[l] + i + (l >= 2 ? 1 : 0)) / 2;  // the output it is a tap of
        if (col >= 0 && col < w && out < live) lanes[l] |= 1u << i;
      }
      edge |= lanes[l] != (std::uint32_t(1) << W) - 1u;
    }
  }
  // t[j]: kernel column j's inputs from row xr, in unzip_unordered's lane order.
  template <bool Edge>
  CNNX_INLINE void taps(const T* xr, typename simd::Vec<T>::reg (&t)[3]) const {
    using V = simd::Vec<T>;
    auto load = [&](int l) {
      const T* at = shifted(xr, 2 * ow0 + kOff[l]);
      return Edge ? V::load_lanes(at, lanes[l]) : V::load(at);
    };
    typename V::reg even_before;
    V::unzip_unordered(load(0), load(1), t[1], t[2]);
    V::unzip_unordered(load(2), load(3), even_before, t[0]);
  }
};

// The strips of a call, made once (their masks take a loop over the lanes). Overlap (the forward):
// a last strip that would be partial starts at ow - W, so every store is whole; otherwise (the weight
// gradient, which sums) it is partial.
template <class T>
std::vector<S2Cols<T>> s2_cols_of(const Conv2dParams& p, bool overlap) {
  constexpr int64_t W = simd::Vec<T>::width;
  std::vector<S2Cols<T>> cols;
  for (int64_t ow0 = 0; ow0 < p.ow; ow0 += W)
    cols.emplace_back(overlap ? std::min(ow0, p.ow - W) : ow0, p.w, overlap ? W : std::min(W, p.ow - ow0));
  return cols;
}

template <class T, bool Edge>
CNNX_INLINE void s2_scatter_strip(T* y, const T* x, const typename simd::Vec<T>::reg (&wv)[9],
                                  typename simd::Vec<T>::reg vb, const S2Cols<T>& st, const Conv2dParams& p,
                                  S2Ahead<T, 1>& ahead) {
  using V = simd::Vec<T>;
  using R = typename V::reg;
  R cur = V::zero(), next, t[3];  // output 0's kernel row 0 is padding: zero, exactly
  T* o = y + st.ow0;
  const int64_t full = p.h / 2;  // outputs whose odd row 2oh + 1 is inside the plane
  for (int64_t oh = 0; oh < p.oh; ++oh) {
    ahead.step();
    const T* xr = x + 2 * oh * p.w;
    st.template taps<Edge>(xr, t);
    for (int j = 0; j < 3; ++j) cur = V::fmadd(wv[3 + j], t[j], cur);
    next = V::zero();
    if (oh < full) {
      st.template taps<Edge>(xr + p.w, t);
      for (int j = 0; j < 3; ++j) {
        cur = V::fmadd(wv[6 + j], t[j], cur);
        next = V::fmadd(wv[j], t[j], next);
      }
    } else {
      for (int j = 0; j < 3; ++j) cur = V::fmadd(wv[6 + j], V::zero(), cur);
    }
    V::store(o + oh * p.ow, V::unzip_order(V::add(cur, vb)));
    cur = next;
  }
}

// cols: the 16-register form's strips (s2_cols_of), or none for the S2Strip form.
template <class T>
void s2_3x3_forward_strips(T* y, const T* x, const T* wk, T bias, const Conv2dParams& p,
                           const std::vector<S2Cols<T>>& cols) {
  using V = simd::Vec<T>;
  using R = typename V::reg;
  constexpr int64_t W = V::width;
  R wv[9];
  for (int q = 0; q < 9; ++q) wv[q] = V::set1(wk[q]);
  const R vb = V::set1(bias);
  S2Ahead<T, 1> ahead(x + p.h * p.w, p.h * p.w, y + p.oh * p.ow, p.oh * p.ow);
  if (!cols.empty()) {  // the form above
    for (const S2Cols<T>& st : cols)
      st.edge ? s2_scatter_strip<T, true>(y, x, wv, vb, st, p, ahead) : s2_scatter_strip<T, false>(y, x, wv, vb, st, p, ahead);
    return;
  }
  for (int64_t s = 0; s * W < p.ow; ++s) {
    const S2Strip<T> st(s, p);
    R t[3][3];
    for (int64_t oh = 0; oh < p.oh; ++oh) {
      ahead.step();
      st.rows(x, oh, p, t);
      R acc = V::zero();
      for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 3; ++j) acc = V::fmadd(wv[i * 3 + j], t[i][j], acc);
      V::store_lanes(y + oh * p.ow + st.ow0, V::add(acc, vb), st.live);
    }
  }
}

// The weight gradient of the same layers on 16-register ISAs: each input row's taps made as
// s2_scatter_strip makes them, dy's row put into their lane order (unzip_order is its own
// inverse), and the 9 sums kept in that order through the plane, so each lane sums what it summed
// before: the bits of s2_3x3_weight_strips, but for the products with padding rows (zeros there),
// which are left out as in scatter_3x3_weight. AMD EPYC, 2 threads: 112x112x64 at batch 1 1.36x.
template <class T, bool Edge>
CNNX_INLINE void s2_cols_weight_strip(typename simd::Vec<T>::reg (&acc)[9], const T* x, const T* g,
                                      const S2Cols<T>& st, const Conv2dParams& p, S2Ahead<T, 0>& ahead) {
  using V = simd::Vec<T>;
  using R = typename V::reg;
  R odd[3], t[3];  // odd: input row 2oh - 1's taps (kernel row 0 of output oh)
  const int64_t full = p.h / 2;  // outputs whose odd row 2oh + 1 is inside the plane
  auto row = [&](int64_t oh, auto above, auto below) {
    ahead.step();
    const T* gr = g + oh * p.ow + st.ow0;
    const R gv = V::unzip_order(Edge ? V::load_lanes(gr, st.out) : V::load(gr));
    const T* xr = x + 2 * oh * p.w;
    if constexpr (decltype(above)::value)
      for (int j = 0; j < 3; ++j) acc[j] = V::fmadd(gv, odd[j], acc[j]);
    st.template taps<Edge>(xr, t);
    for (int j = 0; j < 3; ++j) acc[3 + j] = V::fmadd(gv, t[j], acc[3 + j]);
    if constexpr (decltype(below)::value) {
      st.template taps<Edge>(xr + p.w, odd);
      for (int j = 0; j < 3; ++j) acc[6 + j] = V::fmadd(gv, odd[j], acc[6 + j]);
    }
  };
  using Yes = std::true_type;
  using No = std::false_type;
  const int64_t both = std::min(p.oh, full);  // outputs [1, both) have both odd rows inside
  if (full > 0) row(0, No(), Yes()); else row(0, No(), No());
  for (int64_t oh = 1; oh < both; ++oh) row(oh, Yes(), Yes());
  for (int64_t oh = std::max<int64_t>(both, 1); oh < p.oh; ++oh) row(oh, Yes(), No());
}

template <class T>
void s2_cols_weight(T* sums, const T* x, const T* g, const Conv2dParams& p, const std::vector<S2Cols<T>>& cols) {
  using V = simd::Vec<T>;
  constexpr int64_t W = V::width;
  typename V::reg acc[9];
  for (int q = 0; q < 9; ++q) acc[q] = V::unzip_order(V::load(sums + q * W));
  S2Ahead<T, 0> ahead(x + p.h * p.w, p.h * p.w, g + p.oh * p.ow, p.oh * p.ow);
  for (const S2Cols<T>& st : cols)
    st.edge ? s2_cols_weight_strip<T, true>(acc, x, g, st, p, ahead) : s2_cols_weight_strip<T, false>(acc, x, g, st, p, ahead);
  for (int q = 0; q < 9; ++q) V::store(sums + q * W, V::unzip_order(acc[q]));
}

template <class T>
void s2_3x3_weight_strips(T* sums, const T* x, const T* g, const Conv2dParams& p) {
  using V = simd::Vec<T>;
  using R = typename V::reg;
  constexpr int64_t W = V::width;
  R acc[9];
  for (int q = 0; q < 9; ++q) acc[q] = V::load(sums + q * W);
  S2Ahead<T, 0> ahead(x + p.h * p.w, p.h * p.w, g + p.oh * p.ow, p.oh * p.ow);
  for (int64_t s = 0; s * W < p.ow; ++s) {
    const S2Strip<T> st(s, p);
    R t[3][3];
    for (int64_t oh = 0; oh < p.oh; ++oh) {
      ahead.step();
      st.rows(x, oh, p, t);
      const R gv = V::load_lanes(g + oh * p.ow + st.ow0, st.live);
      for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 3; ++j) acc[i * 3 + j] = V::fmadd(gv, t[i][j], acc[i * 3 + j]);
    }
  }
  for (int q = 0; q < 9; ++q) V::store(sums + q * W, acc[q]);
}

}  // namespace

template <class T>
void depthwise_forward(T* y, const T* x, const T* w, const T* bias, const Conv2dParams& p) {
  if (s2_3x3_rows_pay<T>(p)) {
    const bool sixteen = simd::kVectorRegisters < 32 && p.ow >= simd::Vec<T>::width;
    const std::vector<S2Cols<T>> cols = sixteen ? s2_cols_of<T>(p, true) : std::vector<S2Cols<T>>();
    parallel::region(get_num_threads(), [&](int tid, int nt) {
      const parallel::Range planes = parallel::split(p.n * p.c, tid, nt);
      for (int64_t nc = planes.begin; nc < planes.end; ++nc)
        s2_3x3_forward_strips(y + nc * p.oh * p.ow, x + nc * p.h * p.w, w + nc % p.c * 9, bias ? bias[nc % p.c] : T(0), p,
                              cols);
    });
    return;
  }
  if (row_vector_k(p) && row_vector_planes<T>(p) == 0) {
    if (row_vector_k(p) == 3) return strip_forward<T, 3>(y, x, w, bias, p);
    if (row_vector_k(p) == 5) return strip_forward<T, 5>(y, x, w, bias, p);
  }
  if (row_vector_planes<T>(p) > 0) {
    if (row_vector_k(p) == 3) return row_vector_forward<T, 3>(y, x, w, bias, p);
    if constexpr (simd::Vec<T>::width > 2)  // a 5-wide kernel's row needs 3 lanes at least
      if (row_vector_k(p) == 5) return row_vector_forward<T, 5>(y, x, w, bias, p);
  }
  if (flat_applies(p)) {
    const FlatPlan& F = flat_plan<T>(p);
    return F.gather ? flat_forward<T, true>(y, x, w, bias, p, F) : flat_forward<T, false>(y, x, w, bias, p, F);
  }
  const Layout L = layout_of<T>(p);
  const int64_t mult = p.k / p.c, ntaps = p.kh * p.kw, ohw = p.oh * p.ow;
  parallel::region(get_num_threads(), [&](int tid, int nt) {
    T* buf = workspace_as<T>(kPlaneSlot, L.size());
    const parallel::Range planes = parallel::split(p.n * p.c, tid, nt);
    for (int64_t nc = planes.begin; nc < planes.end; ++nc) {
      const int64_t n = nc / p.c, c = nc % p.c;
      split_plane(buf, x + nc * p.h * p.w, p, L);
      for (int64_t m = 0; m < mult; ++m) {
        const int64_t k = c * mult + m;
        output_plane(y + (n * p.k + k) * ohw, buf, w + k * ntaps, bias ? bias[k] : T(0), p, L);
      }
    }
  });
}

// dx. With stride 1 and one output channel per input channel (the common case) the input gradient
// is itself a depthwise convolution: of dy, padded by d*(k-1) - p, with the kernels flipped; it runs
// on the forward kernel. Otherwise dy is scattered through the taps,
// buf[row(oh, i, j)][ow + off] += w[i, j] * dy[oh, ow], into a phase-split padded plane that is
// then merged back (its padding entries are discarded).
template <class T>
void depthwise_backward_input(T* dx, const T* dy, const T* w, const Conv2dParams& p) {
  if (p.k == p.c && p.stride_h == 1 && p.stride_w == 1 && p.pad_h <= p.dil_h * (p.kh - 1) &&
      p.pad_w <= p.dil_w * (p.kw - 1)) {
    Conv2dParams q = p;
    q.h = p.oh, q.w = p.ow, q.oh = p.h, q.ow = p.w;
    q.pad_h = p.dil_h * (p.kh - 1) - p.pad_h, q.pad_w = p.dil_w * (p.kw - 1) - p.pad_w;
    const int64_t ntaps = p.kh * p.kw;
    std::vector<T> flipped(static_cast<size_t>(p.k * ntaps));
    for (int64_t k = 0; k < p.k; ++k)
      for (int64_t t = 0; t < ntaps; ++t) flipped[k * ntaps + t] = w[k * ntaps + ntaps - 1 - t];
    depthwise_forward(dx, dy, flipped.data(), static_cast<const T*>(nullptr), q);
    return;
  }
  if (s2_3x3_applies(p)) {
    parallel::region(get_num_threads(), [&](int tid, int nt) {
      const parallel::Range planes = parallel::split(p.n * p.c, tid, nt);
      for (int64_t nc = planes.begin; nc < planes.end; ++nc)
        s2_3x3_plane(dx + nc * p.h * p.w, dy + nc * p.oh * p.ow, w + nc % p.c * 9, p);
    });
    return;
  }
  if (p.k == p.c && p.kh * p.kw <= 25 && p.h * p.w <= kGatherDxMaxPlane) {  // gathered from dy
    const FlatPlan& F = flat_plan<T>(p, true);
    const int64_t ntaps = p.kh * p.kw, ohw = p.oh * p.ow;
    parallel::region(get_num_threads(), [&](int tid, int nt) {
      const parallel::Range planes = parallel::split(p.n * p.c, tid, nt);
      for (int64_t nc = planes.begin; nc < planes.end; ++nc)
        flat_plane<T, true>(dx + nc * F.hw, dy + nc * ohw, w + (nc % p.c) * ntaps, T(0), F);
    });
    return;
  }
  using V = simd::Vec<T>;
  constexpr int64_t W = V::width;
  const Layout L = layout_of<T>(p);
  const int64_t mult = p.k / p.c, ntaps = p.kh * p.kw, ohw = p.oh * p.ow;
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
        const T* wk = w + k * ntaps;
        for (int64_t oh = 0; oh < p.oh; ++oh) {
          copy_row(row, dy + (n * p.k + k) * ohw + oh * p.ow, p.ow);
          for (int64_t q = 0; q < ntaps; ++q) {
            T* dst = buf + oh * L.out_row + L.tap[q];
            const typename V::reg wv = V::set1(wk[q]);
            for (int64_t o = 0; o < L.owv; o += W)
              V::store(dst + o, V::fmadd(wv, V::load(row + o), V::load(dst + o)));
          }
        }
      }
      merge_plane(dx + nc * p.h * p.w, buf, p, L);
    }
  });
}

// dw[k, i, j] = sum over images and output positions of dy[k, oh, ow] * x tap (i, j). One channel's
// images run in order on one thread; the sums are kept per Vec lane (four rotating accumulators per
// image) and the lanes reduced once at the end, in a fixed order. db: the bias gradient too, or
// null; returns whether it was filled (the kernels that read dy plane by plane sum it on the way).
template <class T>
bool depthwise_backward_weight(T* dw, T* db, const T* x, const T* dy, const Conv2dParams& p) {
  if (s2_3x3_rows_pay<T>(p)) {
    const std::vector<S2Cols<T>> cols = simd::kVectorRegisters < 32 ? s2_cols_of<T>(p, false) : std::vector<S2Cols<T>>();
    weight_in_image_order<T, 9>(dw, db, x, dy, p, [&](T* sums, const T* xp, const T* g) {
      if (!cols.empty())
        s2_cols_weight(sums, xp, g, p, cols);
      else
        s2_3x3_weight_strips(sums, xp, g, p);
    });
    return true;
  }
  if (row_vector_k(p) && row_vector_planes<T>(p) == 0) {
    if (row_vector_k(p) == 3)
      strip_weight<T, 3>(dw, db, x, dy, p);
    else
      strip_weight<T, 5>(dw, db, x, dy, p);
    return true;
  }
  if (const int g = row_vector_planes<T>(p); g > 0) {
    if (row_vector_k(p) == 3) {
      g == 2 ? row_vector_weight<T, 3, 2>(dw, db, x, dy, p) : row_vector_weight<T, 3, 1>(dw, db, x, dy, p);
      return true;
    }
    if constexpr (simd::Vec<T>::width > 2)
      if (row_vector_k(p) == 5) {
        g == 2 ? row_vector_weight<T, 5, 2>(dw, db, x, dy, p) : row_vector_weight<T, 5, 1>(dw, db, x, dy, p);
        return true;
      }
  }
  if (flat_applies(p)) {
    const FlatPlan& F = flat_plan<T>(p);
    if (F.gather ? flat_backward_weight<T, true>(dw, db, x, dy, p, F) : flat_backward_weight<T, false>(dw, db, x, dy, p, F))
      return true;
  }
  using V = simd::Vec<T>;
  using R = typename V::reg;
  constexpr int64_t W = V::width;
  const Layout L = layout_of<T>(p);
  const int64_t mult = p.k / p.c, ntaps = p.kh * p.kw, ohw = p.oh * p.ow;
  parallel::region(get_num_threads(), [&](int tid, int nt) {
    T* buf = workspace_as<T>(kPlaneSlot, L.size());
    T* dyp = workspace_as<T>(kRowSlot, p.oh * L.owv);  // dy plane, rows padded with zeros to owv
    std::vector<T> lanes(static_cast<size_t>(mult * ntaps * W));  // per weight, its partial sums by lane
    const parallel::Range chans = parallel::split(p.c, tid, nt);
    for (int64_t c = chans.begin; c < chans.end; ++c) {
      std::fill(lanes.begin(), lanes.end(), T(0));
      for (int64_t n = 0; n < p.n; ++n) {
        split_plane(buf, x + (n * p.c + c) * p.h * p.w, p, L);
        for (int64_t m = 0; m < mult; ++m) {
          const int64_t k = c * mult + m;
          for (int64_t oh = 0; oh < p.oh; ++oh) {  // rows of OW values, zero up to owv
            T* d = dyp + oh * L.owv;
            const T* src = dy + (n * p.k + k) * ohw + oh * p.ow;
            for (int64_t o = 0; o < L.owv; o += W)
              V::store(d + o, o + W <= p.ow ? V::load(src + o) : V::load_partial(src + o, int(std::max<int64_t>(0, p.ow - o))));
          }
          for (int64_t q = 0; q < ntaps; ++q) {
            // Four accumulators in rotation: one chain of dependent FMAs would wait on each other.
            R acc[4] = {V::zero(), V::zero(), V::zero(), V::zero()};
            int64_t at = 0;
            for (int64_t oh = 0; oh < p.oh; ++oh) {
              const T* src = buf + oh * L.out_row + L.tap[q];
              const T* d = dyp + oh * L.owv;
              for (int64_t o = 0; o < L.owv; o += W, ++at)
                acc[at & 3] = V::fmadd(V::load(d + o), V::load(src + o), acc[at & 3]);
            }
            T* l = lanes.data() + (m * ntaps + q) * W;
            V::store(l, V::add(V::load(l), V::add(V::add(acc[0], acc[1]), V::add(acc[2], acc[3]))));
          }
        }
      }
      for (int64_t i = 0; i < mult * ntaps; ++i) dw[c * mult * ntaps + i] = V::reduce_add(V::load(lanes.data() + i * W));
    }
  });
  return false;  // db (if asked for) is the caller's
}

#define CNNX_INSTANTIATE(T)                                                                          \
  template void depthwise_forward<T>(T*, const T*, const T*, const T*, const Conv2dParams&);        \
  template void depthwise_backward_input<T>(T*, const T*, const T*, const Conv2dParams&);           \
  template bool depthwise_backward_weight<T>(T*, T*, const T*, const T*, const Conv2dParams&);
CNNX_INSTANTIATE(float)
CNNX_INSTANTIATE(double)
#undef CNNX_INSTANTIATE

}  // namespace CNNX_ISA_NS
}  // namespace cnnx
