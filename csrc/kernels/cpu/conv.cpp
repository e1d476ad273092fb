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
// Threads: see the comment above forward().
#include <algorithm>
#include <cstdint>
#include <cstring>

#include "cnnx/conv.h"
#include "cnnx/gemm.h"
#include "cnnx/runtime.h"
#include "cpu/conv_geometry.h"
#include "cpu/flat_plan.h"
#include "cpu/gemm_packed.h"
#include "cpu/parallel.h"
#include "cpu/simd.h"

namespace cnnx {
namespace CNNX_ISA_NS {

template <class T>
void depthwise_forward(T* y, const T* x, const T* w, const T* bias, const Conv2dParams& p);
template <class T>
void depthwise_backward_input(T* dx, const T* dy, const T* w, const Conv2dParams& p);
template <class T>
bool depthwise_backward_weight(T* dw, T* db, const T* x, const T* dy, const Conv2dParams& p);
// conv_direct.cpp: dense layers without a column matrix. `force`: wherever it can run (else only
// where it is measured faster).
template <class T>
bool direct_fits_forward(const Conv2dParams& p, bool force);
template <class T>
bool direct_fits_backward_input(const Conv2dParams& p, bool force);
template <class T>
void direct_forward(T* y, const T* x, const T* w, const T* bias, const ConvEpilogue<T>* e, const Conv2dParams& p);
template <class T>
void direct_backward_input(T* dx, const T* dy, const T* w, const Conv2dParams& p);
template <class T>
bool direct_fits_backward_weight(const Conv2dParams& p, bool force);
template <class T>
void direct_backward_weight(T* dw, const T* x, const T* dy, const Conv2dParams& p);
// conv_rows.cpp: layers with few output channels, output rows in vectors.
template <class T>
bool rows_fits(const Conv2dParams& p, bool force);
template <class T>
void rows_forward(T* y, const T* x, const T* w, const T* bias, const Conv2dParams& p);
template <class T>
bool rows_fits_backward_input(const Conv2dParams& p, bool force);
template <class T>
bool rows_fits_backward_weight(const Conv2dParams& p, bool force);
template <class T>
void rows_backward_weight(T* dw, const T* x, const T* dy, const Conv2dParams& p);
template <class T>
void rows_backward_input(T* dx, const T* dy, const T* w, const Conv2dParams& p);
// conv_winograd.cpp: 3x3 and 5x5 stride-1 layers in 2.25x / 2.8x fewer multiplies.
template <class T>
bool winograd_fits(const Conv2dParams& p, bool force);
template <class T>
void winograd_forward(T* y, const T* x, const T* w, const T* bias, const ConvEpilogue<T>* e, const Conv2dParams& p);
template <class T>
bool winograd_fits_backward_input(const Conv2dParams& p, bool force);
template <class T>
void winograd_backward_input(T* dx, const T* dy, const T* w, const Conv2dParams& p);
template <class T>
bool winograd_fits_backward_weight(const Conv2dParams& p, bool force);
template <class T>
void winograd_backward_weight(T* dw, const T* x, const T* dy, const Conv2dParams& p);

namespace {

using std::int64_t;

inline void gemm(float* c, const float* a, const float* b, const GemmParams& p) { gemm_f32(c, a, b, p); }
inline void gemm(double* c, const double* a, const double* b, const GemmParams& p) { gemm_f64(c, a, b, p); }

// Target size of one tile of the column matrix: half of this machine's 2 MiB L2, leaving room for
// the GEMM's packed A block.
constexpr int64_t kColBytes = 1 << 20;
// Fewer columns than this make the GEMM's per-call costs (packing the weights) show.
constexpr int64_t kMinTileCols = 256;
// A pointwise image with at least this many pixels is a GEMM of its own, read and written in place:
// grouping images copies them into a column matrix and scatters the products back, which cost more
// than the wider GEMM gained (14x14 layers with 512 channels were grouped in twos). Not 7x7 images
// as channels x pixels: alone, their 49 columns fill a third of the GEMM's last register tile, and
// dx ran 1.5x slower (as pixels x channels they fit: see shape_of).
constexpr int64_t kPointwiseAlone = 128;
// Workspace slots (0-2 belong to the GEMM): the column tile, and a gathered/staged output block.
constexpr int kColSlot = 3;
constexpr int kStageSlot = 4;
constexpr int kPackedWeightSlot = 5;  // the weights packed once per call (calling thread's, shared)
constexpr int kRowSlot = 6;           // one column-matrix row on its way into the packed layout

// How the work is cut. An image larger than a tile is split into tiles of output rows; images
// smaller than a tile are put side by side in one column matrix (a "block" of images), so the
// GEMMs of small late layers (14x14, 7x7) still get a few hundred columns. Both depend on the
// shapes only, never on the thread count.
struct Shape {
  int64_t cg, kg, ckk, hw, ohw;
  int64_t imgs;           // images per block (1 when an image fills a tile)
  int64_t blocks;         // image blocks: ceil(N / imgs)
  int64_t rows_per_tile;  // output rows per tile (all of them when imgs > 1)
  int64_t tiles;          // row tiles per image
  bool pointwise;
  // A pointwise image is one GEMM, weights x pixels. Where the GEMM's register tiles fit it better
  // as pixels x weights (gemm_computes_transposed: 196 pixels are 14 rows of 14 exactly, while 196
  // columns leave a 4-column panel), the forward and dx multiply it that way, y^T = x^T w^T
  // (dx^T = dy^T w), stored transposed, with the weights as the GEMM's B. Such images are always
  // whole (imgs == 1): the column matrix is the image itself.
  bool by_pixels;
};

// The three passes: shape_of cuts pointwise layers differently for the weight gradient.
enum class Pass { forward, input, weight };

// pass: the forward and dx may multiply a pointwise image pixels x channels (by_pixels). A small
// image (7x7) that fits the GEMM's tiles that way is then a GEMM of its own as well: its 49 rows are
// 3.5 tiles, and nothing is copied (MobileNet's 7x7 layers at batch 32, forward and dx: 1.09-1.37x).
// The weight gradient reduces over the pixels and keeps grouping them (alone it ran 0.9x).
template <class T>
Shape shape_of(const Conv2dParams& p, Pass pass) {
  Shape s{};
  s.cg = p.c / p.groups;
  s.kg = p.k / p.groups;
  s.ckk = s.cg * p.kh * p.kw;
  s.hw = p.h * p.w;
  s.ohw = p.oh * p.ow;
  s.pointwise = p.kh == 1 && p.kw == 1 && p.stride_h == 1 && p.stride_w == 1 && p.pad_h == 0 &&
                p.pad_w == 0;
  const int64_t cols = std::max(kMinTileCols, kColBytes / int64_t(sizeof(T)) / std::max<int64_t>(1, s.ckk));
  const int64_t rows = pass == Pass::forward ? s.kg : s.ckk;  // of the usual product, channels x pixels
  s.by_pixels = s.pointwise && pass != Pass::weight && gemm_computes_transposed(rows, s.ohw, T(0));
  s.imgs = s.ohw >= cols || (s.pointwise && s.ohw >= kPointwiseAlone) || s.by_pixels
               ? 1
               : std::clamp<int64_t>(cols / std::max<int64_t>(1, s.ohw), 1, std::max<int64_t>(1, p.n));
  s.blocks = (p.n + s.imgs - 1) / s.imgs;
  // A pointwise image is its own column matrix (no copy to bound), so it is never cut into row
  // tiles; the direct pointwise paths below rely on that.
  const bool whole = s.imgs > 1 || s.pointwise;
  s.rows_per_tile = whole ? p.oh : std::clamp<int64_t>(cols / p.ow, 1, p.oh);
  s.tiles = (p.oh + s.rows_per_tile - 1) / s.rows_per_tile;
  return s;
}

// One unit of work: images [n0, n1) of group g, output rows [oh0, oh1) of each. Its column matrix
// has cols() columns: image by image, row by row.
struct Block {
  int64_t g, n0, n1, oh0, oh1, ow;
  int64_t per_image() const { return (oh1 - oh0) * ow; }
  int64_t cols() const { return (n1 - n0) * per_image(); }
  bool single() const { return n1 - n0 == 1; }
};

// Blocks are numbered group-major, then image block, then row tile.
inline Block block_of(int64_t item, const Shape& s, const Conv2dParams& p) {
  const int64_t t = item % s.tiles, b = (item / s.tiles) % s.blocks, g = item / (s.tiles * s.blocks);
  const int64_t oh0 = t * s.rows_per_tile;
  return {g, b * s.imgs, std::min(p.n, (b + 1) * s.imgs), oh0, std::min(p.oh, oh0 + s.rows_per_tile), p.ow};
}

// Rows [r0, r1) of the column matrix for output rows [oh0, oh1) of one image group (x points at its
// first channel). Row r = (c, i, j) holds (oh1 - oh0) * OW values at col + (r - r0) * ld.
template <class T>
void im2col_rows(T* col, int64_t ld, const T* x, const Conv2dParams& p, int64_t oh0, int64_t oh1, int64_t r0,
                 int64_t r1) {
  const int64_t khw = p.kh * p.kw;
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t c = r / khw, i = (r / p.kw) % p.kh, j = r % p.kw;
    const T* xc = x + c * p.h * p.w;
    T* dst = col + (r - r0) * ld;
    int64_t lo, hi;
    valid_range(p.w, p.ow, p.stride_w, p.pad_w, j * p.dil_w, &lo, &hi);
    for (int64_t oh = oh0; oh < oh1; ++oh, dst += p.ow) {
      const int64_t ih = oh * p.stride_h - p.pad_h + i * p.dil_h;
      if (ih < 0 || ih >= p.h) {
        std::fill(dst, dst + p.ow, T(0));
        continue;
      }
      const T* src = shifted(xc, ih * p.w - p.pad_w + j * p.dil_w);  // src[ow * s] is column ow
      if (p.stride_w == 1) {
        copy_window_row(dst, src, p.ow, lo, hi);
        continue;
      }
      std::fill(dst, dst + lo, T(0));
      for (int64_t o = lo; o < hi; ++o) dst[o] = src[o * p.stride_w];
      std::fill(dst + hi, dst + p.ow, T(0));
    }
  }
}

// Lanes l of the Vec at plane position `at` with o0 <= at + l < o1.
template <class T>
CNNX_INLINE std::uint32_t range_lanes(int64_t at, int64_t o0, int64_t o1) {
  constexpr int64_t W = simd::Vec<T>::width;
  const int64_t lo = std::clamp<int64_t>(o0 - at, 0, W), hi = std::clamp<int64_t>(o1 - at, 0, W);
  return hi > lo ? ((std::uint32_t(1) << hi) - 1u) & ~((std::uint32_t(1) << lo) - 1u) : 0u;
}

// The same rows on a small plane, a Vec at a time over the flattened output positions
// [oh0 * OW, oh1 * OW) (cpu/flat_plan.h): row (c, i, j) is tap (i, j) of plane c, one masked shifted
// load per Vec (stride 1, "same" size) or one masked gather. The row version moves OW values per
// step, which for the narrow rows of late layers (4 to 28 values) costs more in loop and call
// overhead than in copying. Vecs are aligned to the plane, so a tile that starts mid-Vec writes its
// first and last Vec through a lane mask.
template <class T, bool G>
void im2col_flat(T* col, int64_t ld, const T* x, const Conv2dParams& p, int64_t oh0, int64_t oh1, int64_t r0,
                 int64_t r1, const flat::FlatPlan& F) {
  using V = simd::Vec<T>;
  constexpr int64_t W = V::width;
  constexpr std::uint32_t all = (std::uint32_t(1) << W) - 1u;
  const int64_t o0 = oh0 * p.ow, o1 = oh1 * p.ow, v0 = o0 / W, v1 = (o1 + W - 1) / W;
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t q = r % F.ntaps;
    const T* xc = x + (r / F.ntaps) * p.h * p.w;
    T* dst = shifted(col + (r - r0) * ld, -o0);  // dst[o] holds plane position o
    const std::uint32_t* m = F.mask.data() + q;
    for (int64_t v = v0; v < v1; ++v) {
      const std::uint32_t live = range_lanes<T>(v * W, o0, o1);
      const typename V::reg val = flat::flat_load<T, G>(xc, v, q, m[v * F.ntaps] & live, F);
      if (live == all)
        V::store(shifted(dst, v * W), val);
      else
        V::store_lanes(shifted(dst, v * W), val, live);
    }
  }
}

// Rows of at most this many values take the flat path when a whole image is built. Measured on
// AVX-512, 2 threads, forward: 512x4x4 3x3 at batch 64 18.1 -> 14.9 ms, 96x28x28 3x3 at batch 32
// 23.1 -> 20.5 ms, 16x28x28 5x5 3.9 -> 3.3 ms, 128x16x16 stride 2 9.1 -> 8.2 ms; at 32 and 56
// values per row both versions run at the same speed.
constexpr int64_t kFlatMaxRow = 32;
// Layers that need gathers (strided, or not "same" size) only up to this many values per row: a
// gather costs about a load per lane. Measured, batch 256, 1 thread: LeNet's C1 (28 values, "valid")
// forward 2.06 ms gathered vs 1.73 ms by rows; C3 (10 values) 2.40 vs 2.89 ms; C5 (1 value) 1.08 vs
// 1.38 ms; a stride-2 28x28 -> 14x14 layer 0.12 vs 0.16 ms.
constexpr int64_t kGatherMaxRow = 16;

// The flat plan for the column matrix of this shape, or null when the row version serves it better
// (wide rows, large planes). Per thread (cpu/plan_cache.h): look it up on the thread
// that uses it.
template <class T>
const flat::FlatPlan* flat_im2col_plan(const Conv2dParams& p) {
  if (p.ow > kFlatMaxRow) return nullptr;
  if (!flat::shift_applies(p) && (p.ow > kGatherMaxRow || p.h * p.w > flat::kGatherMaxPlane)) return nullptr;
  return &flat::flat_plan<T>(p);
}

template <class T>
void im2col(T* col, int64_t ld, const T* x, const Conv2dParams& p, int64_t oh0, int64_t oh1, int64_t r0,
            int64_t r1, const flat::FlatPlan* F) {
  if (!F)
    im2col_rows(col, ld, x, p, oh0, oh1, r0, r1);
  else if (F->gather)
    im2col_flat<T, true>(col, ld, x, p, oh0, oh1, r0, r1, *F);
  else
    im2col_flat<T, false>(col, ld, x, p, oh0, oh1, r0, r1, *F);
}

// Rows [r0, r1) of a block's column matrix (every image of the block), at col with row stride ld.
template <class T>
void im2col_block(T* col, int64_t ld, const T* x, const Block& b, const Shape& s, const Conv2dParams& p,
                  int64_t r0, int64_t r1, const flat::FlatPlan* F) {
  for (int64_t n = b.n0; n < b.n1; ++n)
    im2col(col + (n - b.n0) * b.per_image(), ld, x + (n * p.c + b.g * s.cg) * s.hw, p, b.oh0, b.oh1, r0, r1, F);
}
template <class T>
void im2col_block(T* col, int64_t ld, const T* x, const Block& b, const Shape& s, const Conv2dParams& p,
                  int64_t r0, int64_t r1) {
  im2col_block(col, ld, x, b, s, p, r0, r1, flat_im2col_plan<T>(p));
}

// Rows [r0, r1) of a block's column matrix written straight into the GEMM's packed-B layout at dst
// (gemm_pack_b_row), a row at a time through an L1-sized buffer: the GEMM then reads it without
// copying it again (a row-major column matrix is copied once more into panels by the GEMM).
template <class T>
void im2col_packed(T* dst, const T* x, const Block& b, const Shape& s, const Conv2dParams& p, int64_t r0,
                   int64_t r1) {
  T* row = workspace_as<T>(kRowSlot, b.cols());
  const flat::FlatPlan* F = flat_im2col_plan<T>(p);
  for (int64_t r = r0; r < r1; ++r) {
    im2col_block(row, b.cols(), x, b, s, p, r, r + 1, F);
    gemm_pack_b_row(dst, row, s.ckk, b.cols(), r);
  }
}

// dst[o * S + t] += src[t][o] for t < S and o in [o0, o1): S neighbouring taps of a column stride
// S, whose outputs interleave into one contiguous run of dx. A vector of each tap's values,
// interleaved (Vec::zip, twice for S = 4), adds onto S whole vectors of dx.
template <class T, int S>
void add_interleaved(T* dst, const T* const* src, int64_t o0, int64_t o1) {
  using V = simd::Vec<T>;
  constexpr int64_t W = V::width;
  int64_t o = o0;
  for (; o + W <= o1; o += W) {
    typename V::reg v[S];
    if constexpr (S == 2) {
      V::zip(V::load(src[0] + o), V::load(src[1] + o), v[0], v[1]);
    } else {
      typename V::reg e0, e1, f0, f1;
      V::zip(V::load(src[0] + o), V::load(src[2] + o), e0, e1);
      V::zip(V::load(src[1] + o), V::load(src[3] + o), f0, f1);
      V::zip(e0, f0, v[0], v[1]);
      V::zip(e1, f1, v[2], v[3]);
    }
    T* d = dst + o * S;
    for (int q = 0; q < S; ++q) V::store(d + q * W, V::add(V::load(d + q * W), v[q]));
  }
  for (; o < o1; ++o)
    for (int t = 0; t < S; ++t) dst[o * S + t] += src[t][o];
}

// The adjoint of im2col for whole channels [c0, c1): dx[c] += the dcol rows of c (dcol starts at
// channel c0's first row; row stride ld). Different channels touch disjoint memory, so threads may
// split them. With column stride 2 or 4 (and no column dilation) each run of S taps of a kernel row
// adds as one interleaved run (add_interleaved) where all S are inside the image, one value at a time
// at the edges; each dx value still receives its taps in (c, i, j) order, one per run, so the bits
// are those of the plain loop.
template <class T>
void col2im_rows(T* dx, const T* dcol, int64_t ld, const Conv2dParams& p, int64_t oh0, int64_t oh1, int64_t c0,
                int64_t c1) {
  const int64_t S = p.stride_w;
  const bool runs = (S == 2 || S == 4) && p.dil_w == 1;
  for (int64_t c = c0; c < c1; ++c) {
    T* dxc = dx + c * p.h * p.w;
    for (int64_t i = 0; i < p.kh; ++i)
      for (int64_t j = 0; j < p.kw;) {
        const int64_t taps = runs && j + S <= p.kw ? S : 1;
        const T* src[4];
        int64_t lo[4], hi[4], all_lo = 0, all_hi = p.ow;
        for (int64_t t = 0; t < taps; ++t) {
          src[t] = dcol + (((c - c0) * p.kh + i) * p.kw + j + t) * ld;
          valid_range(p.w, p.ow, S, p.pad_w, (j + t) * p.dil_w, &lo[t], &hi[t]);
          all_lo = std::max(all_lo, lo[t]);
          all_hi = std::min(all_hi, hi[t]);
        }
        all_hi = std::max(all_hi, all_lo);  // no common part: each tap's edges then cover its range
        for (int64_t oh = oh0; oh < oh1; ++oh) {
          const int64_t ih = oh * p.stride_h - p.pad_h + i * p.dil_h;
          if (ih >= 0 && ih < p.h) {
            T* dst = dxc + ih * p.w - p.pad_w + j * p.dil_w;  // tap j + t's output o: dst[o * S + t]
            const int64_t at = (oh - oh0) * p.ow;
            if (taps == 1) {
              if (S == 1)
                for (int64_t o = lo[0]; o < hi[0]; ++o) dst[o] += src[0][at + o];
              else
                for (int64_t o = lo[0]; o < hi[0]; ++o) dst[o * S] += src[0][at + o];
            } else {
              const T* rows[4];
              for (int64_t t = 0; t < taps; ++t) {  // the edges, where some of the taps fall outside
                rows[t] = src[t] + at;
                for (int64_t o = lo[t]; o < std::min(hi[t], all_lo); ++o) dst[o * S + t] += rows[t][o];
                for (int64_t o = std::max(lo[t], all_hi); o < hi[t]; ++o) dst[o * S + t] += rows[t][o];
              }
              if (all_lo < all_hi) {
                if (S == 2)
                  add_interleaved<T, 2>(dst, rows, all_lo, all_hi);
                else
                  add_interleaved<T, 4>(dst, rows, all_lo, all_hi);
              }
            }
          }
        }
        j += taps;
      }
  }
}

// The same on a small plane with stride 1 and "same" size (see im2col_flat): tap q's row of dcol adds
// onto the plane shifted by the tap's offset, a Vec at a time, reading and writing only the lanes
// the tap's mask and the tile's range keep. Each dx element receives its taps in the same order as
// above.
template <class T>
void col2im_flat(T* dx, const T* dcol, int64_t ld, const Conv2dParams& p, int64_t oh0, int64_t oh1, int64_t c0,
                 int64_t c1, const flat::FlatPlan& F) {
  using V = simd::Vec<T>;
  constexpr int64_t W = V::width;
  const int64_t o0 = oh0 * p.ow, o1 = oh1 * p.ow, v0 = o0 / W, v1 = (o1 + W - 1) / W;
  for (int64_t c = c0; c < c1; ++c) {
    T* dxc = dx + c * p.h * p.w;
    for (int64_t q = 0; q < F.ntaps; ++q) {
      const T* src = shifted(dcol + ((c - c0) * F.ntaps + q) * ld, -o0);  // src[o]: plane position o
      const std::uint32_t* m = F.mask.data() + q;
      for (int64_t v = v0; v < v1; ++v) {
        const std::uint32_t bits = m[v * F.ntaps] & range_lanes<T>(v * W, o0, o1);
        if (!bits) continue;
        T* d = shifted(dxc, v * W + F.off[q]);
        const typename V::reg g = V::load_lanes(shifted(src, v * W), bits);
        V::store_lanes(d, V::add(V::load_lanes(d, bits), g), bits);
      }
    }
  }
}

template <class T>
void col2im_add(T* dx, const T* dcol, int64_t ld, const Conv2dParams& p, int64_t oh0, int64_t oh1, int64_t c0,
                int64_t c1, const flat::FlatPlan* F) {
  if (F && !F->gather)
    col2im_flat(dx, dcol, ld, p, oh0, oh1, c0, c1, *F);
  else
    col2im_rows(dx, dcol, ld, p, oh0, oh1, c0, c1);
}

// Output-side rows [k0, k1) of a block, between the images' own layout (channel planes of `ch`
// channels, group offset g * kg, output rows oh0..oh1) and the block's side-by-side layout
// (row stride ld): gather_rows copies into the block (dy), scatter_rows out of it, adding the
// bias (y).
template <class T>
void gather_rows(T* blk, int64_t ld, const T* img, const Block& b, const Shape& s, int64_t ch, int64_t k0,
                 int64_t k1) {
  for (int64_t n = b.n0; n < b.n1; ++n)
    for (int64_t k = k0; k < k1; ++k)
      std::memcpy(blk + k * ld + (n - b.n0) * b.per_image(), img + (n * ch + b.g * s.kg + k) * s.ohw + b.oh0 * b.ow,
                  size_t(b.per_image()) * sizeof(T));
}
template <class T>
void scatter_rows(T* img, const T* blk, int64_t ld, const T* bias, const Block& b, const Shape& s, int64_t ch,
                  int64_t k0, int64_t k1) {
  for (int64_t n = b.n0; n < b.n1; ++n)
    for (int64_t k = k0; k < k1; ++k) {
      T* dst = img + (n * ch + b.g * s.kg + k) * s.ohw + b.oh0 * b.ow;
      const T* src = blk + k * ld + (n - b.n0) * b.per_image();
      if (bias) {
        const T bk = bias[b.g * s.kg + k];
        for (int64_t o = 0; o < b.per_image(); ++o) dst[o] = src[o] + bk;
      } else {
        std::memcpy(dst, src, size_t(b.per_image()) * sizeof(T));
      }
    }
}

constexpr int64_t kColUnit = 32;  // columns split between threads in these units: a GEMM register tile's width

// Share [begin, end) of `total` rows for thread tid of nt, cut at multiples of `unit` (a GEMM
// register tile, or a whole channel's rows) so no thread gets a ragged middle piece.
inline parallel::Range split_units(int64_t total, int64_t unit, int tid, int nt) {
  const int64_t units = (total + unit - 1) / unit;
  const parallel::Range r = parallel::split(units, tid, nt);
  return {std::min(total, r.begin * unit), std::min(total, r.end * unit)};
}

// fn(j0, j1) on each thread's share of `cols` columns (kColUnit at a time), as many threads as
// `macs` multiply-adds are worth: a pointwise image split by columns.
template <class Fn>
void by_columns(int64_t cols, double macs, Fn fn) {
  parallel::region(threads_for(macs, (cols + kColUnit - 1) / kColUnit), [&](int tid, int nt) {
    const parallel::Range js = split_units(cols, kColUnit, tid, nt);
    if (js.begin < js.end) fn(js.begin, js.end);
  });
}

// Whether the threads pack every group's weights once, up front (pack_group_weights), rather than
// each GEMM packing them again: where they serve several GEMMs (`reused`). A pointwise layer's
// weights are small, except in deep layers: 512 x 512 (1 MiB) repacked for each of 32 images was
// 4-5% of MobileNet's 14x14 pointwise forward (one A/B run, 2 threads: 10.8 -> 10.3 ms).
constexpr int64_t kPackPointwiseBytes = int64_t(256) << 10;

template <class T>
bool pack_weights_once(const Shape& s, bool reused) {
  return reused && (!s.pointwise || s.kg * s.ckk * int64_t(sizeof(T)) >= kPackPointwiseBytes);
}

// The weights of every group packed for the GEMM, thread tid of nt taking its share of the panels:
// w[g] (kg x ckk) for the forward, or its transpose (ckk x kg) for dx, as the GEMM's A
// (gemm_pack_a); or, where the images are multiplied pixels x channels (Shape::by_pixels), the
// transpose of that as its B (gemm_pack_b). The caller synchronises before the GEMMs read it.
// packed_group_size: the values of one group.
template <class T>
int64_t packed_group_size(const Shape& s, bool transposed) {
  const int64_t m = transposed ? s.ckk : s.kg, k = transposed ? s.kg : s.ckk;
  return s.by_pixels ? gemm_packed_b_size(k, m, T(0)) : gemm_packed_a_size(m, k, T(0));
}

template <class T>
void pack_group_weights(T* pack, const T* w, const Shape& s, int64_t groups, bool transposed, int tid, int nt) {
  const int64_t m = transposed ? s.ckk : s.kg, k = transposed ? s.kg : s.ckk;
  const int64_t panels = s.by_pixels ? gemm_b_panels(m, T(0)) : gemm_a_panels(m, T(0));
  const int64_t size = packed_group_size<T>(s, transposed);
  const parallel::Range q = parallel::split(groups * panels, tid, nt);
  for (int64_t i = q.begin; i < q.end; ++i) {
    const int64_t g = i / panels, panel = i % panels;
    const T* wg = w + g * s.kg * s.ckk;
    if (s.by_pixels)  // op(B) = the m x k matrix's transpose, k x m
      gemm_pack_b(pack + g * size, wg, s.ckk, !transposed, k, m, panel, panel + 1);
    else
      gemm_pack_a(pack + g * size, wg, s.ckk, transposed, m, k, panel, panel + 1);
  }
}

// Threading. Conv never lets the GEMM split itself (its blocks synchronise several times per call,
// which is costly when a shared host briefly takes a core away); each thread runs single-threaded
// GEMMs on work of its own:
//   forward          whole blocks when there are at least two per thread; otherwise, per block,
//                    threads build the column matrix together (one barrier) and each multiplies
//                    its own rows of output channels.
//   backward_input   whole blocks of whole images per thread; otherwise each thread owns a range of
//                    input channels: its rows of dcol and its planes of dx (no barrier at all).
//   backward_weight  each thread owns a range of dw columns (input channel, kernel tap): it builds
//                    only those rows of the column matrix and sums the blocks in order (no barrier).
// Every output element is therefore summed by one thread in an order fixed by the shapes alone, so
// results are bitwise identical for any thread count.
template <class T>
void forward(T* y, const T* x, const T* w, const T* bias, const Conv2dParams& p) {
  Shape s = shape_of<T>(p, Pass::forward);
  const int threads = get_num_threads();
  const int64_t nt64 = threads;
  // A forward output is one GEMM dot product whatever the column tiling, so here (unlike the
  // backward passes) tiles may follow the thread count: when the row tiles of single-image blocks
  // would not divide between the threads (AlexNet's conv1 at batch 1: 5 tiles), cut the rows into
  // slightly smaller tiles that do, so each thread builds and multiplies whole tiles of its own
  // instead of sharing every tile (a barrier per tile, and half of each column matrix read from the
  // other core's cache).
  if (threads > 1 && s.imgs == 1 && !s.pointwise) {
    const int64_t per = p.groups * s.blocks;
    int64_t tiles = s.tiles;
    while ((per * tiles) % nt64 != 0 && per * tiles < 8 * nt64 && tiles < p.oh) ++tiles;
    const int64_t rows = (p.oh + tiles - 1) / tiles;
    if ((per * ((p.oh + rows - 1) / rows)) % nt64 == 0) {
      s.rows_per_tile = rows;
      s.tiles = (p.oh + rows - 1) / rows;
    }
  }
  const int64_t items = p.groups * s.blocks * s.tiles;
  constexpr int64_t kRowUnit = 16;

  // Output channels [k0, k1) of block b from its column matrix `col` (row stride ldb): straight
  // into y for a single image, else into the staging block `stage` and scattered from there.
  // `packed`: the group weights packed for the GEMM (whole groups only, k0 == 0), or null.
  // (as the GEMM's B where the images are multiplied pixels x channels: Shape::by_pixels).
  const T* packed = nullptr;
  const int64_t packed_group = packed_group_size<T>(s, false);
  // `col` is row-major with row stride ldb, or (ldb == 0) in the GEMM's packed-B layout.
  auto multiply = [&](const Block& b, const T* col, int64_t ldb, T* stage, int64_t k0, int64_t k1) {
    if (k1 <= k0) return;
    GemmParams gp;
    gp.m = k1 - k0, gp.n = b.cols(), gp.k = s.ckk, gp.lda = s.ckk, gp.ldb = ldb ? ldb : b.cols(), gp.threads = 1;
    const T* wk = w + (b.g * s.kg + k0) * s.ckk;
    const T* whole = packed && k0 == 0 && k1 == s.kg ? packed + b.g * packed_group : nullptr;
    // cb: the bias of c's rows (output channels k0..), added by the GEMM as it stores them, or null.
    auto product = [&](T* c, const T* cb) {
      if (s.by_pixels && whole)  // c^T = col^T w^T: col is the image
        gemm_prepacked(c, col, nullptr, nullptr, whole, transposed_product(gp), cb);
      else  // unpacked weights leave the orientation to the GEMM
        gemm_prepacked(c, wk, s.by_pixels ? nullptr : whole, ldb ? col : nullptr, ldb ? nullptr : col, gp, cb);
    };
    if (b.single()) {
      T* yt = y + (b.n0 * p.k + b.g * s.kg + k0) * s.ohw + b.oh0 * p.ow;
      gp.ldc = s.ohw;
      product(yt, bias ? bias + b.g * s.kg + k0 : nullptr);
    } else {
      gp.ldc = b.cols();
      product(stage + k0 * b.cols(), nullptr);
      scatter_rows(y, stage, b.cols(), bias, b, s, p.k, k0, k1);
    }
  };
  // The block's column matrix: the image itself for a single pointwise image, else built.
  auto direct = [&](const Block& b) { return s.pointwise && b.single(); };
  // Built in the GEMM's packed layout when the GEMM would copy it into panels anyway (many rows of
  // output channels, a short reduction, long rows); else the GEMM reads a row-major one in place.
  auto pack_col = [&](const Block& b) { return !gemm_reads_b_in_place(s.kg, s.ckk, b.cols(), T(0)); };

  // Whole blocks per thread when they divide evenly or are many (5 blocks on 2 threads would leave
  // one idle for a fifth of the time); one thread takes them all this way too, so it also packs the
  // weights once (and multiplies pointwise images as pixels x channels) rather than once per block.
  if (items >= nt64 && (items % nt64 == 0 || items >= 8 * nt64)) {
    // Each GEMM would pack its weights again (for a deep layer, megabytes per image): when every
    // group's weights serve several blocks, the threads pack them once, together, first.
    T* pack = pack_weights_once<T>(s, items >= 2 * p.groups) ? workspace_as<T>(kPackedWeightSlot, p.groups * packed_group)
                                                              : nullptr;
    packed = pack;
    // Blocks are independent (each a GEMM of its own into its own outputs): threads take them as
    // they come free (parallel::Dispenser).
    parallel::Dispenser dispenser(items, threads, 1);
    parallel::region(threads, [&](int tid, int nt) {
      if (pack) {
        pack_group_weights(pack, w, s, p.groups, false, tid, nt);
        parallel::barrier(nt);  // every panel packed
      }
      dispenser.each([&](int64_t it) {
        const Block b = block_of(it, s, p);
        T* stage = b.single() ? nullptr : workspace_as<T>(kStageSlot, s.kg * b.cols());
        if (direct(b)) {
          multiply(b, x + (b.n0 * p.c + b.g * s.cg) * s.hw, s.hw, stage, 0, s.kg);
          return;
        }
        if (!pack_col(b)) {
          T* col = workspace_as<T>(kColSlot, s.ckk * b.cols());
          im2col_block(col, b.cols(), x, b, s, p, 0, s.ckk);
          multiply(b, col, b.cols(), stage, 0, s.kg);
          return;
        }
        T* col = workspace_as<T>(kColSlot, gemm_packed_b_size(s.ckk, b.cols(), T(0)));
        im2col_packed(col, x, b, s, p, 0, s.ckk);
        multiply(b, col, 0, stage, 0, s.kg);
      });
    });
    return;
  }
  for (int64_t it = 0; it < items; ++it) {
    const Block b = block_of(it, s, p);
    // Buffers of the calling thread, shared by the team.
    const bool packed_col = !direct(b) && pack_col(b);
    T* col = direct(b) ? nullptr
                       : workspace_as<T>(kColSlot, packed_col ? gemm_packed_b_size(s.ckk, b.cols(), T(0))
                                                              : s.ckk * b.cols());
    T* stage = b.single() ? nullptr : workspace_as<T>(kStageSlot, s.kg * b.cols());
    if (direct(b) && threads > 1 && s.kg < b.cols()) {
      // A pointwise image (a few images at small batch) larger than its weights is split by columns,
      // not by output channels: each thread then reads only its part of the image (by channels, each
      // read all of it) and its GEMM reuses every B panel across all the A panels (dx at 112x112,
      // 32 -> 64 channels: 0.75 -> 0.52 ms). With more weights than pixels (14x14, 512 channels)
      // each thread would pack all of them: those keep the split by channels. The GEMM's sums do not
      // depend on the column range, so neither do the bits.
      by_columns(b.cols(), double(s.kg) * double(s.ckk) * double(b.cols()), [&](int64_t j0, int64_t j1) {
        GemmParams gp;
        gp.m = s.kg, gp.n = j1 - j0, gp.k = s.ckk, gp.lda = s.ckk, gp.ldb = s.hw, gp.ldc = s.ohw, gp.threads = 1;
        T* yt = y + (b.n0 * p.k + b.g * s.kg) * s.ohw + j0;
        gemm_prepacked(yt, w + b.g * s.kg * s.ckk, nullptr, x + (b.n0 * p.c + b.g * s.cg) * s.hw + j0, nullptr, gp,
                       bias ? bias + b.g * s.kg : nullptr);
      });
      continue;
    }
    const int want = threads_for(double(s.kg) * double(s.ckk) * double(b.cols()), (s.kg + kRowUnit - 1) / kRowUnit);
    parallel::region(want, [&](int tid, int nt) {
      if (!direct(b)) {
        const parallel::Range rows = parallel::split(s.ckk, tid, nt);
        if (packed_col)
          im2col_packed(col, x, b, s, p, rows.begin, rows.end);
        else
          im2col_block(col + rows.begin * b.cols(), b.cols(), x, b, s, p, rows.begin, rows.end);
        parallel::barrier(nt);  // the whole column matrix is built
      }
      const parallel::Range ks = split_units(s.kg, kRowUnit, tid, nt);
      if (direct(b))
        multiply(b, x + (b.n0 * p.c + b.g * s.cg) * s.hw, s.hw, stage, ks.begin, ks.end);
      else
        multiply(b, col, packed_col ? 0 : b.cols(), stage, ks.begin, ks.end);
    });
  }
}

template <class T>
void backward_input(T* dx, const T* dy, const T* w, const Conv2dParams& p) {
  const Shape s = shape_of<T>(p, Pass::input);
  const int64_t khw = p.kh * p.kw;
  // col2im of neighbouring row tiles overlaps, so a unit of work is whole images: all row tiles of
  // an image block.
  const int64_t items = p.groups * s.blocks;

  // w[g]^T packed once per call for the GEMMs of whole groups (see forward), or null; as the GEMM's
  // B where the images are multiplied pixels x channels (Shape::by_pixels).
  const T* packed = nullptr;
  const int64_t packed_group = packed_group_size<T>(s, true);

  // Input channels [c0, c1) of image block `ib` of group g, on the calling thread.
  auto channels = [&](int64_t g, int64_t ib, int64_t c0, int64_t c1) {
    if (c1 <= c0) return;
    const T* wc = w + g * s.kg * s.ckk + c0 * khw;  // columns of w[g] from channel c0 on
    const int64_t n0 = ib * s.imgs, n1 = std::min(p.n, n0 + s.imgs);
    for (int64_t n = n0; n < n1; ++n) {
      T* dxc = dx + (n * p.c + g * s.cg + c0) * s.hw;
      if (!(s.pointwise && n1 - n0 == 1)) std::fill(dxc, dxc + (c1 - c0) * s.hw, T(0));
    }
    for (int64_t t = 0; t < s.tiles; ++t) {
      const Block b = block_of((g * s.blocks + ib) * s.tiles + t, s, p);
      GemmParams gp;
      gp.m = (c1 - c0) * khw, gp.n = b.cols(), gp.k = s.kg, gp.trans_a = true, gp.lda = s.ckk, gp.threads = 1;
      const T* src = dy + (b.n0 * p.k + g * s.kg) * s.ohw + b.oh0 * p.ow;  // dy of the block, as a matrix
      gp.ldb = s.ohw;
      if (!b.single()) {
        T* stage = workspace_as<T>(kStageSlot, s.kg * b.cols());
        gather_rows(stage, b.cols(), dy, b, s, p.k, 0, s.kg);
        src = stage, gp.ldb = b.cols();
      }
      const T* whole = packed && c0 == 0 && c1 == s.cg ? packed + g * packed_group : nullptr;
      const T* a_packed = s.by_pixels ? nullptr : whole;
      if (s.pointwise && b.single()) {
        gp.ldc = s.hw;
        T* dxc = dx + (b.n0 * p.c + g * s.cg + c0) * s.hw;
        if (s.by_pixels && whole)  // dx^T = dy^T w
          gemm_prepacked(dxc, src, nullptr, nullptr, whole, transposed_product(gp));
        else
          gemm_prepacked(dxc, wc, a_packed, src, nullptr, gp);
        continue;
      }
      T* dcol = workspace_as<T>(kColSlot, gp.m * b.cols());
      gp.ldc = b.cols();
      gemm_prepacked(dcol, wc, a_packed, src, nullptr, gp);
      const flat::FlatPlan* F = flat_im2col_plan<T>(p);
      for (int64_t n = b.n0; n < b.n1; ++n)
        col2im_add(dx + (n * p.c + g * s.cg) * s.hw, dcol + (n - b.n0) * b.per_image(), b.cols(), p, b.oh0,
                   b.oh1, c0, c1, F);
    }
  };

  const int threads = get_num_threads();
  if (items >= 2 * int64_t(threads)) {  // one thread too: the weights packed once, as the forward
    T* pack = pack_weights_once<T>(s, items * s.tiles >= 2 * p.groups)
                  ? workspace_as<T>(kPackedWeightSlot, p.groups * packed_group) : nullptr;
    packed = pack;
    parallel::Dispenser dispenser(items, threads, 1);  // independent blocks, as the forward's
    parallel::region(threads, [&](int tid, int nt) {
      if (pack) {
        pack_group_weights(pack, w, s, p.groups, true, tid, nt);
        parallel::barrier(nt);  // every panel packed
      }
      dispenser.each([&](int64_t it) { channels(it / s.blocks, it % s.blocks, 0, s.cg); });
    });
    return;
  }
  if (s.pointwise && s.imgs == 1 && threads > 1 && s.cg < s.hw) {  // by columns, as the forward
    for (int64_t it = 0; it < items; ++it) {
      const int64_t g = it / s.blocks, n = it % s.blocks;
      by_columns(s.hw, double(s.kg) * double(s.ckk) * double(s.hw), [&](int64_t j0, int64_t j1) {
        GemmParams gp;
        gp.m = s.cg, gp.n = j1 - j0, gp.k = s.kg, gp.trans_a = true, gp.lda = s.ckk, gp.ldb = s.ohw, gp.ldc = s.hw,
        gp.threads = 1;
        gemm(dx + (n * p.c + g * s.cg) * s.hw + j0, w + g * s.kg * s.ckk, dy + (n * p.k + g * s.kg) * s.ohw + j0, gp);
      });
    }
    return;
  }
  const int want = threads_for(double(s.kg) * double(s.ckk) * double(s.ohw) * double(s.imgs), s.cg);
  for (int64_t it = 0; it < items; ++it)
    parallel::region(want, [&](int tid, int nt) {
      const parallel::Range cs = parallel::split(s.cg, tid, nt);
      channels(it / s.blocks, it % s.blocks, cs.begin, cs.end);
    });
}

template <class T>
void backward_bias(T* db, const T* dy, const Conv2dParams& p) {
  const int64_t ohw = p.oh * p.ow;
  parallel::region(threads_for(double(p.n) * double(p.k) * double(ohw) / 8, p.k), [&](int tid, int nt) {
    const parallel::Range ks = parallel::split(p.k, tid, nt);
    // Vec lanes in four rotating accumulators (a single scalar sum waits on every add), reduced
    // once per channel: the order depends on the shape only.
    using V = simd::Vec<T>;
    constexpr int64_t W = V::width;
    for (int64_t k = ks.begin; k < ks.end; ++k) {
      typename V::reg acc[4] = {V::zero(), V::zero(), V::zero(), V::zero()};
      int64_t at = 0;
      for (int64_t n = 0; n < p.n; ++n) {
        const T* dyk = dy + (n * p.k + k) * ohw;
        int64_t o = 0;
        for (; o + W <= ohw; o += W, ++at) acc[at & 3] = V::add(acc[at & 3], V::load(dyk + o));
        if (o < ohw) acc[at & 3] = V::add(acc[at & 3], V::load_partial(dyk + o, int(ohw - o))), ++at;
      }
      db[k] = V::reduce_add(V::add(V::add(acc[0], acc[1]), V::add(acc[2], acc[3])));
    }
  });
}

// dw of a pointwise layer with too few dw columns to share (MobileNet's 32 -> 64 channels: one unit
// of kColUnit, one thread) but a long reduction over the pixels: the reduction is cut where the
// GEMM cuts it anyway (its k blocks, image by image), the threads compute the pieces' products
// side by side, then add them up in the order the GEMM would have. Same bits as one thread doing it
// all. A round takes as many images as keep the pieces within kPieceValues; the next round's sums
// start from the last one's. Returns false where it does not apply.
constexpr int64_t kPieceValues = int64_t(1) << 18;  // 1 MiB of float pieces: they are summed from L2

template <class T>
bool pointwise_weight_by_depth(T* dw, const T* x, const T* dy, const Conv2dParams& p, const Shape& s, int want) {
  const int threads = get_num_threads();
  if (!s.pointwise || s.imgs != 1 || s.tiles != 1 || want >= threads || p.n == 0) return false;
  const int64_t kc = gemm_k_block(s.ohw, T(0)), per_image = (s.ohw + kc - 1) / kc;
  const int64_t size = s.kg * s.ckk;  // dw of one group
  if (p.groups * p.n * per_image < 2) return false;
  const int64_t round = std::clamp<int64_t>(kPieceValues / (p.groups * per_image * size), 1, p.n);  // images
  T* partial = workspace_as<T>(kRowSlot, p.groups * round * per_image * size);
  parallel::region(threads, [&](int tid, int nt) {
    using V = simd::Vec<T>;
    constexpr int64_t W = V::width;
    const parallel::Range es = split_units(size, W, tid, nt);  // my dw entries of each group
    for (int64_t n0 = 0; n0 < p.n; n0 += round) {
      const int64_t imgs = std::min(round, p.n - n0), per_group = imgs * per_image;
      const parallel::Range mine = parallel::split(p.groups * per_group, tid, nt);
      for (int64_t q = mine.begin; q < mine.end; ++q) {
        const int64_t g = q / per_group, n = n0 + q / per_image % imgs, k0 = q % per_image * kc;
        GemmParams gp;
        gp.m = s.kg, gp.n = s.ckk, gp.k = std::min(kc, s.ohw - k0), gp.trans_b = true, gp.threads = 1;
        gp.lda = s.ohw, gp.ldb = s.hw, gp.ldc = s.ckk;
        gemm(partial + q * size, dy + (n * p.k + g * s.kg) * s.ohw + k0, x + (n * p.c + g * s.cg) * s.hw + k0, gp);
      }
      parallel::barrier(nt);  // every piece of the round computed
      for (int64_t g = 0; g < p.groups; ++g) {
        T* d = dw + g * size;
        const T* first = partial + g * per_group * size;
        for (int64_t e = es.begin; e < es.end; e += W) {
          const int live = int(std::min<int64_t>(W, es.end - e));
          auto load = [&](const T* a) { return live == W ? V::load(a) : V::load_partial(a, live); };
          // The GEMM's first k block overwrites C (beta 0); every later one adds onto it.
          typename V::reg sum = n0 == 0 ? load(first + e) : V::add(load(first + e), load(d + e));
          for (int64_t q = 1; q < per_group; ++q) sum = V::add(load(first + q * size + e), sum);
          if (live == W) V::store(d + e, sum); else V::store_partial(d + e, sum, live);
        }
      }
      parallel::barrier(nt);  // the round's pieces read before the next round overwrites them
    }
  });
  return true;
}

template <class T>
void backward_weight(T* dw, const T* x, const T* dy, const Conv2dParams& p) {
  const Shape s = shape_of<T>(p, Pass::weight);
  const int want = threads_for(double(p.n) * double(p.k) * double(s.ckk) * double(s.ohw),
                               (s.ckk + kColUnit - 1) / kColUnit);
  if (pointwise_weight_by_depth(dw, x, dy, p, s, want)) return;
  parallel::region(want, [&](int tid, int nt) {
    const parallel::Range rs = split_units(s.ckk, kColUnit, tid, nt);  // my dw columns
    const int64_t r0 = rs.begin, nr = rs.end - rs.begin;
    if (nr <= 0) return;
    for (int64_t g = 0; g < p.groups; ++g) {
      T* dwg = dw + g * s.kg * s.ckk + r0;
      if (p.n == 0)
        for (int64_t k = 0; k < s.kg; ++k) std::fill(dwg + k * s.ckk, dwg + k * s.ckk + nr, T(0));
      for (int64_t bt = 0; bt < s.blocks * s.tiles; ++bt) {
        const Block b = block_of(g * s.blocks * s.tiles + bt, s, p);
        GemmParams gp;
        gp.m = s.kg, gp.n = nr, gp.k = b.cols(), gp.trans_b = true, gp.ldc = s.ckk, gp.threads = 1;
        gp.beta = bt == 0 ? 0.0 : 1.0;
        const T* a = dy + (b.n0 * p.k + g * s.kg) * s.ohw + b.oh0 * p.ow;  // dy of the block
        gp.lda = s.ohw;
        if (!b.single()) {
          T* stage = workspace_as<T>(kStageSlot, s.kg * b.cols());
          gather_rows(stage, b.cols(), dy, b, s, p.k, 0, s.kg);
          a = stage, gp.lda = b.cols();
        }
        if (s.pointwise && b.single()) {  // columns are input channels: rows r0.. of x are the column matrix
          gp.ldb = s.hw;
          gemm(dwg, a, x + (b.n0 * p.c + g * s.cg + r0) * s.hw, gp);
          continue;
        }
        T* col = workspace_as<T>(kColSlot, nr * b.cols());
        im2col_block(col, b.cols(), x, b, s, p, r0, r0 + nr);
        gp.ldb = b.cols();
        gemm(dwg, a, col, gp);
      }
    }
  });
}

inline bool is_depthwise(const Conv2dParams& p) { return p.groups > 1 && p.groups == p.c; }

// Whether algorithm `which` may run under the setting `algo` (auto, or forced to it) and its rule
// `fits(p, force)` takes the shape (force: wherever it can run).
template <class Fits>
bool chosen(ConvAlgorithm algo, ConvAlgorithm which, Fits fits, const Conv2dParams& p) {
  return (algo == ConvAlgorithm::kAuto || algo == which) && fits(p, algo == which);
}

// The algorithm each pass of a dense (not depthwise) layer runs under the configured setting: the
// row kernels for layers with few output channels, Winograd for the stride-1 layers it suits, else
// the direct kernels, else the column matrix (kGemm). The kernels below dispatch on these, and
// conv2d_algorithm reports them, so the two cannot disagree.
// choice() walks the rules in that order; each argument is the `fits(p, force)` of the algorithm it names.
template <class Rows, class Winograd, class Direct>
ConvAlgorithm choice(const Conv2dParams& p, Rows rows, Winograd winograd, Direct direct) {
  const ConvAlgorithm algo = conv_algorithm();
  if (chosen(algo, ConvAlgorithm::kRows, rows, p)) return ConvAlgorithm::kRows;
  if (chosen(algo, ConvAlgorithm::kWinograd, winograd, p)) return ConvAlgorithm::kWinograd;
  if (chosen(algo, ConvAlgorithm::kDirect, direct, p)) return ConvAlgorithm::kDirect;
  return ConvAlgorithm::kGemm;
}

template <class T>
ConvAlgorithm forward_choice(const Conv2dParams& p) {
  return choice(p, rows_fits<T>, winograd_fits<T>, direct_fits_forward<T>);
}

template <class T>
ConvAlgorithm backward_input_choice(const Conv2dParams& p) {
  return choice(p, rows_fits_backward_input<T>, winograd_fits_backward_input<T>, direct_fits_backward_input<T>);
}

template <class T>
ConvAlgorithm backward_weight_choice(const Conv2dParams& p) {
  return choice(p, rows_fits_backward_weight<T>, winograd_fits_backward_weight<T>, direct_fits_backward_weight<T>);
}

// A dense forward by forward_choice. Returns whether the tail e (may be null) was applied; the row
// kernels and the column matrix leave it to the caller.
template <class T>
bool dense_forward(T* y, const T* x, const T* w, const T* bias, const ConvEpilogue<T>* e, const Conv2dParams& p) {
  switch (forward_choice<T>(p)) {
    case ConvAlgorithm::kRows:
      rows_forward(y, x, w, bias, p);
      return false;
    case ConvAlgorithm::kWinograd:
      winograd_forward(y, x, w, bias, e, p);
      return true;
    case ConvAlgorithm::kDirect:
      direct_forward(y, x, w, bias, e, p);
      return true;
    default:
      forward(y, x, w, bias, p);
      return false;
  }
}

}  // namespace

