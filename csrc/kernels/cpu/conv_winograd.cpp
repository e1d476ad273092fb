// Winograd F(2x2, 3x3) and F(2x2, 5x5) convolution for dense stride-1 layers (forward, input gradient
// and weight gradient), compiled once per ISA.
// Contract: cnnx/conv.h. Called by conv.cpp when winograd_fits() says so.
//
// Each 2x2 block of outputs ("tile") of one output channel is computed from the N x N input patch
// under it, N = KS + 1 for a KS x KS kernel (Lavin and Gray, "Fast Algorithms for Convolutional
// Neural Networks", 2016):
//
//   Y = A^T [ sum_c (G g_kc G^T) . (B^T d_c B) ] A          (. is elementwise, N x N)
//
// so the sum over input channels becomes N*N independent matrix products, one per position xi of
// the transformed tile: M[xi] (K x tiles) = U[xi] (K x C) @ V[xi] (C x tiles), on the GEMM of
// gemm.cpp. Per output that is N*N/4 multiplies where a direct convolution does KS*KS: 4 against 9
// for 3x3 (2.25x fewer), 9 against 25 for 5x5 (2.8x fewer). The matrices (Transforms below) come
// from the interpolation points 0, 1, -1 (3x3) and 0, 1, -1, 2, -2 (5x5) plus the point at
// infinity; B^T and A^T have small integer entries, G the fractions. The result differs from the
// direct sum by roundings the transforms amplify (more for 5x5, whose B^T has entries up to 5): the
// tests bound it like the other algorithms' (float64 reference, error bound from the magnitudes).
//
// Work: blocks of whole tile rows (about kTiles tiles), each thread taking whole blocks:
// transform its input patches into V (vectors along a tile row: W tiles at a time, the N x N patch
// read with stride-2 loads from zero-padded copies of the N input rows), N*N single-threaded GEMMs
// with U packed once per call, then the output transform (plus bias and the optional tail). Each
// output is computed by one thread in an order fixed by the shapes: bitwise repeatable for any
// thread count.
//
// The weight gradient runs the same products transposed (backward_weight below): the input
// transform as above, the output gradient's transform A dY A^T, and N*N products summed over the
// tiles, then G^T (.) G back to KS x KS.
#include <algorithm>
#include <cstdint>
#include <vector>

#include "cnnx/conv.h"
#include "cnnx/gemm.h"
#include "cnnx/runtime.h"
#include "cpu/conv_geometry.h"
#include "cpu/gemm_packed.h"
#include "cpu/parallel.h"
#include "cpu/simd.h"

namespace cnnx {
namespace CNNX_ISA_NS {

namespace {

using std::int64_t;

// Workspace slots (0-2 belong to the GEMM): the thread's V and M blocks; the calling thread's
// transformed weights and their packed copy (shared by the team).
constexpr int kVSlot = 3;
constexpr int kMSlot = 4;
constexpr int kUSlot = 5;
constexpr int kPackedSlot = 6;

// Tiles per block: the GEMMs' N. Large enough for the GEMM to run near its best, small enough
// that V and M (N*N x C x tiles and N*N x K x tiles values) stay within L2/L3 reach.
constexpr int64_t kTiles = 192;

// The transform matrices of F(2x2, KS x KS) (derived by solving the bilinear identity for B^T
// given A^T and G from the points; checked by the tests against the direct sum).
template <int KS>
struct Transforms;

template <>
struct Transforms<3> {
  static constexpr int KS = 3, N = 4;
  static constexpr double BT[N][N] = {{1, 0, -1, 0}, {0, 1, 1, 0}, {0, -1, 1, 0}, {0, 1, 0, -1}};
  static constexpr double G[N][KS] = {{1, 0, 0}, {.5, .5, .5}, {.5, -.5, .5}, {0, 0, 1}};
  static constexpr double AT[2][N] = {{1, 1, 1, 0}, {0, 1, -1, -1}};
};

template <>
struct Transforms<5> {
  static constexpr int KS = 5, N = 6;
  static constexpr double BT[N][N] = {{4, 0, -5, 0, 1, 0},  {0, -4, -4, 1, 1, 0}, {0, 4, -4, -1, 1, 0},
                                      {0, -2, -1, 2, 1, 0}, {0, 2, -1, -2, 1, 0}, {0, 4, 0, -5, 0, 1}};
  static constexpr double G[N][KS] = {{1. / 4, 0, 0, 0, 0},
                                      {-1. / 6, -1. / 6, -1. / 6, -1. / 6, -1. / 6},
                                      {-1. / 6, 1. / 6, -1. / 6, 1. / 6, -1. / 6},
                                      {1. / 24, 1. / 12, 1. / 6, 1. / 3, 2. / 3},
                                      {1. / 24, -1. / 12, 1. / 6, -1. / 3, 2. / 3},
                                      {0, 0, 0, 0, 1}};
  static constexpr double AT[2][N] = {{1, 1, 1, 1, 1, 0}, {0, 1, -1, 2, -2, 1}};
};

// Tiles of the layer p: 2x2 blocks of outputs (the last row and column of tiles may be partial).
inline int64_t tile_count(const Conv2dParams& p) { return p.n * ((p.oh + 1) / 2) * ((p.ow + 1) / 2); }

// Tile rows [r0, r1) of the whole batch (row r: tile row r % th of image r / th), cols tiles.
struct Span {
  int64_t r0, r1, cols;
};

struct Plan {
  int64_t th, tw;        // tile rows and columns per image
  int64_t rows;          // tile rows per block
  int64_t blocks;        // ceil(all / rows)
  int64_t all;           // tile rows of the batch: N * th
  int64_t twv;           // tw rounded up to whole vectors
  int64_t row_len;       // length of a padded input row buffer

