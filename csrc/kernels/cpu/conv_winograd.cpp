// Winograd F(2x2, 3x3) convolution for dense 3x3 stride-1 layers, compiled once per ISA.
// Contract: cnnx/conv.h. Called by conv.cpp when winograd_fits() says so.
//
// Each 2x2 block of outputs ("tile") of one output channel is computed from the 4x4 input patch
// under it (Lavin and Gray, "Fast Algorithms for Convolutional Neural Networks", 2016):
//
//   Y = A^T [ sum_c (G g_kc G^T) . (B^T d_c B) ] A          (. is elementwise, 4x4)
//
//   B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]   G = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1]
//   A^T = [1 1 1 0; 0 1 -1 -1]
//
// so the sum over input channels becomes 16 independent matrix products, one per position xi of
// the 4x4 transformed tile: M[xi] (K x tiles) = U[xi] (K x C) @ V[xi] (C x tiles), 4 multiplies per
// output where a direct convolution does 9 (2.25x fewer), on the GEMM of gemm.cpp. The transforms
// only add and subtract (and halve, for the weights), so the result differs from the direct sum by
// a few roundings: the tests bound it like the other algorithms' (float64 reference, error bound
// from the magnitudes).
//
// Work: blocks of whole tile rows (about kTiles tiles), each thread taking whole blocks:
// transform its input patches into V (vectors along a tile row: W tiles at a time, the 4x4 patch
// read with stride-2 loads from zero-padded copies of the 4 input rows), 16 single-threaded GEMMs
// with U packed once per call, then the output transform (plus bias and the optional tail). Each
// output is computed by one thread in an order fixed by the shapes: bitwise repeatable for any
// thread count.
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
// that V and M (16 x C x tiles and 16 x K x tiles values) stay within L2/L3 reach.
constexpr int64_t kTiles = 192;

struct Plan {
  int64_t th, tw;        // tile rows and columns per image
  int64_t rows;          // tile rows per block
  int64_t blocks;        // ceil(N * th / rows)
  int64_t twv;           // tw rounded up to whole vectors
  int64_t row_len;       // length of a padded input row buffer
};

// A GEMM's columns are independent of how many there are (its k blocking depends on K alone), so
// blocks may follow the thread count: at least one per thread.
template <class T>
Plan plan_of(const Conv2dParams& p, int threads) {
  constexpr int64_t W = simd::Vec<T>::width;
  Plan q{};
  q.th = (p.oh + 1) / 2;
  q.tw = (p.ow + 1) / 2;
  const int64_t all = q.th * p.n;
  q.rows = std::clamp<int64_t>(std::min(kTiles / q.tw, (all + threads - 1) / threads), 1, all);
  q.blocks = (p.n * q.th + q.rows - 1) / q.rows;
  q.twv = (q.tw + W - 1) / W * W;
  q.row_len = 2 * q.twv + 2;
  return q;
}

// U[xi][k][c] = (G g_kc G^T)[xi] for output channels [k0, k1).
template <class T>
void transform_weights(T* u, const T* w, int64_t k0, int64_t k1, int64_t kk, int64_t c) {
  for (int64_t k = k0; k < k1; ++k)
    for (int64_t ci = 0; ci < c; ++ci) {
      const T* g = w + (k * c + ci) * 9;
      T t[4][3];  // G g
      for (int j = 0; j < 3; ++j) {
        t[0][j] = g[j];
        t[1][j] = (g[j] + g[3 + j] + g[6 + j]) * T(0.5);
        t[2][j] = (g[j] - g[3 + j] + g[6 + j]) * T(0.5);
        t[3][j] = g[6 + j];
      }
      for (int i = 0; i < 4; ++i) {  // (G g) G^T
        T* ui = u + (i * 4) * kk * c + k * c + ci;
        const int64_t s = kk * c;
        ui[0 * s] = t[i][0];
        ui[1 * s] = (t[i][0] + t[i][1] + t[i][2]) * T(0.5);
        ui[2 * s] = (t[i][0] - t[i][1] + t[i][2]) * T(0.5);
        ui[3 * s] = t[i][2];
      }
    }
}