template <class T>
void conv2d_forward(T* y, const T* x, const T* w, const T* bias, const Conv2dParams& p) {
  if (p.n == 0 || p.k == 0) return;
  if (is_depthwise(p)) return depthwise_forward(y, x, w, bias, p);
  dense_forward(y, x, w, bias, static_cast<const ConvEpilogue<T>*>(nullptr), p);
}

template <class T>
void conv2d_forward_fused(T* y, const T* x, const T* w, const T* bias, const ConvEpilogue<T>& e,
                          const Conv2dParams& p) {
  if (p.n == 0 || p.k == 0) return;
  if (is_depthwise(p))
    depthwise_forward(y, x, w, bias, p);
  else if (dense_forward(y, x, w, bias, &e, p))
    return;  // the tail ran in the kernel's epilogue
  if (!e.scale && !e.relu) return;
  // The tail as one pass over each output plane (the same operations, so the same bits).
  using V = simd::Vec<T>;
  constexpr int W = V::width;
  const int64_t plane = p.oh * p.ow;
  parallel::split_range(get_num_threads(), p.n * p.k, std::max<int64_t>(1, (int64_t(1) << 15) / std::max<int64_t>(1, plane)), 1,
                        [&](int64_t q0, int64_t q1) {
    for (int64_t q = q0; q < q1; ++q) {
      const int64_t k = q % p.k;
      T* yq = y + q * plane;
      const typename V::reg a = V::set1(e.scale ? e.scale[k] : T(1)), b = V::set1(e.scale ? e.shift[k] : T(0));
      auto tail = [&](typename V::reg v) { return conv_tail<T>(v, a, b, e.scale != nullptr, e.relu); };
      int64_t i = 0;
      for (; i + W <= plane; i += W) V::store(yq + i, tail(V::load(yq + i)));
      if (i < plane) {
        const int rest = int(plane - i);
        V::store_partial(yq + i, tail(V::load_partial(yq + i, rest)), rest);
      }
    }
  });
}