  // The tile rows of block b.
  Span span(int64_t b) const {
    const int64_t r0 = b * rows, r1 = std::min(all, r0 + rows);
    return {r0, r1, (r1 - r0) * tw};
  }
};

// A GEMM's columns are independent of how many there are (its k blocking depends on K alone), so
// blocks may follow the thread count: at least one per thread. `n`: the patch size N.
template <class T>
Plan plan_of(const Conv2dParams& p, int n, int threads) {
  constexpr int64_t W = simd::Vec<T>::width;
  Plan q{};
  q.th = (p.oh + 1) / 2;
  q.tw = (p.ow + 1) / 2;
  q.all = q.th * p.n;
  q.rows = std::clamp<int64_t>(std::min(kTiles / q.tw, (q.all + threads - 1) / threads), 1, q.all);
  q.blocks = (q.all + q.rows - 1) / q.rows;
  q.twv = (q.tw + W - 1) / W * W;
  // The last vector of tiles reads its patch's columns up to 2 * twv + n - 3 with stride-2 loads.
  q.row_len = 2 * q.twv + n - 2;
  return q;
}

// out[i] = sum_j M[i][j] * in[j] for the R x C constant matrix M (Tr: out[i] = sum_j M[j][i] * in[j],
// the product by M^T, for the weight gradient's transposed transforms). The entries are compile-time
// constants, so once the loops unroll each output costs one add or subtract per +-1 entry and one
// fused multiply-add per other nonzero, starting from its first +1 term where it has one (no zero
// start, no negation).
template <class V, bool Tr = false, int R, int C>
CNNX_INLINE void apply(const double (&m)[R][C], const typename V::reg* in, typename V::reg* out) {
  constexpr int Out = Tr ? C : R, In = Tr ? R : C;
  auto at = [&](int i, int j) { return Tr ? m[j][i] : m[i][j]; };
#pragma GCC unroll 8
  for (int i = 0; i < Out; ++i) {
    int first = -1;
    for (int j = 0; j < In && first < 0; ++j)
      if (at(i, j) == 1) first = j;
    for (int j = 0; j < In && first < 0; ++j)
      if (at(i, j) != 0) first = j;
    typename V::reg s = at(i, first) == 1 ? in[first] : V::mul(V::set1(at(i, first)), in[first]);
#pragma GCC unroll 8
    for (int j = 0; j < In; ++j) {
      if (j == first || at(i, j) == 0) continue;
      s = at(i, j) == 1 ? V::add(s, in[j]) : at(i, j) == -1 ? V::sub(s, in[j]) : V::fmadd(V::set1(at(i, j)), in[j], s);
    }
    out[i] = s;
  }
}

// The column pass of a transform whose row pass left t (In rows of N columns): for each column j,
// the product by m (by m^T where Tr) of t's column gives N values, value i stored at position
// (i, j) of the N x N transformed tile: plane i * N + j of dst, planes `stride` apart, live of W lanes.
template <class T, bool Tr, int N, int In, int R, int C>
CNNX_INLINE void columns_into_planes(const double (&m)[R][C], const typename simd::Vec<T>::reg (&t)[In][N], T* dst,
                                     int64_t stride, int live) {
  using V = simd::Vec<T>;
  for (int j = 0; j < N; ++j) {
    typename V::reg col[In], out[N];
    for (int i = 0; i < In; ++i) col[i] = t[i][j];
    apply<V, Tr>(m, col, out);
    for (int i = 0; i < N; ++i) {
      T* d = dst + (i * N + j) * stride;
      if (live == V::width)
        V::store(d, out[i]);
      else
        V::store_partial(d, out[i], live);
    }
  }
}

// U[xi][k][c] = (G g_kc G^T)[xi] for output channels [k0, k1), W input channels at a time in the
// vector lanes.
template <class T, class F>
void transform_weights(T* u, const T* w, int64_t k0, int64_t k1, int64_t kk, int64_t c) {
  using V = simd::Vec<T>;
  constexpr int W = V::width, N = F::N, KS = F::KS;
  for (int64_t k = k0; k < k1; ++k)
    for (int64_t c0 = 0; c0 < c; c0 += W) {
      const int live = int(std::min<int64_t>(W, c - c0));
      const T* g = w + (k * c + c0) * KS * KS;
      typename V::reg gv[KS][KS];
      for (int t = 0; t < KS * KS; ++t) {
        if (live == W) {
          gv[t / KS][t % KS] = V::load_strided(g + t, KS * KS);
        } else {
          alignas(64) T lanes[W] = {};
          for (int l = 0; l < live; ++l) lanes[l] = g[l * KS * KS + t];
          gv[t / KS][t % KS] = V::load(lanes);
        }
      }
      typename V::reg col[KS], gc[N], t[N][KS];  // t = G g, a column at a time
      for (int j = 0; j < KS; ++j) {
        for (int i = 0; i < KS; ++i) col[i] = gv[i][j];
        apply<V>(F::G, col, gc);
        for (int i = 0; i < N; ++i) t[i][j] = gc[i];
      }
      for (int i = 0; i < N; ++i) {  // (G g) G^T, a row at a time
        typename V::reg ur[N];
        apply<V>(F::G, t[i], ur);
        for (int j = 0; j < N; ++j) {
          T* dst = u + ((i * N + j) * kk + k) * c + c0;
          if (live == W)
            V::store(dst, ur[j]);
          else
            V::store_partial(dst, ur[j], live);
        }
      }
    }
}

// V[xi][c][col] for the tiles of block b (tile row r of the block: columns r*tw .. r*tw + tw), input
// channels [c0, c1). rows: room for 2 * q.rows + N - 2 padded rows.
template <class T, class F>
void transform_input(T* v, T* rows, const T* x, int64_t b, const Plan& q, const Conv2dParams& p, int64_t c0,
                     int64_t c1) {
  using V = simd::Vec<T>;
  constexpr int W = V::width, N = F::N;
  const auto [r0, r1, cols] = q.span(b);
  const int64_t plane = p.h * p.w;
  const int64_t lo = std::min<int64_t>(p.pad_w, q.row_len), hi = std::clamp<int64_t>(p.pad_w + p.w, lo, q.row_len);
  for (int64_t c = c0; c < c1; ++c)
    for (int64_t r = r0; r < r1;) {
      // The block's tile rows of image n, [a0, a1): their input rows 2*a0 - ph + i, i < 2*(a1-a0) + N-2,
      // zero-padded, each copied once (consecutive tile rows share N - 2 of their N rows):
      // rows[i][pw + iw] = x[2*a0 - ph + i][iw].
      const int64_t n = r / q.th, a0 = r % q.th, a1 = std::min(q.th, a0 + (r1 - r));
      const T* xc = x + (n * p.c + c) * plane;
      for (int64_t i = 0; i < 2 * (a1 - a0) + N - 2; ++i) {
        T* rb = rows + i * q.row_len;
        const int64_t ih = 2 * a0 - p.pad_h + i;
        if (ih < 0 || ih >= p.h) {
          std::fill(rb, rb + q.row_len, T(0));
          continue;
        }
        const T* src = xc + ih * p.w - p.pad_w;  // src[k] = x[ih][k - pw]
        for (int64_t k = 0; k < lo; ++k) rb[k] = T(0);
        for (int64_t k = lo; k < hi; ++k) rb[k] = src[k];
        for (int64_t k = hi; k < q.row_len; ++k) rb[k] = T(0);
      }
      for (int64_t a = a0; a < a1; ++a, ++r) {
        const T* rowbuf = rows + 2 * (a - a0) * q.row_len;
        T* vr = v + c * cols + (r - r0) * q.tw;
        for (int64_t b0 = 0; b0 < q.tw; b0 += W) {
          typename V::reg t[N][N];  // d B, a row of the patch at a time
          for (int i = 0; i < N; ++i) {
            typename V::reg d[N];
            for (int j = 0; j < N; ++j) d[j] = V::load_strided(rowbuf + i * q.row_len + 2 * b0 + j, 2);
            apply<V>(F::BT, d, t[i]);
          }
          // B^T (d B), a column at a time
          columns_into_planes<T, false>(F::BT, t, vr + b0, p.c * cols, int(std::min<int64_t>(W, q.tw - b0)));
        }
      }
    }
}

// y from M[xi][k][col] of block b: Y = A^T m A per tile, + bias, then the tail e.
template <class T, class F>
void transform_output(T* y, const T* m, const T* bias, const ConvEpilogue<T>* e, int64_t b, const Plan& q,
                      const Conv2dParams& p) {
  using V = simd::Vec<T>;
  constexpr int W = V::width, N = F::N;
  const auto [r0, r1, cols] = q.span(b);
  const int64_t plane = p.oh * p.ow;
  for (int64_t k = 0; k < p.k; ++k) {
    const typename V::reg bk = V::set1(bias ? bias[k] : T(0));
    const bool affine = e && e->scale, relu = e && e->relu;
    const typename V::reg sa = V::set1(affine ? e->scale[k] : T(1)), sb = V::set1(affine ? e->shift[k] : T(0));
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t n = r / q.th, a = r % q.th;
      T* yk = y + (n * p.k + k) * plane;
      const T* mr = m + k * cols + (r - r0) * q.tw;
      for (int64_t b0 = 0; b0 < q.tw; b0 += W) {
        const int live = int(std::min<int64_t>(W, q.tw - b0));
        typename V::reg s[2][N];  // A^T m, a column at a time
        for (int j = 0; j < N; ++j) {
          typename V::reg mv[N], o[2];
          for (int i = 0; i < N; ++i) {
            const T* src = mr + (i * N + j) * p.k * cols + b0;
            mv[i] = live == W ? V::load(src) : V::load_partial(src, live);
          }
          apply<V>(F::AT, mv, o);
          s[0][j] = o[0];
          s[1][j] = o[1];
        }
        for (int i = 0; i < 2; ++i) {  // (A^T m) A, a row at a time: output row 2a + i
          typename V::reg o[2];
          apply<V>(F::AT, s[i], o);
          const int64_t oh = 2 * a + i;
          if (oh >= p.oh) break;
          // Even and odd columns of W tiles interleaved into the 2W outputs they are.
          typename V::reg lo, hi;
          V::zip(conv_tail<T>(V::add(o[0], bk), sa, sb, affine, relu), conv_tail<T>(V::add(o[1], bk), sa, sb, affine, relu),
                 lo, hi);
          T* dst = yk + oh * p.ow + 2 * b0;
          const int64_t left = p.ow - 2 * b0;  // outputs of this row from dst on
          if (left >= 2 * W) {
            V::store(dst, lo);
            V::store(dst + W, hi);
          } else if (left > W) {
            V::store(dst, lo);
            V::store_partial(dst + W, hi, int(left - W));
          } else {
            V::store_partial(dst, lo, int(left));
          }
        }
      }
    }
  }
}

template <class T, class F>
void forward(T* y, const T* x, const T* w, const T* bias, const ConvEpilogue<T>* e, const Conv2dParams& p) {
  constexpr int N = F::N, NN = N * N;
  const int64_t tiles = tile_count(p);
  const double macs = double(tiles) * NN * double(p.k) * double(p.c);
  const int threads = threads_for(macs, tiles);
  const Plan q = plan_of<T>(p, N, threads);
  const int64_t packed = gemm_packed_a_size(p.k, p.c, T(0)), panels = gemm_a_panels(p.k, T(0));
  T* u = workspace_as<T>(kUSlot, NN * p.k * p.c);
  T* up = workspace_as<T>(kPackedSlot, NN * packed);
  parallel::region(threads, [&](int tid, int nt) {
    const parallel::Range ks = parallel::split(p.k, tid, nt);
    transform_weights<T, F>(u, w, ks.begin, ks.end, p.k, p.c);
    parallel::barrier(nt);
    const parallel::Range pk = parallel::split(NN * panels, tid, nt);
    for (int64_t i = pk.begin; i < pk.end; ++i)
      gemm_pack_a(up + (i / panels) * packed, u + (i / panels) * p.k * p.c, p.c, false, p.k, p.c, i % panels,
                  i % panels + 1);
    parallel::barrier(nt);
    const parallel::Range mine = parallel::split(q.blocks, tid, nt);
    if (mine.begin >= mine.end) return;
    const int64_t max_cols = q.rows * q.tw;
    T* v = workspace_as<T>(kVSlot, NN * p.c * max_cols);
    T* m = workspace_as<T>(kMSlot, NN * p.k * max_cols);
    std::vector<T> rowbuf((2 * q.rows + N - 2) * q.row_len);
    for (int64_t b = mine.begin; b < mine.end; ++b) {
      const int64_t cols = q.span(b).cols;
      transform_input<T, F>(v, rowbuf.data(), x, b, q, p, 0, p.c);
      for (int xi = 0; xi < NN; ++xi) {
        GemmParams gp;
        gp.m = p.k, gp.n = cols, gp.k = p.c, gp.lda = p.c, gp.ldb = cols, gp.ldc = cols, gp.threads = 1;
        gemm_prepacked(m + xi * p.k * cols, u + xi * p.k * p.c, up + xi * packed, v + xi * p.c * cols, nullptr, gp);
      }
      transform_output<T, F>(y, m, bias, e, b, q, p);
    }
  });
}

// The weight gradient. The forward is bilinear in U = G g G^T and V = B^T d B, so for a loss L with
// output gradient dY: dL/dU = sum over tiles of (A dY_tile A^T) . V_tile, and dL/dg = G^T (dL/dU) G.
// Per block of tiles: V as the forward makes it, E[xi][k][col] = (A dY A^T)[xi] of each tile (outputs
// past the plane's edge count as zero), then dU[xi] (K x C) += E[xi] (K x tiles) @ V[xi]^T.

// E[xi][k][col] for the tiles of block b, output channels [k0, k1).
template <class T, class F>
void transform_grad(T* eg, const T* dy, int64_t b, const Plan& q, const Conv2dParams& p, int64_t k0, int64_t k1) {
  using V = simd::Vec<T>;
  constexpr int W = V::width, N = F::N;
  const auto [r0, r1, cols] = q.span(b);
  const int64_t plane = p.oh * p.ow;
  for (int64_t k = k0; k < k1; ++k)
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t n = r / q.th, a = r % q.th;
      const T* dk = dy + (n * p.k + k) * plane;
      T* er = eg + k * cols + (r - r0) * q.tw;
      for (int64_t b0 = 0; b0 < q.tw; b0 += W) {
        // d[i][j]: dY[2a + i][2 * tile + j] of W tiles, zero past the plane.
        typename V::reg d[2][2];
        const int64_t left = p.ow - 2 * b0;  // outputs of the row from column 2 * b0 on
        for (int i = 0; i < 2; ++i) {
          if (2 * a + i >= p.oh) {
            d[i][0] = d[i][1] = V::zero();
            continue;
          }
          const T* row = dk + (2 * a + i) * p.ow + 2 * b0;
          const typename V::reg lo = left >= W ? V::load(row) : V::load_partial(row, int(left));
          const typename V::reg hi = left >= 2 * W ? V::load(row + W)
                                     : left > W    ? V::load_partial(row + W, int(left - W))
                                                   : V::zero();
          V::unzip(lo, hi, d[i][0], d[i][1]);
        }
        typename V::reg t[2][N];  // dY A^T, a row at a time
        for (int i = 0; i < 2; ++i) apply<V, true>(F::AT, d[i], t[i]);
        // A (dY A^T), a column at a time
        columns_into_planes<T, true>(F::AT, t, er + b0, p.k * cols, int(std::min<int64_t>(W, q.tw - b0)));
      }
    }
}

// dw[k][c] = G^T dU[.][k][c] G for output channels [k0, k1), W input channels at a time.
template <class T, class F>
void weights_from(T* dw, const T* du, int64_t k0, int64_t k1, int64_t kk, int64_t c) {
  using V = simd::Vec<T>;
  constexpr int W = V::width, N = F::N, KS = F::KS;
  for (int64_t k = k0; k < k1; ++k)
    for (int64_t c0 = 0; c0 < c; c0 += W) {
      const int live = int(std::min<int64_t>(W, c - c0));
      typename V::reg t[N][KS];  // dU G, a row at a time
      for (int i = 0; i < N; ++i) {
        typename V::reg row[N];
        for (int j = 0; j < N; ++j) {
          const T* src = du + ((i * N + j) * kk + k) * c + c0;
          row[j] = live == W ? V::load(src) : V::load_partial(src, live);
        }
        apply<V, true>(F::G, row, t[i]);
      }
      alignas(64) T out[KS * KS][W];
      for (int j = 0; j < KS; ++j) {  // G^T (dU G), a column at a time
        typename V::reg col[N], o[KS];
        for (int i = 0; i < N; ++i) col[i] = t[i][j];
        apply<V, true>(F::G, col, o);
        for (int i = 0; i < KS; ++i) V::store(out[i * KS + j], o[i]);
      }
      T* dst = dw + (k * c + c0) * KS * KS;
      for (int l = 0; l < live; ++l)
        for (int e = 0; e < KS * KS; ++e) dst[l * KS * KS + e] = out[e][l];
    }
}

// Blocks of tiles fixed by the shapes (never the thread count); within a block the threads share
// the transforms, then take whole products: dU[xi] is summed by one thread per block, block after
// block, so the bits do not depend on the thread count.
template <class T, class F>
void backward_weight(T* dw, const T* x, const T* dy, const Conv2dParams& p) {
  constexpr int N = F::N, NN = N * N;
  const int64_t tiles = tile_count(p);
  if (tiles == 0) {  // batch 0: nothing to sum
    std::fill(dw, dw + p.k * p.c * F::KS * F::KS, T(0));
    return;
  }
  const double macs = double(tiles) * NN * double(p.k) * double(p.c);
  const int threads = threads_for(macs, NN);
  const Plan q = plan_of<T>(p, N, 1);
  const int64_t max_cols = q.rows * q.tw;
  T* du = workspace_as<T>(kUSlot, NN * p.k * p.c);
  T* v = workspace_as<T>(kVSlot, NN * p.c * max_cols);
  T* eg = workspace_as<T>(kMSlot, NN * p.k * max_cols);
  parallel::region(threads, [&](int tid, int nt) {
    const parallel::Range cs = parallel::split(p.c, tid, nt), ks = parallel::split(p.k, tid, nt);
    const parallel::Range xis = parallel::split(NN, tid, nt);
    std::vector<T> rowbuf((2 * q.rows + N - 2) * q.row_len);
    for (int64_t b = 0; b < q.blocks; ++b) {
      const int64_t cols = q.span(b).cols;
      transform_input<T, F>(v, rowbuf.data(), x, b, q, p, cs.begin, cs.end);
      transform_grad<T, F>(eg, dy, b, q, p, ks.begin, ks.end);
      parallel::barrier(nt);
      for (int64_t xi = xis.begin; xi < xis.end; ++xi) {
        GemmParams gp;
        gp.m = p.k, gp.n = p.c, gp.k = cols, gp.trans_b = true, gp.lda = cols, gp.ldb = cols, gp.ldc = p.c;
        gp.beta = b == 0 ? 0.0 : 1.0, gp.threads = 1;
        gemm_prepacked(du + xi * p.k * p.c, eg + xi * p.k * cols, nullptr, v + xi * p.c * cols, nullptr, gp);
      }
      parallel::barrier(nt);
    }
    weights_from<T, F>(dw, du, ks.begin, ks.end, p.k, p.c);
  });
}

}  // namespace

