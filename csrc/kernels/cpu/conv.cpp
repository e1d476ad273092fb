// Convolution on the GEMM, compiled once per ISA. Contract: cnnx/conv.h.
//
// Per image n and group g the convolution is a matrix product over the "column" matrix
// col[(c, i, j), (oh, ow)] = x[c, oh*s - p + i*d, ow*s - p + j*d] (zero outside the image):
//   forward          y[n,g]  (Kg x OHW)  = w[g] (Kg x CKK) @ col (CKK x OHW)
//   backward_input   dcol    (CKK x OHW) = w[g]^T @ dy[n,g],  then dx[n,g] = col2im(dcol)
//   backward_weight  dw[g]   (Kg x CKK) += dy[n,g] @ col^T     (summed over n in order)
// The column matrix is never built for a whole image when that is large: it is built a tile of
// output rows at a time (about kColBytes), so it stays in L2 while the GEMM consumes it.
// Pointwise layers (1x1, stride 1, no padding) need no column matrix at all: col is x itself.
// Depthwise layers (groups == C) go to the direct kernels of conv_depthwise.cpp.
//
// Threads: when there are enough independent (image, group, tile) items, each thread takes whole
// items and runs single-threaded GEMMs ("items" mode: no barriers, each core keeps its own tile in
// its own L2). Otherwise items run one after another and each GEMM uses every thread. The weight
// gradient always runs items in order (its sum over the batch is never split between threads), so
// every result is bitwise identical for a given thread count.
#include <algorithm>
#include <cstdint>
#include <cstring>

#include "cnnx/conv.h"
#include "cnnx/gemm.h"
#include "cnnx/runtime.h"
#include "cpu/parallel.h"