// V[xi][c][col] for the tiles of block b (tile row r of the block: columns r*tw .. r*tw + tw).
template <class T>
void transform_input(T* v, T* rowbuf, const T* x, int64_t b, const Plan& q, const Conv2dParams& p) {
  using V = simd::Vec<T>;
  constexpr int W = V::width;
  const int64_t r0 = b * q.rows, r1 = std::min(p.n * q.th, r0 + q.rows), cols = (r1 - r0) * q.tw;
  const int64_t plane = p.h * p.w;
  for (int64_t c = 0; c < p.c; ++c)
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t n = r / q.th, a = r % q.th;
      const T* xc = x + (n * p.c + c) * plane;
      // The 4 input rows under tile row a, zero-padded: rowbuf[i][pw + iw] = x[2a - ph + i][iw].
      for (int i = 0; i < 4; ++i) {
        T* rb = rowbuf + i * q.row_len;
        const int64_t ih = 2 * a - p.pad_h + i;
        std::fill(rb, rb + q.row_len, T(0));
        if (ih < 0 || ih >= p.h) continue;
        const int64_t lo = std::max<int64_t>(0, -p.pad_w), hi = std::min<int64_t>(p.w, q.row_len - p.pad_w);
        for (int64_t iw = lo; iw < hi; ++iw) rb[p.pad_w + iw] = xc[ih * p.w + iw];
      }
      T* vr = v + c * cols + (r - r0) * q.tw;
      for (int64_t b0 = 0; b0 < q.tw; b0 += W) {
        typename V::reg d[4][4];
        for (int i = 0; i < 4; ++i)
          for (int j = 0; j < 4; ++j) d[i][j] = V::load_strided(rowbuf + i * q.row_len + 2 * b0 + j, 2);
        typename V::reg t[4][4];  // B^T d
        for (int j = 0; j < 4; ++j) {
          t[0][j] = V::sub(d[0][j], d[2][j]);
          t[1][j] = V::add(d[1][j], d[2][j]);
          t[2][j] = V::sub(d[2][j], d[1][j]);
          t[3][j] = V::sub(d[1][j], d[3][j]);
        }
        const int live = int(std::min<int64_t>(W, q.tw - b0));
        for (int i = 0; i < 4; ++i) {  // (B^T d) B
          const typename V::reg out[4] = {V::sub(t[i][0], t[i][2]), V::add(t[i][1], t[i][2]),
                                          V::sub(t[i][2], t[i][1]), V::sub(t[i][1], t[i][3])};
          for (int j = 0; j < 4; ++j) {
            T* dst = vr + (i * 4 + j) * p.c * cols + b0;
            if (live == W)
              V::store(dst, out[j]);
            else
              V::store_partial(dst, out[j], live);
          }
        }
      }
    }
}

// y from M[xi][k][col] of block b: Y = A^T m A per tile, + bias, then the tail e.
template <class T>
void transform_output(T* y, const T* m, const T* bias, const ConvEpilogue<T>* e, int64_t b, const Plan& q,
                      const Conv2dParams& p) {
  using V = simd::Vec<T>;
  constexpr int W = V::width;
  const int64_t r0 = b * q.rows, r1 = std::min(p.n * q.th, r0 + q.rows), cols = (r1 - r0) * q.tw;
  const int64_t plane = p.oh * p.ow;
  alignas(64) T buf[4][W];
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
        typename V::reg s[2][4];
        for (int j = 0; j < 4; ++j) {
          typename V::reg mv[4];
          for (int i = 0; i < 4; ++i) {
            const T* src = mr + (i * 4 + j) * p.k * cols + b0;
            mv[i] = live == W ? V::load(src) : V::load_partial(src, live);
          }
          s[0][j] = V::add(V::add(mv[0], mv[1]), mv[2]);
          s[1][j] = V::sub(V::sub(mv[1], mv[2]), mv[3]);
        }
        for (int i = 0; i < 2; ++i) {
          typename V::reg o0 = V::add(V::add(V::add(s[i][0], s[i][1]), s[i][2]), bk);
          typename V::reg o1 = V::add(V::sub(V::sub(s[i][1], s[i][2]), s[i][3]), bk);
          o0 = conv_tail<T>(o0, sa, sb, affine, relu);
          o1 = conv_tail<T>(o1, sa, sb, affine, relu);
          V::store(buf[2 * i], o0);
          V::store(buf[2 * i + 1], o1);
        }
        for (int i = 0; i < 2; ++i) {
          const int64_t oh = 2 * a + i;
          if (oh >= p.oh) break;
          T* row = yk + oh * p.ow;
          for (int l = 0; l < live; ++l) {
            const int64_t ow = 2 * (b0 + l);
            row[ow] = buf[2 * i][l];
            if (ow + 1 < p.ow) row[ow + 1] = buf[2 * i + 1][l];
          }
        }
      }
    }
  }
}

}  // namespace