// 3x3 and 5x5, stride 1, dilation 1, one group. By choice (not force) only where it is measured
// faster than the direct kernels (2 threads, float32, AVX-512). The transforms run W tiles of one
// tile row at a time, so rows of fewer than 7 tiles leave most lanes idle: those take it only with
// many channels (narrow_chosen below). 3x3: the weight transform and its 16 packed copies cost as
// much as the products at about 100 tiles (512x14x14 at batch 1, 49 tiles: 3.5 ms against 2.6 ms direct; at
// batch 2, 98 tiles: 1.0x; 128x20x20 at batch 1, 100 tiles: 0.86x). From 144 tiles with at least
// 64 channels on either side it wins: 96 -> 96 at 24x24 batch 1 1.22x, GoogLeNet's 3a 3x3 (96 ->
// 128 at 28x28, 196 tiles) 1.07x, 128 -> 192 1.13x, 512x14x14 at batch 3-4 1.4-1.6x; with 32
// channels it waits for 512 tiles (32x28x28 at batch 1: 0.85x). Where chosen 1.3-1.8x the direct
// kernels (64x32x32 at batch 64 16.9 -> 9.4 ms, 512x14x14 at batch 32 76 -> 56 ms). 5x5 saves
// more multiplies but its 36 products of K x C by C x tiles run short reductions and
// transform 9 values per output: it wins where both channel counts are at least 64 (AlexNet's
// conv2, 96 -> 256 at 27x27: batch 1 2.5 -> 1.9 ms, batch 32 75 -> 50 ms; 64 -> 64 at 56x56 1.1-1.3x)
// and loses with 32 or fewer on either side (16 -> 32 at 28x28 0.76x, 128 -> 32 at 14x14 0.5-0.8x).
namespace {
bool winograd_runs(const Conv2dParams& p) {
  return p.kh == p.kw && (p.kh == 3 || p.kh == 5) && p.stride_h == 1 && p.stride_w == 1 && p.dil_h == 1 &&
         p.dil_w == 1 && p.groups == 1;
}

// Narrow tile rows (fewer than 7 tiles: 3x3 layers on maps of at most 12 columns, the deep layers
// of small-input networks) fill few lanes of the transforms, whose vectors run along a tile row, so
// there the products must carry more work per tile: at least 256 channels on both sides, and with
// fewer than 512 an even map (no partial tiles) of at least 4 tiles a row. Then from `least` tiles
// (the forward 128, the input gradient 256, the weight gradient 64 with 512 channels, 128 with 256).
// Measured against the direct kernels, 2 threads, forward / dx / dw: 512x8x8 at batch 8 1.34 / 1.10
// / 1.42x, at batch 64 1.48 / 1.43 / 1.50x; 512x4x4 at batch 64 1.25 / 1.08 / 1.23x; 512x7x7 at
// batch 16 1.23 / 1.06 / 1.12x; 256x8x8 at batch 64 1.21 / 1.14 / 1.16x; 256x10x10 at batch 16
// 1.30x forward. Left out: 256x4x4 (2 tiles a row: 0.87-0.99x), 256x7x7 (a quarter of its tiles
// partial: 0.82-0.97x), 128 channels (0.82-0.92x at 8x8 and 12x12), and fewer tiles (512x8x8 at
// batch 4, 64 tiles: forward 0.98x).
bool narrow_chosen(const Conv2dParams& p, int64_t tiles, int64_t least_512, int64_t least_256) {
  const int64_t least = std::min(p.c, p.k), tw = (p.ow + 1) / 2;
  const bool even = p.oh % 2 == 0 && p.ow % 2 == 0;
  return (least >= 512 && tiles >= least_512) || (least >= 256 && even && tw >= 4 && tiles >= least_256);
}

// input_gradient: p is the input gradient's forward pass of dy (transposed_of). With 3x3 it needs
// more tiles than the forward (it also flips a copy of the weights first): from 144 it ran
// 0.91-0.97x the direct kernels at batch 1 (96 -> 96 at 24x24, 64 -> 128 and 128 -> 128 at 28x28),
// where the forward gains 1.03-1.19x. It takes 512 tiles with 32 channels or more on both sides,
// 384 with 64 (64-128 channels at 28x28 batch 2 and 14x14 batch 8: 1.05-1.10x; AlexNet's 13x13
// layers at batch 8 1.25-1.35x), 288 with 256 (256x14x14 at batch 6 1.17x), 196 with 512 (512x14x14
// at batch 4 1.18x; at 98 tiles 0.78x).
bool winograd_chosen(const Conv2dParams& p, bool input_gradient) {
  const int64_t tw = (p.ow + 1) / 2, tiles = tile_count(p);
  if (p.kh == 3 && tw < 7)
    return input_gradient ? narrow_chosen(p, tiles, 256, 256) : narrow_chosen(p, tiles, 128, 128);
  if (p.kh == 3) {
    const int64_t least = std::min(p.c, p.k);
    const bool wide = input_gradient ? (least >= 64 && tiles >= 384) || (least >= 256 && tiles >= 288) ||
                                           (least >= 512 && tiles >= 196)
                                     : least >= 64 && tiles >= 144;
    return least >= 32 && (tiles >= 512 || wide);  // tw >= 7 here
  }
  return p.c >= 64 && p.k >= 64 && tw >= 7 && tiles >= 196;
}
}  // namespace

