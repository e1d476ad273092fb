// Row kernels for dense layers with few output channels (LeNet-5's 6 and 16), compiled once per
// ISA. Contract: cnnx/conv.h. Called by conv.cpp when rows_fits() says so.
//
// With a handful of output channels the column-matrix GEMM has a handful of rows: building the
// column matrix (KH*KW copies of the input) costs more than the product, and the direct kernels'
// channel vectors would be mostly empty lanes. Here the vector dimension is the output row: for
// each output row, KB output channels x NR vectors of it stay in registers while every input
// channel and tap adds w[k][c][i][j] (broadcast) times the input row segment under it, read with
// plain unaligned loads from a zero-padded copy of the image (lanes past the row end compute
// values that are never stored). Each output value starts from its bias and adds its products in
// the reference's order (c, i, j), each as one fused multiply-add, as the other fast kernels do.
//
// Threads split the images; each output is computed by one thread: bitwise repeatable for any
// thread count.
#include <algorithm>
#include <cstdint>
#include <vector>

#include "cnnx/conv.h"
#include "cnnx/runtime.h"
#include "cpu/conv_geometry.h"
#include "cpu/parallel.h"
#include "cpu/simd.h"

namespace cnnx {
namespace CNNX_ISA_NS {

namespace {

using std::int64_t;

constexpr int kPlaneSlot = 3;  // the thread's padded image
constexpr int kMaxKB = 8;      // output channels per pass
constexpr int kMaxNR = 3;      // vectors per output row

template <class T>
struct Geometry {
  int64_t hp, wp, plane, slack;  // padded rows, row length, padded plane, readable values past it
};

template <class T>
Geometry<T> geometry_of(const Conv2dParams& p) {
  constexpr int64_t W = simd::Vec<T>::width;
  Geometry<T> g;
  g.hp = p.h + 2 * p.pad_h;
  g.wp = p.w + 2 * p.pad_w;
  g.plane = g.hp * g.wp;
  g.slack = kMaxNR * W + p.kw;  // the last row's vectors read up to NR*W + KW - 1 values on
  return g;
}

// Image n of x into the padded buffer xp (zeroed once by the caller: borders and slack stay zero).
template <class T>
void pad_image(T* xp, const T* x, int64_t n, const Geometry<T>& g, const Conv2dParams& p) {
  for (int64_t c = 0; c < p.c; ++c)
    for (int64_t h = 0; h < p.h; ++h) {
      const T* src = x + ((n * p.c + c) * p.h + h) * p.w;
      T* dst = xp + c * g.plane + (h + p.pad_h) * g.wp + p.pad_w;
      for (int64_t q = 0; q < p.w; ++q) dst[q] = src[q];
    }
}

// Output row oh of channels [k0, k0 + KB) of one image: xp is the padded image, wk the pass's
// packed weights (wk[e][k] = w[k0 + k][c][i][j] for step e = (c, i, j), KB values a step, so a
// step's weights are adjacent: read from OIHW, KB rows apart, they cost GoogLeNet's 5x5 input
// gradient at batch 32 11% and LeNet's C1 at batch 256 18%), y the image's output.
template <class T, int KB, int NR>
void row(T* y, const T* xp, const T* wk, const T* bias, int64_t k0, int64_t oh, const Geometry<T>& g,
         const Conv2dParams& p) {
  using V = simd::Vec<T>;
  constexpr int W = V::width;
  typename V::reg acc[KB][NR];
  for (int k = 0; k < KB; ++k)
    for (int v = 0; v < NR; ++v) acc[k][v] = V::set1(bias ? bias[k0 + k] : T(0));
  for (int64_t c = 0; c < p.c; ++c) {
    const T* xc = xp + c * g.plane + oh * g.wp;
    for (int64_t i = 0; i < p.kh; ++i, xc += g.wp)
      for (int64_t j = 0; j < p.kw; ++j, wk += KB) {
        typename V::reg xv[NR];
        for (int v = 0; v < NR; ++v) xv[v] = V::load(xc + j + v * W);
        for (int k = 0; k < KB; ++k) {
          const typename V::reg wv = V::set1(wk[k]);
          for (int v = 0; v < NR; ++v) acc[k][v] = V::fmadd(wv, xv[v], acc[k][v]);
        }
      }
  }
  for (int k = 0; k < KB; ++k) {
    T* yr = y + (k0 + k) * p.oh * p.ow + oh * p.ow;
    for (int v = 0; v < NR; ++v) {
      const int64_t left = p.ow - v * W;
      if (left >= W)
        V::store(yr + v * W, acc[k][v]);
      else if (left > 0)
        V::store_partial(yr + v * W, acc[k][v], int(left));
    }
  }
}

template <class T>
using RowFn = void (*)(T*, const T*, const T*, const T*, int64_t, int64_t, const Geometry<T>&, const Conv2dParams&);

template <class T, int NR>
RowFn<T> pick_kb(int kb) {
  switch (kb) {
    case 1: return &row<T, 1, NR>;
    case 2: return &row<T, 2, NR>;
    case 3: return &row<T, 3, NR>;
    case 4: return &row<T, 4, NR>;
    case 5: return &row<T, 5, NR>;
    case 6: return &row<T, 6, NR>;
    case 7: return &row<T, 7, NR>;
    default: return &row<T, 8, NR>;
  }
}

template <class T>
RowFn<T> pick(int kb, int nr) {
  return nr == 1 ? pick_kb<T, 1>(kb) : nr == 2 ? pick_kb<T, 2>(kb) : pick_kb<T, 3>(kb);
}

// Whether the row kernels can compute p at all: unit stride and dilation, one group, output rows of
// at most 3 vectors.
template <class T>
bool rows_run(const Conv2dParams& p) {
  constexpr int64_t W = simd::Vec<T>::width;
  return p.stride_h == 1 && p.stride_w == 1 && p.dil_h == 1 && p.dil_w == 1 && p.groups == 1 && p.ow <= kMaxNR * W;
}

}  // namespace

// The forward, by choice (not force): where the column matrix would dwarf the product, a reduction
// of at most 150 with at most 16 output channels (LeNet's C3: 6 x 5 x 5); and, from 2 images (one a
// thread: threads split the images) on rows of at least 7 outputs (lanes enough in use), wherever
// the output channels are few or the reduction short, which the direct kernels' channel vectors
// and tile starts serve badly. Measured, 2 threads, against the best other algorithm: 3 -> 64 at
// 32x32, batch 64 (a CIFAR network's first layer) 0.80 ms against 0.96 direct, 1.96 column matrix;
// 1 -> 32 at 28x28 1.35-2.1x; 3 -> 128 at 32x32 1.9-2.3x; 64 -> 16 at 28x28 1.6-1.8x; 32 -> 16 5x5
// at 28x28 1.8x; 256 -> 16 at 7x7 1.17x. At batch 1 (one thread) it ran 0.8-1.0x. Rows of 5 values
// under long reductions ran 11x slower than the column matrix (LeNet's C5, as an input gradient),
// and 1x1 layers, which the GEMM multiplies in place, 0.4-0.5x (GoogLeNet's 192 -> 16 at 28x28).
template <class T>
bool rows_fits(const Conv2dParams& p, bool force) {
  if (!rows_run<T>(p)) return false;
  if (force) return true;
  // With 16 vector registers (AVX2) a row of 8 channels x 3 vectors spills its sums, and the direct
  // tiles ran LeNet's C3 (6 -> 16, 14x14, batch 256) 2.0x faster on an AMD EPYC: they take it there.
  if (simd::kVectorRegisters < 32) return false;
  const int64_t reduction = p.c * p.kh * p.kw;
  return (p.k <= 16 && reduction <= 150) ||
         (p.n >= 2 && p.ow >= 7 && p.kh * p.kw > 1 && (p.k <= 16 || reduction < 32));
}

template <class T>
void rows_forward(T* y, const T* x, const T* w, const T* bias, const Conv2dParams& p) {
  constexpr int64_t W = simd::Vec<T>::width;
  const Geometry<T> g = geometry_of<T>(p);
  const int nr = int((p.ow + W - 1) / W);
  // Output channels in passes of at most 8, as even as possible (16 -> 8 + 8, 6 -> 6).
  const int64_t passes = (p.k + kMaxKB - 1) / kMaxKB;
  const int64_t khw = p.kh * p.kw, steps = p.c * khw;
  // Each pass's weights packed step-major (row()), one pass after another: k0 * steps values before
  // the pass starting at channel k0.
  std::vector<T> packed(static_cast<size_t>(p.k * steps));
  for (int64_t pass = 0, k0 = 0; pass < passes; ++pass) {
    const int64_t kb = (p.k - k0) / (passes - pass);
    T* dst = packed.data() + k0 * steps;
    for (int64_t e = 0; e < steps; ++e)
      for (int64_t k = 0; k < kb; ++k) dst[e * kb + k] = w[(k0 + k) * steps + e];
    k0 += kb;
  }
  const double macs = double(p.n) * double(p.k) * double(p.oh * p.ow) * double(steps);
  const int threads = threads_for(macs, p.n);
  parallel::region(threads, [&](int tid, int nt) {
    const parallel::Range mine = parallel::split(p.n, tid, nt);
    if (mine.begin >= mine.end) return;
    T* xp = workspace_as<T>(kPlaneSlot, p.c * g.plane + g.slack);
    std::fill(xp, xp + p.c * g.plane + g.slack, T(0));  // borders and slack stay zero
    for (int64_t n = mine.begin; n < mine.end; ++n) {
      pad_image(xp, x, n, g, p);
      T* yn = y + n * p.k * p.oh * p.ow;
      for (int64_t pass = 0, k0 = 0; pass < passes; ++pass) {
        const int64_t kb = (p.k - k0) / (passes - pass);
        const RowFn<T> fn = pick<T>(int(kb), nr);
        for (int64_t oh = 0; oh < p.oh; ++oh) fn(yn, xp, packed.data() + k0 * steps, bias, k0, oh, g, p);
        k0 += kb;
      }
    }
  });
}

// The input gradient of a stride-1 layer is the forward convolution of dy with the flipped,
// transposed kernel and padding (KH-1)*DH - PH (transposed_of, cpu/conv_geometry.h). By choice for up
// to 16 input channels (the gradient's output channels) and a reduction (output channels x taps)
// of at most 800: GoogLeNet's 5x5 branch (32 -> 16 channels, 28x28, batch 32) 5.8 ms by the column
// matrix, 4.2 ms here; LeNet's C3 (16 -> 6, batch 256) 1.40 -> 1.17 ms. Not LeNet's C5 (120 -> 16
// channels on 5x5 planes: 3,000-long reductions on rows of 5 values, 7.5 ms against 0.67).
template <class T>
bool rows_fits_backward_input(const Conv2dParams& p, bool force) {
  if (p.pad_h > p.kh - 1 || p.pad_w > p.kw - 1) return false;
  const Conv2dParams t = transposed_of(p);
  return rows_run<T>(t) && (force || (t.k <= 16 && t.c * t.kh * t.kw <= 800));
}

template <class T>
void rows_backward_input(T* dx, const T* dy, const T* w, const Conv2dParams& p) {
  std::vector<T> flipped(static_cast<size_t>(p.k * p.c * p.kh * p.kw));
  flip_kernel(flipped.data(), w, p);
  rows_forward<T>(dx, dy, flipped.data(), nullptr, transposed_of(p));
}

// Weight gradient: dw[k][c][i][j] = sum over images n and output positions of
// dy[n][k][oh][ow] * xpad[n][c][oh + i][ow + j]. A unit of work is (KB output channels, input
// channel c, kernel row i): KB x KW vector accumulators summed along output rows (dy rows and the
// input row segments under them, the last vector of each masked to the row), reduced across lanes
// at the end. Images are the outer loop, so one image's dy and padded input stay in cache while a
// thread runs all its units on it (their accumulators wait in the thread's buffer between images);
// each unit belongs to one thread and sums the images in order: bitwise repeatable for any thread
// count.
template <class T, int KB, int KW>
void dw_rows(T* acc_mem, bool first, const T* dy, const T* xrow0, int64_t k0, const Geometry<T>& g,
             const Conv2dParams& p) {
  using V = simd::Vec<T>;
  constexpr int W = V::width;
  typename V::reg acc[KB][KW];
  for (int k = 0; k < KB; ++k)
    for (int j = 0; j < KW; ++j) acc[k][j] = first ? V::zero() : V::load(acc_mem + (k * KW + j) * W);
  const int64_t ohw = p.oh * p.ow;
  for (int64_t oh = 0; oh < p.oh; ++oh) {
    const T* xr = xrow0 + oh * g.wp;
    for (int64_t v0 = 0; v0 < p.ow; v0 += W) {
      const int live = int(std::min<int64_t>(W, p.ow - v0));
      typename V::reg xv[KW];
      for (int j = 0; j < KW; ++j) xv[j] = live == W ? V::load(xr + v0 + j) : V::load_partial(xr + v0 + j, live);
      for (int k = 0; k < KB; ++k) {
        const T* d = dy + (k0 + k) * ohw + oh * p.ow + v0;
        const typename V::reg dv = live == W ? V::load(d) : V::load_partial(d, live);
        for (int j = 0; j < KW; ++j) acc[k][j] = V::fmadd(dv, xv[j], acc[k][j]);
      }
    }
  }
  for (int k = 0; k < KB; ++k)
    for (int j = 0; j < KW; ++j) V::store(acc_mem + (k * KW + j) * W, acc[k][j]);
}

template <class T>
using DwFn = void (*)(T*, bool, const T*, const T*, int64_t, const Geometry<T>&, const Conv2dParams&);

template <class T, int KW>
DwFn<T> pick_dw(int kb) {
  switch (kb) {
    case 1: return &dw_rows<T, 1, KW>;
    case 2: return &dw_rows<T, 2, KW>;
    case 3: return &dw_rows<T, 3, KW>;
    case 4: return &dw_rows<T, 4, KW>;
    default: return &dw_rows<T, 5, KW>;
  }
}

// Unit stride and dilation, one group, 3- or 5-wide kernels, output rows of at most 3 vectors; by
// choice only for reductions of at most 75 values per output (LeNet-5's C1: 1 x 5 x 5, batch 256,
// 2.63 ms by the column matrix, 0.42 ms here); at C3's 150 the column matrix is as fast (1.65 ms
// against 1.77), and it reads dy once where these units read it once per (input channel, row).
template <class T>
bool rows_fits_backward_weight(const Conv2dParams& p, bool force) {
  return (p.kw == 3 || p.kw == 5) && rows_run<T>(p) && (force || (p.k <= 16 && p.c * p.kh * p.kw <= 75));
}

template <class T>
void rows_backward_weight(T* dw, const T* x, const T* dy, const Conv2dParams& p) {
  using V = simd::Vec<T>;
  constexpr int64_t W = V::width;
  if (p.n == 0) {  // an empty sum
    std::fill(dw, dw + p.k * p.c * p.kh * p.kw, T(0));
    return;
  }
  const Geometry<T> g = geometry_of<T>(p);
  const int64_t kbs = (p.k + 4) / 5;  // channel blocks of at most 5 (5 x 5 accumulators)
  const int64_t units = kbs * p.c * p.kh;
  const double macs = double(p.n) * double(p.k) * double(p.oh * p.ow) * double(p.c * p.kh * p.kw);
  const int threads = threads_for(macs, units);
  parallel::region(threads, [&](int tid, int nt) {
    const parallel::Range mine = parallel::split(units, tid, nt);
    if (mine.begin >= mine.end) return;
    T* xp = workspace_as<T>(kPlaneSlot, p.c * g.plane + g.slack);
    std::fill(xp, xp + p.c * g.plane + g.slack, T(0));
    T* accs = workspace_as<T>(kPlaneSlot + 1, (mine.end - mine.begin) * 5 * p.kw * W);
    for (int64_t n = 0; n < p.n; ++n) {
      pad_image(xp, x, n, g, p);
      const T* dyn = dy + n * p.k * p.oh * p.ow;
      for (int64_t u = mine.begin; u < mine.end; ++u) {
        const int64_t i = u % p.kh, c = (u / p.kh) % p.c, kb = u / (p.kh * p.c);
        const int64_t k0 = kb * p.k / kbs, k1 = (kb + 1) * p.k / kbs;
        const DwFn<T> fn = p.kw == 3 ? pick_dw<T, 3>(int(k1 - k0)) : pick_dw<T, 5>(int(k1 - k0));
        fn(accs + (u - mine.begin) * 5 * p.kw * W, n == 0, dyn, xp + c * g.plane + i * g.wp, k0, g, p);
      }
    }
    for (int64_t u = mine.begin; u < mine.end; ++u) {
      const int64_t i = u % p.kh, c = (u / p.kh) % p.c, kb = u / (p.kh * p.c);
      const int64_t k0 = kb * p.k / kbs, k1 = (kb + 1) * p.k / kbs;
      const T* a = accs + (u - mine.begin) * 5 * p.kw * W;
      for (int64_t k = k0; k < k1; ++k)
        for (int64_t j = 0; j < p.kw; ++j)
          dw[((k * p.c + c) * p.kh + i) * p.kw + j] = V::reduce_add(V::load(a + ((k - k0) * p.kw + j) * W));
    }
  });
}

#define CNNX_INSTANTIATE(T)                                                        \
  template bool rows_fits_backward_weight<T>(const Conv2dParams&, bool);           \
  template void rows_backward_weight<T>(T*, const T*, const T*, const Conv2dParams&); \
  template bool rows_fits<T>(const Conv2dParams&, bool);                           \
  template bool rows_fits_backward_input<T>(const Conv2dParams&, bool);            \
  template void rows_forward<T>(T*, const T*, const T*, const T*, const Conv2dParams&); \
  template void rows_backward_input<T>(T*, const T*, const T*, const Conv2dParams&);
CNNX_INSTANTIATE(float)
CNNX_INSTANTIATE(double)
#undef CNNX_INSTANTIATE

}  // namespace CNNX_ISA_NS
}  // namespace cnnx