// 3x3, stride 1, dilation 1, one group. By choice (not force) only where it is measured faster than
// the direct kernels (2 threads, float32, AVX-512): the weight transform and its 16 packed copies
// cost as much as the products below ~500 tiles (512x14x14 at batch 1: 10.9 ms against 2.8 ms
// direct), and the transforms run W tiles of one tile row at a time, so rows of fewer than 7 tiles
// leave most lanes idle (256x8x8 at batch 64: 1.04x; 512x4x4: 0.72x). Where chosen: 1.3-1.8x the
// direct kernels (64x32x32 at batch 64 16.9 -> 9.4 ms, 512x14x14 at batch 32 76 -> 56 ms).
template <class T>
bool winograd_fits(const Conv2dParams& p, bool force) {
  if (p.kh != 3 || p.kw != 3 || p.stride_h != 1 || p.stride_w != 1 || p.dil_h != 1 || p.dil_w != 1 || p.groups != 1)
    return false;
  const int64_t tw = (p.ow + 1) / 2, tiles = p.n * ((p.oh + 1) / 2) * tw;
  return force || (p.c >= 32 && p.k >= 32 && tw >= 7 && tiles >= 512);
}

template <class T>
void winograd_forward(T* y, const T* x, const T* w, const T* bias, const ConvEpilogue<T>* e, const Conv2dParams& p) {
  const int64_t tiles = p.n * ((p.oh + 1) / 2) * ((p.ow + 1) / 2);
  const double macs = double(tiles) * 16.0 * double(p.k) * double(p.c);
  const int threads = threads_for(macs, tiles);
  const Plan q = plan_of<T>(p, threads);
  const int64_t packed = gemm_packed_a_size(p.k, p.c, T(0)), panels = gemm_a_panels(p.k, T(0));
  T* u = workspace_as<T>(kUSlot, 16 * p.k * p.c);
  T* up = workspace_as<T>(kPackedSlot, 16 * packed);
  parallel::region(threads, [&](int tid, int nt) {
    const parallel::Range ks = parallel::split(p.k, tid, nt);
    transform_weights(u, w, ks.begin, ks.end, p.k, p.c);
    parallel::barrier(nt);
    const parallel::Range pk = parallel::split(16 * panels, tid, nt);
    for (int64_t i = pk.begin; i < pk.end; ++i)
      gemm_pack_a(up + (i / panels) * packed, u + (i / panels) * p.k * p.c, p.c, false, p.k, p.c, i % panels,
                  i % panels + 1);
    parallel::barrier(nt);
    const parallel::Range mine = parallel::split(q.blocks, tid, nt);
    if (mine.begin >= mine.end) return;
    const int64_t max_cols = q.rows * q.tw;
    T* v = workspace_as<T>(kVSlot, 16 * p.c * max_cols);
    T* m = workspace_as<T>(kMSlot, 16 * p.k * max_cols);
    std::vector<T> rowbuf(4 * q.row_len);
    for (int64_t b = mine.begin; b < mine.end; ++b) {
      const int64_t r0 = b * q.rows, r1 = std::min(p.n * q.th, r0 + q.rows), cols = (r1 - r0) * q.tw;
      transform_input(v, rowbuf.data(), x, b, q, p);
      for (int xi = 0; xi < 16; ++xi) {
        GemmParams gp;
        gp.m = p.k, gp.n = cols, gp.k = p.c, gp.lda = p.c, gp.ldb = cols, gp.ldc = cols, gp.threads = 1;
        gemm_prepacked(m + xi * p.k * cols, u + xi * p.k * p.c, up + xi * packed, v + xi * p.c * cols, nullptr, gp);
      }
      transform_output(y, m, bias, e, b, q, p);
    }
  });
}

// The input gradient of a 3x3 stride-1 layer is the forward convolution of dy with the flipped,
// transposed kernel and padding 2 - p (transposed_of, cpu/conv_geometry.h).
template <class T>
bool winograd_fits_backward_input(const Conv2dParams& p, bool force) {
  if (p.pad_h > 2 || p.pad_w > 2) return false;
  return winograd_fits<T>(p, true) && winograd_fits<T>(transposed_of(p), force);
}

template <class T>
void winograd_backward_input(T* dx, const T* dy, const T* w, const Conv2dParams& p) {
  std::vector<T> flipped(static_cast<size_t>(p.k * p.c * 9));  // one pass over w, small next to the products
  flip_kernel(flipped.data(), w, p);
  winograd_forward<T>(dx, dy, flipped.data(), nullptr, nullptr, transposed_of(p));
}

#define CNNX_INSTANTIATE(T)                                                                         \
  template bool winograd_fits<T>(const Conv2dParams&, bool);                                        \
  template bool winograd_fits_backward_input<T>(const Conv2dParams&, bool);                         \
  template void winograd_forward<T>(T*, const T*, const T*, const T*, const ConvEpilogue<T>*, const Conv2dParams&); \
  template void winograd_backward_input<T>(T*, const T*, const T*, const Conv2dParams&);
CNNX_INSTANTIATE(float)
CNNX_INSTANTIATE(double)
#undef CNNX_INSTANTIATE

}  // namespace CNNX_ISA_NS
}  // namespace cnnx