template <class T>
bool winograd_fits(const Conv2dParams& p, bool force) {
  return winograd_runs(p) && (force || winograd_chosen(p, false));
}

template <class T>
void winograd_forward(T* y, const T* x, const T* w, const T* bias, const ConvEpilogue<T>* e, const Conv2dParams& p) {
  if (p.kh == 3)
    forward<T, Transforms<3>>(y, x, w, bias, e, p);
  else
    forward<T, Transforms<5>>(y, x, w, bias, e, p);
}

// The weight gradient: only where every tap meets the input (a tap that reads padding alone has a
// gradient of exactly zero, which the transforms would turn into rounding noise: a 1x1 map under a
// 5x5 kernel padded by 2), and by choice where measured faster than the direct kernels (2 threads,
// float32, AVX-512): both channel counts at least 96, tile rows of at least 7 tiles, 49 tiles in all;
// 3x3 layers with narrower tile rows as narrow_chosen says.
// Its products (K x tiles by tiles x C) are longer than the forward's, so it pays at fewer tiles
// (512x14x14 at batch 1: 1.21x; VGG16's conv5_1 at batch 32 1.83x, conv3_2 1.56x; AlexNet's conv2
// 1.33-1.45x), but its 32 or 64 output channels make small products (32x32x32 0.7x; 64x56x56
// 0.96-0.98x).
template <class T>
bool winograd_fits_backward_weight(const Conv2dParams& p, bool force) {
  if (p.h < p.kh - p.pad_h || p.w < p.kw - p.pad_w || !winograd_runs(p)) return false;
  const int64_t tw = (p.ow + 1) / 2, tiles = tile_count(p);
  if (force) return true;
  if (p.kh == 3 && tw < 7) return narrow_chosen(p, tiles, 64, 128);
  return p.c >= 96 && p.k >= 96 && tw >= 7 && tiles >= 49;
}