template <class T>
void conv2d_backward_input(T* dx, const T* dy, const T* w, const Conv2dParams& p) {
  if (p.n == 0 || p.c == 0) return;
  if (is_depthwise(p)) return depthwise_backward_input(dx, dy, w, p);
  switch (backward_input_choice<T>(p)) {
    case ConvAlgorithm::kRows: return rows_backward_input(dx, dy, w, p);
    case ConvAlgorithm::kWinograd: return winograd_backward_input(dx, dy, w, p);
    case ConvAlgorithm::kDirect: return direct_backward_input(dx, dy, w, p);
    default: return backward_input(dx, dy, w, p);
  }
}

template <class T>
void conv2d_backward_weight(T* dw, T* db, const T* x, const T* dy, const Conv2dParams& p) {
  if (is_depthwise(p)) {
    if (depthwise_backward_weight(dw, db, x, dy, p)) return;  // db summed on the way
  } else {
    switch (backward_weight_choice<T>(p)) {
      case ConvAlgorithm::kRows: rows_backward_weight(dw, x, dy, p); break;
      case ConvAlgorithm::kWinograd: winograd_backward_weight(dw, x, dy, p); break;
      case ConvAlgorithm::kDirect: direct_backward_weight(dw, x, dy, p); break;
      default: backward_weight(dw, x, dy, p);
    }
  }
  if (db) backward_bias(db, dy, p);
}

template <class T>
const char* conv2d_algorithm(const Conv2dParams& p, ConvPass pass) {
  if (is_depthwise(p)) return "depthwise";
  const ConvAlgorithm a = pass == ConvPass::kForward         ? forward_choice<T>(p)
                          : pass == ConvPass::kBackwardInput ? backward_input_choice<T>(p)
                                                             : backward_weight_choice<T>(p);
  switch (a) {
    case ConvAlgorithm::kRows: return "rows";
    case ConvAlgorithm::kWinograd: return "winograd";
    case ConvAlgorithm::kDirect: return "direct";
    default: return "gemm";
  }
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

}  // namespace CNNX_ISA_NS
}  // namespace cnnx