namespace cnnx {
namespace CNNX_ISA_NS {

void gemm_f32(float*, const float*, const float*, const GemmParams&);
void gemm_f64(double*, const double*, const double*, const GemmParams&);

template <class T>
void depthwise_forward(T* y, const T* x, const T* w, const T* bias, const Conv2dParams& p);
template <class T>
void depthwise_backward_input(T* dx, const T* dy, const T* w, const Conv2dParams& p);
template <class T>
void depthwise_backward_weight(T* dw, const T* x, const T* dy, const Conv2dParams& p);

namespace {

using std::int64_t;

inline void gemm(float* c, const float* a, const float* b, const GemmParams& p) { gemm_f32(c, a, b, p); }
inline void gemm(double* c, const double* a, const double* b, const GemmParams& p) { gemm_f64(c, a, b, p); }

// Target size of one tile of the column matrix: half of this machine's 2 MiB L2, leaving room for
// the GEMM's packed A block.
constexpr int64_t kColBytes = 1 << 20;
// Fewer columns than this make the GEMM's per-call costs (packing the weights) show.
constexpr int64_t kMinTileCols = 256;
// Workspace slot for the column tile (slots 0-2 belong to the GEMM).
constexpr int kColSlot = 3;

struct Shape {
  int64_t cg, kg, ckk, hw, ohw, rows_per_tile, tiles;
  bool pointwise;
};

template <class T>
Shape shape_of(const Conv2dParams& p) {
  Shape s{};
  s.cg = p.c / p.groups;
  s.kg = p.k / p.groups;
  s.ckk = s.cg * p.kh * p.kw;
  s.hw = p.h * p.w;
  s.ohw = p.oh * p.ow;
  s.pointwise = p.kh == 1 && p.kw == 1 && p.stride_h == 1 && p.stride_w == 1 && p.pad_h == 0 &&
                p.pad_w == 0;
  const int64_t cols = std::max(kMinTileCols, kColBytes / int64_t(sizeof(T)) / std::max<int64_t>(1, s.ckk));
  s.rows_per_tile = std::clamp<int64_t>(cols / p.ow, 1, p.oh);
  s.tiles = (p.oh + s.rows_per_tile - 1) / s.rows_per_tile;
  return s;
}

// The output columns ow whose input column ow*s - p + j*d lies inside [0, w): [lo, hi), with
// 0 <= lo <= hi <= out (lo is clamped: with padding wider than the input, a kernel column may see
// only padding, and im2col fills dst[0, lo) and dst[hi, out) with zeros).
inline void valid_range(int64_t size, int64_t out, int64_t s, int64_t pad, int64_t offset, int64_t* lo,
                        int64_t* hi) {
  const int64_t first = pad - offset;  // ow*s >= first
  *lo = first <= 0 ? 0 : std::min(out, (first + s - 1) / s);
  const int64_t last = size - 1 + pad - offset;  // ow*s <= last
  *hi = last < 0 ? 0 : std::min(out, last / s + 1);
  if (*hi < *lo) *hi = *lo;
}

// Rows [r0, r1) of the column matrix for output rows [oh0, oh1) of one image group (x points at its
// first channel). Row r = (c, i, j) holds (oh1 - oh0) * OW values.
template <class T>
void im2col(T* col, const T* x, const Conv2dParams& p, int64_t oh0, int64_t oh1, int64_t r0, int64_t r1) {
  const int64_t ncols = (oh1 - oh0) * p.ow, khw = p.kh * p.kw;
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t c = r / khw, i = (r / p.kw) % p.kh, j = r % p.kw;
    const T* xc = x + c * p.h * p.w;
    T* dst = col + (r - r0) * ncols;
    int64_t lo, hi;
    valid_range(p.w, p.ow, p.stride_w, p.pad_w, j * p.dil_w, &lo, &hi);
    for (int64_t oh = oh0; oh < oh1; ++oh, dst += p.ow) {
      const int64_t ih = oh * p.stride_h - p.pad_h + i * p.dil_h;
      if (ih < 0 || ih >= p.h) {
        std::fill(dst, dst + p.ow, T(0));
        continue;
      }
      const T* src = xc + ih * p.w - p.pad_w + j * p.dil_w;  // src[ow * s] is column ow
      std::fill(dst, dst + lo, T(0));
      if (p.stride_w == 1)
        std::memcpy(dst + lo, src + lo, size_t(hi - lo) * sizeof(T));
      else
        for (int64_t o = lo; o < hi; ++o) dst[o] = src[o * p.stride_w];
      std::fill(dst + hi, dst + p.ow, T(0));
    }
  }
}

// The adjoint of im2col for whole channels [c0, c1): dx[c] += dcol rows of c. Different channels
// touch disjoint memory, so threads may split the channels.
template <class T>
void col2im_add(T* dx, const T* dcol, const Conv2dParams& p, int64_t oh0, int64_t oh1, int64_t c0,
                int64_t c1) {
  const int64_t ncols = (oh1 - oh0) * p.ow;
  for (int64_t c = c0; c < c1; ++c) {
    T* dxc = dx + c * p.h * p.w;
    for (int64_t i = 0; i < p.kh; ++i)
      for (int64_t j = 0; j < p.kw; ++j) {
        const T* src = dcol + ((c * p.kh + i) * p.kw + j) * ncols;
        int64_t lo, hi;
        valid_range(p.w, p.ow, p.stride_w, p.pad_w, j * p.dil_w, &lo, &hi);
        for (int64_t oh = oh0; oh < oh1; ++oh, src += p.ow) {
          const int64_t ih = oh * p.stride_h - p.pad_h + i * p.dil_h;
          if (ih < 0 || ih >= p.h) continue;
          T* dst = dxc + ih * p.w - p.pad_w + j * p.dil_w;
          if (p.stride_w == 1)
            for (int64_t o = lo; o < hi; ++o) dst[o] += src[o];
          else
            for (int64_t o = lo; o < hi; ++o) dst[o * p.stride_w] += src[o];
        }
      }
  }
}

template <class T>
void add_bias(T* y, const T* bias, int64_t rows, int64_t cols, int64_t ld) {
  for (int64_t r = 0; r < rows; ++r) {
    const T b = bias[r];
    T* yr = y + r * ld;
    for (int64_t o = 0; o < cols; ++o) yr[o] += b;
  }
}

// Runs run_item(i, threads) for every item. With at least two items per thread, threads take whole
// items (run_item gets threads = 1); otherwise items run in order, each on all threads.
template <class F>
void run_items(int64_t items, F&& run_item) {
  const int threads = get_num_threads();
  if (threads > 1 && items >= 2 * int64_t(threads)) {
    parallel::region(threads, [&](int tid, int nt) {
      const parallel::Range mine = parallel::split(items, tid, nt);
      for (int64_t it = mine.begin; it < mine.end; ++it) run_item(it, 1);
    });
  } else {
    for (int64_t it = 0; it < items; ++it) run_item(it, threads);
  }
}

// Builds rows [0, ckk) of the column tile for output rows [oh0, oh1), `threads` threads splitting
// the rows (1 = inline on the calling thread).
template <class T>
void im2col_tile(T* col, const T* xg, const Conv2dParams& p, const Shape& s, int64_t oh0, int64_t oh1,
                 int threads) {
  const int64_t ncols = (oh1 - oh0) * p.ow;
  parallel::region(threads, [&](int tid, int nt) {
    const parallel::Range rows = parallel::split(s.ckk, tid, nt);
    im2col(col + rows.begin * ncols, xg, p, oh0, oh1, rows.begin, rows.end);
  });
}

template <class T>
void forward(T* y, const T* x, const T* w, const T* bias, const Conv2dParams& p) {
  const Shape s = shape_of<T>(p);
  const int64_t tiles = s.pointwise ? 1 : s.tiles;
  const int64_t items = p.n * p.groups * tiles;

  // One (image, group, tile) item on `threads` threads.
  auto run_item = [&](int64_t item, int threads) {
    const int64_t t = item % tiles, ng = item / tiles, n = ng / p.groups, g = ng % p.groups;
    const T* xg = x + (n * p.c + g * s.cg) * s.hw;
    const int64_t oh0 = t * s.rows_per_tile, oh1 = s.pointwise ? p.oh : std::min(p.oh, oh0 + s.rows_per_tile);
    const int64_t ncols = (oh1 - oh0) * p.ow;
    T* yt = y + (n * p.k + g * s.kg) * s.ohw + oh0 * p.ow;
    GemmParams gp;
    gp.m = s.kg, gp.n = ncols, gp.k = s.ckk, gp.lda = s.ckk, gp.ldc = s.ohw, gp.threads = threads;
    const T* b = xg;  // pointwise: the image is the column matrix
    gp.ldb = s.hw;
    if (!s.pointwise) {
      T* col = workspace_as<T>(kColSlot, s.ckk * ncols);
      im2col_tile(col, xg, p, s, oh0, oh1, threads);
      b = col, gp.ldb = ncols;
    }
    gemm(yt, w + g * s.kg * s.ckk, b, gp);
    if (bias) add_bias(yt, bias + g * s.kg, s.kg, ncols, s.ohw);
  };

  run_items(items, run_item);
}

template <class T>
void backward_input(T* dx, const T* dy, const T* w, const Conv2dParams& p) {
  const Shape s = shape_of<T>(p);
  const int64_t items = p.n * p.groups;  // col2im of neighbouring tiles overlaps: an item is a whole image group

  // dx[n,g] for one image group on `threads` threads (col2im splits the group's channels).
  auto run_item = [&](int64_t item, int threads) {
    const int64_t n = item / p.groups, g = item % p.groups;
    T* dxg = dx + (n * p.c + g * s.cg) * s.hw;
    const T* dyg = dy + (n * p.k + g * s.kg) * s.ohw;
    GemmParams gp;
    gp.m = s.ckk, gp.k = s.kg, gp.trans_a = true, gp.lda = s.ckk, gp.threads = threads;
    const T* wg = w + g * s.kg * s.ckk;
    if (s.pointwise) {
      gp.n = s.hw, gp.ldb = s.ohw, gp.ldc = s.hw;
      gemm(dxg, wg, dyg, gp);
      return;
    }
    std::fill(dxg, dxg + s.cg * s.hw, T(0));
    for (int64_t oh0 = 0; oh0 < p.oh; oh0 += s.rows_per_tile) {
      const int64_t oh1 = std::min(p.oh, oh0 + s.rows_per_tile), ncols = (oh1 - oh0) * p.ow;
      T* dcol = workspace_as<T>(kColSlot, s.ckk * ncols);
      gp.n = ncols, gp.ldb = s.ohw, gp.ldc = ncols;
      gemm(dcol, wg, dyg + oh0 * p.ow, gp);
      parallel::region(threads, [&](int tid, int nt) {
        const parallel::Range cs = parallel::split(s.cg, tid, nt);
        col2im_add(dxg, dcol, p, oh0, oh1, cs.begin, cs.end);
      });
    }
  };

  run_items(items, run_item);
}

template <class T>
void backward_bias(T* db, const T* dy, const Conv2dParams& p) {
  const int64_t ohw = p.oh * p.ow;
  parallel::region(get_num_threads(), [&](int tid, int nt) {
    const parallel::Range ks = parallel::split(p.k, tid, nt);
    for (int64_t k = ks.begin; k < ks.end; ++k) {
      T acc = T(0);
      for (int64_t n = 0; n < p.n; ++n) {
        const T* dyk = dy + (n * p.k + k) * ohw;
        for (int64_t o = 0; o < ohw; ++o) acc += dyk[o];
      }
      db[k] = acc;
    }
  });
}

template <class T>
void backward_weight(T* dw, const T* x, const T* dy, const Conv2dParams& p) {
  const Shape s = shape_of<T>(p);
  const int threads = get_num_threads();
  for (int64_t g = 0; g < p.groups; ++g) {
    T* dwg = dw + g * s.kg * s.ckk;
    if (p.n == 0) std::fill(dwg, dwg + s.kg * s.ckk, T(0));
    for (int64_t n = 0; n < p.n; ++n) {
      const T* xg = x + (n * p.c + g * s.cg) * s.hw;
      const T* dyg = dy + (n * p.k + g * s.kg) * s.ohw;
      GemmParams gp;
      gp.m = s.kg, gp.n = s.ckk, gp.trans_b = true, gp.lda = s.ohw, gp.ldc = s.ckk, gp.threads = threads;
      if (s.pointwise) {
        gp.k = s.hw, gp.ldb = s.hw, gp.beta = n == 0 ? 0.0 : 1.0;
        gemm(dwg, dyg, xg, gp);
        continue;
      }
      for (int64_t oh0 = 0; oh0 < p.oh; oh0 += s.rows_per_tile) {
        const int64_t oh1 = std::min(p.oh, oh0 + s.rows_per_tile), ncols = (oh1 - oh0) * p.ow;
        T* col = workspace_as<T>(kColSlot, s.ckk * ncols);
        im2col_tile(col, xg, p, s, oh0, oh1, threads);
        gp.k = ncols, gp.ldb = ncols, gp.beta = n == 0 && oh0 == 0 ? 0.0 : 1.0;
        gemm(dwg, dyg + oh0 * p.ow, col, gp);
      }
    }
  }
}

inline bool is_depthwise(const Conv2dParams& p) { return p.groups > 1 && p.groups == p.c; }

}  // namespace

template <class T>
void conv2d_forward(T* y, const T* x, const T* w, const T* bias, const Conv2dParams& p) {
  if (p.n == 0 || p.k == 0) return;
  if (is_depthwise(p)) return depthwise_forward(y, x, w, bias, p);
  forward(y, x, w, bias, p);
}

template <class T>
void conv2d_backward_input(T* dx, const T* dy, const T* w, const Conv2dParams& p) {
  if (p.n == 0 || p.c == 0) return;
  if (is_depthwise(p)) return depthwise_backward_input(dx, dy, w, p);
  backward_input(dx, dy, w, p);
}

template <class T>
void conv2d_backward_weight(T* dw, T* db, const T* x, const T* dy, const Conv2dParams& p) {
  if (is_depthwise(p))
    depthwise_backward_weight(dw, x, dy, p);
  else
    backward_weight(dw, x, dy, p);
  if (db) backward_bias(db, dy, p);
}

#define CNNX_INSTANTIATE(T)                                                                     \
  template void conv2d_forward<T>(T*, const T*, const T*, const T*, const Conv2dParams&);       \
  template void conv2d_backward_input<T>(T*, const T*, const T*, const Conv2dParams&);          \
  template void conv2d_backward_weight<T>(T*, T*, const T*, const T*, const Conv2dParams&);
CNNX_INSTANTIATE(float)
CNNX_INSTANTIATE(double)
#undef CNNX_INSTANTIATE

}  // namespace CNNX_ISA_NS
}  // namespace cnnx
