// The direct kernels' weight gradient, compiled once per ISA. Contract: cnnx/conv.h. Called by
// conv.cpp when direct_fits_backward_weight() says so. Shares the forward's tiling, blocking and
// padded input blocks (cpu/conv_direct.h; the design is in conv_direct.cpp's header).
#include <algorithm>
#include <cstdlib>
#include <cstdint>
#include <vector>

#include "cnnx/conv.h"
#include "cnnx/runtime.h"
#include "cpu/conv_direct.h"
#include "cpu/conv_geometry.h"
#include "cpu/parallel.h"
#include "cpu/simd.h"

namespace cnnx {
namespace CNNX_ISA_NS {

namespace {

using std::int64_t;
using namespace direct;

// Weight gradient: the same register tile with the roles of pixels and taps swapped. The vector
// dimension is still OB output channels; the R broadcasts are R taps (c, i, j) of the kernel, and
// the reduction runs over the output pixels of a block:
//
//   dwt[kb][c][i][j][o] += dyp[kb][pixel][o] * xpad[c][row(pixel)*SH + i*DH][col(pixel)*SW + j]
//
// Per block (the forward's plan), dy is packed as dyp[kb][pixel][OB] (zero past the last channel)
// and the input padded as for the forward (pad_block); a table gives each pixel's offset in it.
// A tile is TR tap rows (c, i) of TC consecutive columns j, each column an immediate offset from its
// row's pointer (so DW must be 1), and keeps its TR*TC x OB sums in registers over the whole block.
// The sums wait between blocks in dwt[g][kb][tap][OB] (the calling thread's workspace); a last
// pass transposes them into OIHW. No column matrix, and each input value is read in place by all
// the taps that use it.
//
// Each thread owns a fixed run of (part, group, channel group, tile) items and sums them over the
// part's blocks in order, padding its own copy of each block's input and packing its own dy. Where
// the blocks' preparation weighs (few tiles per block), the blocks are cut into two parts fixed by
// the shapes (parts_of), each summed into its own buffer and the two added at the end: two threads
// then take a part each and prepare every block once between them, not once each. Either way the
// result depends on the shapes only, never the thread count.
template <class T>
struct GradArgs {
  T* dwt;                // the tile's first tap; tap rows are ld apart, columns OB apart
  int64_t ld;
  const T* const* rows;  // padded input of each tap row, at pixel offset 0
  const int64_t* pix;    // each pixel's offset in the padded block
  const T* dy;           // packed dy, OB values per pixel
  int64_t steps;         // pixels
  bool first;            // start from zero, not from dwt
};

template <class T, int TR, int TC>
void grad_tile(const GradArgs<T>& a) {
  using V = simd::Vec<T>;
  using Tl = Tiling<T>;
  constexpr int R = TR * TC, NV = Tl::NV, W = Tl::W, OB = Tl::OB;
  typename V::reg acc[R][NV];
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < NV; ++v)
      acc[r][v] = a.first ? V::zero() : V::load(a.dwt + (r / TC) * a.ld + (r % TC) * OB + v * W);
  const T* rows[TR];
  for (int t = 0; t < TR; ++t) rows[t] = a.rows[t];
  const T* d = a.dy;
  for (int64_t e = 0; e < a.steps; ++e, d += OB) {
    const int64_t off = a.pix[e];
    typename V::reg dv[NV];
    for (int v = 0; v < NV; ++v) dv[v] = V::load(d + v * W);
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      const typename V::reg b = V::set1(rows[r / TC][off + r % TC]);
      for (int v = 0; v < NV; ++v) acc[r][v] = V::fmadd(dv[v], b, acc[r][v]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < NV; ++v) V::store(a.dwt + (r / TC) * a.ld + (r % TC) * OB + v * W, acc[r][v]);
}

template <class T>
struct GradTiles {
  template <int TR, int TC>
  static constexpr auto get() { return &grad_tile<T, TR, TC>; }
};

template <class T>
const auto& grad_tiles() {
  static const ShapeTable<Tiling<T>::R, void (*)(const GradArgs<T>&), GradTiles<T>> table;
  return table;
}

// How one channel group's taps are cut into tiles: runs of tr tap rows (c, i), each row in `pieces`
// runs of columns (more than one only for kernels wider than a tile).
struct TapTiling {
  int64_t tap_rows, tr, row_tiles, pieces;
  int64_t count() const { return row_tiles * pieces; }
};

template <class T>
TapTiling tap_tiling(const Conv2dParams& p) {
  constexpr int R = Tiling<T>::R;
  TapTiling t{};
  t.tap_rows = p.c / p.groups * p.kh;
  t.pieces = (p.kw + R - 1) / R;
  t.tr = p.kw <= R ? R / p.kw : 1;
  t.row_tiles = (t.tap_rows + t.tr - 1) / t.tr;
  return t;
}

// dy of block bl, output channels [k0, k0 + live), as dst[pixel][OB] (zero past live).
template <class T>
void pack_dy(T* dst, const T* dy, const Block& bl, int64_t k0, int64_t live, const Conv2dParams& p) {
  constexpr int OB = Tiling<T>::OB;
  const int64_t ohw = p.oh * p.ow, pix = (bl.oh1 - bl.oh0) * p.ow;
  for (int64_t i = 0; i < bl.n1 - bl.n0; ++i, dst += pix * OB) {
    transpose_into(dst, OB, OB, dy + ((bl.n0 + i) * p.k + k0) * ohw + bl.oh0 * p.ow, ohw, live, pix);
  }
}

// Parts of the blocks (1 or 2), by the shapes only: two where a thread's share of the tiles of a
// block is small next to preparing the block (padding cg channels of input, packing OB-channel groups
// of dy), the second buffer of sums is at most kPartBytes, and the two halves of the blocks hold
// nearly the same pixels (AlexNet's conv1 at batch 1, 5 row bands cut 2 + 3, ran 0.92x). GoogLeNet's
// 5x5 layer (16 -> 32 channels, 40 tiles a block) spent 16% of its time preparing blocks on both
// threads: 1.05-1.08x.
constexpr int64_t kPartBytes = int64_t(4) << 20;
constexpr int64_t kPartTiles = 256;  // tiles of a block (all channel groups) below which it pays

template <class T>
int64_t parts_of(const Plan& q, const TapTiling& tt, const Conv2dParams& p, int64_t ckk) {
  const int64_t tiles = p.groups * q.kbs * tt.count();
  const int64_t bytes = p.groups * q.kbs * ckk * Tiling<T>::OB * int64_t(sizeof(T));
  if (q.blocks < 2 || tiles >= kPartTiles || bytes > kPartBytes) return 1;
  auto pixels = [&](int64_t b0, int64_t b1) {
    int64_t n = 0;
    for (int64_t b = b0; b < b1; ++b) {
      const Block bl = block_of(b, q, p);
      n += (bl.n1 - bl.n0) * (bl.oh1 - bl.oh0);
    }
    return n;
  };
  const int64_t first = pixels(0, q.blocks / 2), second = pixels(q.blocks / 2, q.blocks);
  return 8 * std::abs(first - second) <= first + second ? 2 : 1;
}

template <class T>
void backward_weight(T* dw, const T* x, const T* dy, const Conv2dParams& p) {
  constexpr int OB = Tiling<T>::OB;
  constexpr int64_t kGradPixels = kChunkBytes / int64_t(OB * sizeof(T));
  const int64_t ckk = p.c / p.groups * p.kh * p.kw;
  if (p.n == 0) {  // no pixels: the sum is empty (and no plan: it divides by the image count)
    std::fill(dw, dw + p.k * ckk, T(0));
    return;
  }
  const Plan q = plan_of<T>(p);
  const TapTiling tt = tap_tiling<T>(p);
  const int64_t parts = parts_of<T>(q, tt, p, ckk);
  const int64_t per_group = q.kbs * tt.count(), per_part = p.groups * per_group, items = parts * per_part;
  const int64_t part_size = p.groups * q.kbs * ckk * OB;  // sums of one part: dwt[g][kb][tap][o]
  T* dwt = workspace_as<T>(kWeightSlot, parts * part_size);
  const double macs = double(p.n) * double(p.k) * double(p.oh * p.ow) * double(ckk);
  const int threads = threads_for(macs, items);
  const int64_t in_size = q.cg * q.imgs * q.in_rows * q.wp, pix_max = q.imgs * q.band * p.ow;
  const auto& table = grad_tiles<T>();

  parallel::region(threads, [&](int tid, int nt) {
    const parallel::Range mine = parallel::split(items, tid, nt);
    if (mine.begin < mine.end) {
      T* xp = workspace_as<T>(kInputSlot, in_size);
      std::vector<int64_t> pix(pix_max);
      const T* rowp[Tiling<T>::R];
      GradArgs<T> a;
      a.rows = rowp;
      for (int64_t pg = mine.begin / per_group; pg <= (mine.end - 1) / per_group; ++pg) {
        // My items of group g in part `part`, and the channel groups they need packed.
        const int64_t part = pg / p.groups, g = pg % p.groups;
        const int64_t lo = std::max(mine.begin, pg * per_group) - pg * per_group;
        const int64_t hi = std::min(mine.end, (pg + 1) * per_group) - pg * per_group;
        const int64_t kb0 = lo / tt.count(), kb1 = (hi - 1) / tt.count() + 1;
        T* dyp = workspace_as<T>(kAccSlot, (kb1 - kb0) * pix_max * OB);
        const int64_t b0 = q.blocks * part / parts, b1 = q.blocks * (part + 1) / parts;
        for (int64_t b = b0; b < b1; ++b) {
          const Block bl = block_of(b, q, p);
          const int64_t imgs = bl.n1 - bl.n0, rows = bl.oh1 - bl.oh0, npix = imgs * rows * p.ow;
          const int64_t cs = imgs * q.in_rows * q.wp;  // channel stride of xp
          pad_block(xp, x, bl, g, q, p);
          for (int64_t i = 0, e = 0; i < imgs; ++i)
            for (int64_t r = 0; r < rows; ++r)
              for (int64_t c = 0; c < p.ow; ++c) pix[e++] = (i * q.in_rows + r * p.stride_h) * q.wp + c * p.stride_w;
          for (int64_t kb = kb0; kb < kb1; ++kb)
            pack_dy(dyp + (kb - kb0) * pix_max * OB, dy, bl, g * q.kg + kb * OB,
                    std::min<int64_t>(OB, q.kg - kb * OB), p);
          a.ld = p.kw * OB;
          // Runs of the block's pixels of kChunkBytes of packed dy, swept in order by every tile.
          for (int64_t e0 = 0; e0 < npix; e0 += kGradPixels) {
            a.steps = std::min(kGradPixels, npix - e0);
            a.first = b == b0 && e0 == 0;
            a.pix = pix.data() + e0;
            for (int64_t it = lo; it < hi; ++it) {
              const int64_t kb = it / tt.count(), tile = it % tt.count();
              const int64_t t0 = tile / tt.pieces * tt.tr, piece = tile % tt.pieces;
              const int64_t tr = std::min(tt.tr, tt.tap_rows - t0);
              const int64_t j0 = p.kw * piece / tt.pieces, tc = p.kw * (piece + 1) / tt.pieces - j0;
              for (int64_t t = 0; t < tr; ++t) {
                const int64_t c = (t0 + t) / p.kh, i = (t0 + t) % p.kh;
                rowp[t] = xp + c * cs + i * p.dil_h * q.wp + j0;
              }
              a.dwt = dwt + part * part_size + ((g * q.kbs + kb) * ckk + t0 * p.kw + j0) * OB;
              a.dy = dyp + ((kb - kb0) * pix_max + e0) * OB;
              table.fn[tr][tc](a);
            }
          }
        }
      }
    }
    parallel::barrier(nt);
    // dwt[g][kb][tap][o] (the second part's sums added to the first's) -> dw[g*kg + kb*OB + o][tap],
    // in runs of 64 taps.
    constexpr int64_t kRun = 64;
    const int64_t runs = (ckk + kRun - 1) / kRun;
    const parallel::Range out = parallel::split(p.groups * q.kbs * runs, tid, nt);
    for (int64_t u = out.begin; u < out.end; ++u) {
      const int64_t gk = u / runs, e0 = u % runs * kRun, ne = std::min(kRun, ckk - e0);
      const int64_t kb = gk % q.kbs, k0 = gk / q.kbs * q.kg + kb * OB;
      const int64_t live = std::min<int64_t>(OB, q.kg - kb * OB);
      T* sums = dwt + (gk * ckk + e0) * OB;
      if (parts == 2) {
        using V = simd::Vec<T>;
        const T* second = sums + part_size;
        for (int64_t e = 0; e < ne * OB; e += V::width) V::store(sums + e, V::add(V::load(sums + e), V::load(second + e)));
      }
      transpose_into(dw + k0 * ckk + e0, ckk, ne, sums, OB, ne, live);
    }
  });
}

}  // namespace

// The weight gradient's tiles take columns of the kernel as immediate offsets: any layer of column
// dilation 1 (force); by choice wherever the kernel is larger than 1x1 and at least half the lanes
// of its channel vectors are live. Unlike the forward (preferred()), short reductions and channel
// groups 50-75% full do not hold it back: its reduction runs over the pixels, and the column
// matrix it replaces is as large as the forward's. Measured, 2 threads, against the column matrix:
// 3 -> 64 at 32x32, batch 64, 1.22 against 3.91 ms (VGG16's conv1_1 at 224x224: 6.8 against 17.5 at
// batch 8); LeNet's C3 (6 -> 16, 5x5) at batch 256 1.53 against 2.58; 64 -> 16 at 28x28 1.35x;
// 24 -> 40 at 14x14 1.3x. With 8 output channels of 32 lanes it ran 0.96-1.2x: left out. On
// 16-register ISAs, few channels from a third of the lanes (few_channels_on_16_registers).
template <class T>
bool direct_fits_backward_weight(const Conv2dParams& p, bool force) {
  if (p.dil_w != 1) return false;
  const int64_t kg = p.k / p.groups;
  return force || (p.kh * p.kw > 1 && (few_channels_on_16_registers<T>(kg) || 2 * kg >= lanes_of<T>(kg)));
}

template <class T>
void direct_backward_weight(T* dw, const T* x, const T* dy, const Conv2dParams& p) {
  backward_weight(dw, x, dy, p);
}

#define CNNX_INSTANTIATE(T)                                                              \
  template bool direct_fits_backward_weight<T>(const Conv2dParams&, bool);               \
  template void direct_backward_weight<T>(T*, const T*, const T*, const Conv2dParams&);
CNNX_INSTANTIATE(float)
CNNX_INSTANTIATE(double)
#undef CNNX_INSTANTIATE

}  // namespace CNNX_ISA_NS
}  // namespace cnnx