template <class T>
void winograd_backward_weight(T* dw, const T* x, const T* dy, const Conv2dParams& p) {
  if (p.kh == 3)
    backward_weight<T, Transforms<3>>(dw, x, dy, p);
  else
    backward_weight<T, Transforms<5>>(dw, x, dy, p);
}

// The input gradient of a stride-1 layer is the forward convolution of dy with the flipped,
// transposed kernel and padding KS - 1 - p (transposed_of, cpu/conv_geometry.h).
template <class T>
bool winograd_fits_backward_input(const Conv2dParams& p, bool force) {
  if (p.pad_h > p.kh - 1 || p.pad_w > p.kw - 1) return false;
  const Conv2dParams t = transposed_of(p);
  return winograd_runs(p) && winograd_runs(t) && (force || winograd_chosen(t, true));
}

template <class T>
void winograd_backward_input(T* dx, const T* dy, const T* w, const Conv2dParams& p) {
  std::vector<T> flipped(static_cast<size_t>(p.k * p.c * p.kh * p.kw));  // one pass over w, small next to the products
  flip_kernel(flipped.data(), w, p);
  winograd_forward<T>(dx, dy, flipped.data(), nullptr, nullptr, transposed_of(p));
}

#define CNNX_INSTANTIATE(T)                                                                         \
  template bool winograd_fits<T>(const Conv2dParams&, bool);                                        \
  template bool winograd_fits_backward_input<T>(const Conv2dParams&, bool);                         \
  template void winograd_forward<T>(T*, const T*, const T*, const T*, const ConvEpilogue<T>*, const Conv2dParams&); \
  template void winograd_backward_input<T>(T*, const T*, const T*, const Conv2dParams&);          \
  template bool winograd_fits_backward_weight<T>(const Conv2dParams&, bool);                        \
  template void winograd_backward_weight<T>(T*, const T*, const T*, const Conv2dParams&);
CNNX_INSTANTIATE(float)
CNNX_INSTANTIATE(double)
#undef CNNX_INSTANTIATE

}  // namespace CNNX_ISA_NS
}  // namespace cnnx
