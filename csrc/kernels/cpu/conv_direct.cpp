// Direct convolution for dense layers, compiled once per ISA. Contract: cnnx/conv.h. Called by
// conv.cpp when the direct_fits_* rules say so: the forward, the input gradient of stride-1 layers,
// which is itself a stride-1 convolution of dy (see direct_backward_input), and the weight gradient
// (the same tile with pixels and taps swapped; see run_backward_weight).
//
// The GEMM formulation (conv.cpp) vectorises over output pixels, which needs a column matrix: each
// input value copied KH*KW times, then packed. Here the vector dimension is the output channels
// and the broadcast dimension the output pixels, as in oneDNN's direct kernels, so the input is
// read in place from a zero-padded copy (one copy, not KH*KW):
//
//   acc[r][o] += w[o][c][i][j] * xpad[c][oh_r*SH + i*DH][ow_r*SW + j*DW]   for each (c, i, j) in order
//
// A register tile holds R output pixels (TR rows of TC columns of one image) x OB = NV*W output
// channels. Each reduction step loads NV weight vectors and broadcasts R input values; the R
// addresses are fixed offsets from TR row pointers, so no index tables are needed. Weights are
// packed once per call as wp[g][kb][c][i][j][OB] (zero past the last channel).
//
// Blocking: a "block" is about kPixels output pixels (whole images side by side, or a band of
// output rows of one large image) with its padded input xp[c][img][row][col] in the thread's
// workspace. For each group of OB output channels, the reduction runs over chunks of input channels
// whose weights fit in L1 (kChunkBytes), sweeping every tile of the block per chunk; partial sums
// wait in an L2-resident buffer acc[img][pixel][OB]. After the last chunk the buffer gets the bias
// and is transposed into y (NCHW).
//
// Threads take contiguous runs of (group, block, channel-group) items, each item computed by one
// thread in an order fixed by the shapes: results are bitwise identical for any thread count.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <utility>
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

// Workspace slots (0-2 belong to the GEMM): padded input block, partial sums, packed weights (the
// calling thread's, shared by the team).
constexpr int kInputSlot = 3;
constexpr int kAccSlot = 4;
constexpr int kWeightSlot = 5;

// Output pixels per block: large enough that a weight chunk is reused over many tiles, small
// enough that the partial sums (kPixels x OB values, 64 KiB for float on AVX-512) stay in L2.
constexpr int64_t kPixels = 512;
// ... and its padded input at most this large, so it stays in L2 (2 MiB per core here) while every
// channel group sweeps it. Deep layers on small planes hit this first: 512 channels of 4x4 images
// pad to 72 KiB per image. Measured, 2 threads, 512x4x4 3x3 at batch 64: blocks of 32 images
// (2.4 MB) 14.7 ms, of 14 images (1 MB) 14.3 ms.
constexpr int64_t kInputBytes = 1 << 20;
// Weights of one reduction chunk (cc x KH x KW x OB values), kept in L1 (48 KiB here) while the
// tiles sweep. Measured, 1 thread, batch 32 3x3 layers: 18, 36 and 72 KiB within noise of each
// other, 4.5 KiB 15-25% slower.
constexpr int64_t kChunkBytes = 36 << 10;

template <class T>
struct Tiling {
  using V = simd::Vec<T>;
  static constexpr int W = V::width;
  static constexpr int R = simd::DirectTile<T>::R;
  static constexpr int NV = simd::DirectTile<T>::NV;
  static constexpr int OB = NV * W;
};

// Where one tile reads and writes. rows[t]: the padded input under the first pixel of the tile's
// row t (chunk's first channel; rows may come from different images of the block); taps[e]: where
// reduction step e = (c, i, j) of the chunk reads, relative to those; w: the chunk's packed weights
// (OB values per step).
template <class T>
struct TileArgs {
  T* acc;
  const T* const* rows;
  const int64_t* taps;
  const T* w;
  int64_t steps;
  bool first;  // start from zero, not from acc
};

// TR x TC output pixels (row-major, acc + r * OB) x OB channels, over the chunk's steps; SW is
// the column stride.
// Stacked rows (TR > 1) always span whole output rows, so the tile's pixels are consecutive in acc.
template <class T, int SW, int TR, int TC>
void tile(const TileArgs<T>& a) {
  using V = simd::Vec<T>;
  using Tl = Tiling<T>;
  constexpr int R = TR * TC, NV = Tl::NV, W = Tl::W, OB = Tl::OB;
  typename V::reg acc[R][NV];
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < NV; ++v) acc[r][v] = a.first ? V::zero() : V::load(a.acc + r * OB + v * W);
  const T* rows[TR];
  for (int t = 0; t < TR; ++t) rows[t] = a.rows[t];
  // One flat loop over the chunk's steps: the taps table replaces three nested loops (a 3x3
  // kernel's inner loop would run three times per setup).
  const T* w = a.w;
  for (int64_t e = 0; e < a.steps; ++e, w += OB) {
    const int64_t off = a.taps[e];
    typename V::reg wv[NV];
    for (int v = 0; v < NV; ++v) wv[v] = V::load(w + v * W);
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      const typename V::reg b = V::set1(rows[r / TC][off + (r % TC) * SW]);
      for (int v = 0; v < NV; ++v) acc[r][v] = V::fmadd(wv[v], b, acc[r][v]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < NV; ++v) V::store(a.acc + r * OB + v * W, acc[r][v]);
}

// Make::get<TR, TC>() for every TR * TC <= R, indexed [TR][TC]: the forward and weight-gradient
// tiles of every shape a layer may need.
template <int R, class Fn, class Make>
struct ShapeTable {
  Fn fn[R + 1][R + 1] = {};

  template <int TR, int... TC>
  constexpr void row(std::integer_sequence<int, TC...>) {
    ((TR * (TC + 1) <= R ? (fn[TR][TC + 1] = Make::template get<TR, (TR * (TC + 1) <= R ? TC + 1 : 1)>()) : nullptr), ...);
  }
  template <int... TR>
  constexpr void rows(std::integer_sequence<int, TR...>) {
    (row<TR + 1>(std::make_integer_sequence<int, R>{}), ...);
  }
  ShapeTable() { rows(std::make_integer_sequence<int, R>{}); }
};

template <class T, int SW>
struct ForwardTiles {
  template <int TR, int TC>
  static constexpr auto get() { return &tile<T, SW, TR, TC>; }
};

template <class T, int SW>
const auto& tiles() {
  static const ShapeTable<Tiling<T>::R, void (*)(const TileArgs<T>&), ForwardTiles<T, SW>> table;
  return table;
}

// The shape of the work for one call: blocks of images or of output rows, and the tiling of a
// block's rows. Depends on the shapes only (never the thread count).
struct Plan {
  int64_t cg, kg;             // input / output channels per group
  int64_t kbs;                // OB-channel groups per group: ceil(kg / OB)
  int64_t imgs;               // images per block (1 when an image is cut into row bands)
  int64_t band;               // output rows per block
  int64_t bands, blocks;      // row bands per image, blocks per group
  int64_t in_rows, wp;        // padded input rows per image of a block, padded row length
  int64_t tile_rows;          // TR of the tiles (1 when a row is cut into pieces)
  int64_t pieces;             // tiles per output row (when tile_rows == 1)
  int64_t cc;                 // input channels per reduction chunk
};

template <class T>
Plan plan_of(const Conv2dParams& p) {
  constexpr int R = Tiling<T>::R, OB = Tiling<T>::OB;
  Plan q{};
  q.cg = p.c / p.groups;
  q.kg = p.k / p.groups;
  q.kbs = (q.kg + OB - 1) / OB;
  // Rows narrower than half a tile are stacked: TR = R / OW rows of OW pixels per tile.
  if (p.ow > R / 2) {
    q.tile_rows = 1;
    q.pieces = (p.ow + R - 1) / R;
  } else {
    q.tile_rows = R / p.ow;
    q.pieces = 1;
  }
  const int64_t ohw = p.oh * p.ow;
  q.wp = p.w + 2 * p.pad_w;
  const int64_t row_bytes = q.cg * q.wp * int64_t(sizeof(T));  // one padded row of every channel
  auto rows_in = [&](int64_t band) { return (band - 1) * p.stride_h + (p.kh - 1) * p.dil_h + 1; };
  // Both are then evened out (27 rows in bands of at most 18 become 14 + 13, not 18 + 9), so the
  // blocks, and the threads that take them, get equal work.
  if (ohw >= kPixels || rows_in(p.oh) * row_bytes * 2 > kInputBytes) {
    q.imgs = 1;
    int64_t band = std::max<int64_t>(1, kPixels / p.ow / q.tile_rows) * q.tile_rows;
    while (band > q.tile_rows && rows_in(band) * row_bytes > kInputBytes) band -= q.tile_rows;
    const int64_t bands = (p.oh + band - 1) / band;
    q.band = std::min(p.oh, ((p.oh + bands - 1) / bands + q.tile_rows - 1) / q.tile_rows * q.tile_rows);
  } else {
    const int64_t imgs = std::clamp<int64_t>(std::min(kPixels / ohw, kInputBytes / (rows_in(p.oh) * row_bytes)), 1, p.n);
    const int64_t blocks = (p.n + imgs - 1) / imgs;
    q.imgs = (p.n + blocks - 1) / blocks;
    q.band = p.oh;
  }
  q.bands = (p.oh + q.band - 1) / q.band;
  q.blocks = (p.n + q.imgs - 1) / q.imgs * q.bands;
  q.in_rows = rows_in(q.band);
  q.cc = std::clamp<int64_t>(kChunkBytes / int64_t(p.kh * p.kw * OB * sizeof(T)), 1, q.cg);
  return q;
}

// Images [n0, n1) and output rows [oh0, oh1) of block b.
struct Block {
  int64_t n0, n1, oh0, oh1;
};
inline Block block_of(int64_t b, const Plan& q, const Conv2dParams& p) {
  const int64_t band = b % q.bands, nb = b / q.bands;
  const int64_t oh0 = band * q.band;
  return {nb * q.imgs, std::min(p.n, (nb + 1) * q.imgs), oh0, std::min(p.oh, oh0 + q.band)};
}

// The padded input of block bl, group g: xp[c][img][row][col], row r holding input row
// oh0*SH - PH + r (zero outside the image) with PW zero columns each side.
template <class T>
void pad_block(T* xp, const T* x, const Block& bl, int64_t g, const Plan& q, const Conv2dParams& p) {
  const int64_t imgs = bl.n1 - bl.n0;
  for (int64_t c = 0; c < q.cg; ++c)
    for (int64_t i = 0; i < imgs; ++i) {
      const T* plane = x + ((bl.n0 + i) * p.c + g * q.cg + c) * p.h * p.w;
      T* dst = xp + (c * imgs + i) * q.in_rows * q.wp;
      // Plain loops, not memcpy/fill: rows of late layers are 4 to 16 values, where a library
      // call per row cost more than the copy (4% of ResNet-18's small-input inference).
      for (int64_t r = 0; r < q.in_rows; ++r, dst += q.wp) {
        const int64_t ih = bl.oh0 * p.stride_h - p.pad_h + r;
        if (ih < 0 || ih >= p.h) {
          for (int64_t k = 0; k < q.wp; ++k) dst[k] = T(0);
          continue;
        }
        const T* src = plane + ih * p.w;
        for (int64_t k = 0; k < p.pad_w; ++k) dst[k] = T(0);
        for (int64_t k = 0; k < p.w; ++k) dst[p.pad_w + k] = src[k];
        for (int64_t k = p.pad_w + p.w; k < q.wp; ++k) dst[k] = T(0);
      }
    }
}

// acc[img][pixel][OB] (+ bias, then the epilogue e) into y[img][k0 + o][oh0 * OW + pixel] for
// o < live. The channels are the vector lanes here, so bias and epilogue are whole-vector operations.
template <class T>
void write_out(T* y, T* acc, const T* bias, const ConvEpilogue<T>* e, const Block& bl, int64_t k0, int64_t live,
               const Conv2dParams& p) {
  using V = simd::Vec<T>;
  constexpr int W = Tiling<T>::W, OB = Tiling<T>::OB;
  const int64_t pix = (bl.oh1 - bl.oh0) * p.ow, ohw = p.oh * p.ow;
  const int64_t imgs = bl.n1 - bl.n0;
  if (bias) {
    alignas(64) T b[OB] = {};
    for (int64_t o = 0; o < live; ++o) b[o] = bias[k0 + o];
    for (int64_t r = 0; r < imgs * pix; ++r)
      for (int v = 0; v < OB / W; ++v) V::store(acc + r * OB + v * W, V::add(V::load(acc + r * OB + v * W), V::load(b + v * W)));
  }
  if (e && (e->scale || e->relu)) {
    alignas(64) T a[OB] = {}, b[OB] = {};
    for (int64_t o = 0; o < live; ++o) {
      a[o] = e->scale ? e->scale[k0 + o] : T(1);
      b[o] = e->scale ? e->shift[k0 + o] : T(0);
    }
    for (int64_t r = 0; r < imgs * pix; ++r)
      for (int v = 0; v < OB / W; ++v)
        V::store(acc + r * OB + v * W, conv_tail<T>(V::load(acc + r * OB + v * W), V::load(a + v * W),
                                                    V::load(b + v * W), e->scale != nullptr, e->relu));
  }
  for (int64_t i = 0; i < imgs; ++i) {
    const T* a = acc + i * pix * OB;
    T* yi = y + ((bl.n0 + i) * p.k + k0) * ohw + bl.oh0 * p.ow;
    if constexpr (simd::Transpose<T>::available) {
      for (int64_t r0 = 0; r0 < pix; r0 += 16)
        for (int64_t o0 = 0; o0 < live; o0 += 16) {
          const int rows = int(std::min<int64_t>(16, pix - r0)), cols = int(std::min<int64_t>(16, live - o0));
          simd::Transpose<T>::block(a + r0 * OB + o0, OB, rows, cols, yi + o0 * ohw + r0, ohw, rows);
        }
    } else {
      for (int64_t o = 0; o < live; ++o)
        for (int64_t r = 0; r < pix; ++r) yi[o * ohw + r] = a[r * OB + o];
    }
  }
}

// The convolution p with weights already packed (pack_weights), into y. Groups from p.
template <class T, int SW>
void run(T* y, const T* x, const T* wp, const T* bias, const ConvEpilogue<T>* e, const Conv2dParams& p,
         const Plan& q) {
  using Tl = Tiling<T>;
  constexpr int OB = Tl::OB;
  const auto& table = tiles<T, SW>();
  const int64_t items = p.groups * q.blocks * q.kbs;
  const int64_t wgroup = q.kbs * q.cg * p.kh * p.kw * OB;  // packed values per group
  const double macs = double(p.n) * double(p.k) * double(p.oh * p.ow) * double(q.cg * p.kh * p.kw);
  const int threads = int(std::max<int64_t>(
      1, std::min<int64_t>({int64_t(get_num_threads()), items, int64_t(std::max(1.0, macs / double(1 << 19)))})));
  const int64_t in_size = q.cg * q.imgs * q.in_rows * q.wp;
  const int64_t acc_size = q.imgs * q.band * p.ow * OB;

  parallel::region(threads, [&](int tid, int nt) {
    const parallel::Range mine = parallel::split(items, tid, nt);
    if (mine.begin >= mine.end) return;
    T* xp = workspace_as<T>(kInputSlot, in_size);
    T* acc = workspace_as<T>(kAccSlot, acc_size);
    int64_t have = -1;  // the (group, block) whose padded input is in xp
    std::vector<int64_t> taps(q.cc * p.kh * p.kw);
    int64_t taps_cs = -1;  // the channel stride taps was built for
    for (int64_t it = mine.begin; it < mine.end; ++it) {
      const int64_t kb = it % q.kbs, gb = it / q.kbs, b = gb % q.blocks, g = gb / q.blocks;
      const Block bl = block_of(b, q, p);
      const int64_t imgs = bl.n1 - bl.n0, rows = bl.oh1 - bl.oh0;
      const int64_t cs = imgs * q.in_rows * q.wp;
      if (gb != have) {
        pad_block(xp, x, bl, g, q, p);
        have = gb;
      }
      const T* wk = wp + g * wgroup + kb * q.cg * p.kh * p.kw * OB;
      if (cs != taps_cs) {
        for (int64_t c = 0, e = 0; c < q.cc; ++c)
          for (int64_t i = 0; i < p.kh; ++i)
            for (int64_t j = 0; j < p.kw; ++j) taps[e++] = c * cs + i * p.dil_h * q.wp + j * p.dil_w;
        taps_cs = cs;
      }
      TileArgs<T> a;
      const T* rowp[Tl::R];
      a.rows = rowp;
      a.taps = taps.data();
      for (int64_t c0 = 0; c0 < q.cg; c0 += q.cc) {
        a.steps = std::min(q.cc, q.cg - c0) * p.kh * p.kw;
        a.first = c0 == 0;
        a.w = wk + c0 * p.kh * p.kw * OB;
        const T* xc = xp + c0 * cs;
        // Output rows of the block in order, image after image: row u is row u % rows of image
        // u / rows, at acc + u * OW * OB.
        auto in_row = [&](int64_t u) { return xc + (u / rows) * q.in_rows * q.wp + (u % rows) * p.stride_h * q.wp; };
        const int64_t all = imgs * rows;
        if (q.tile_rows > 1) {  // tr whole rows per tile
          for (int64_t u = 0; u < all; u += q.tile_rows) {
            const int64_t tr = std::min(q.tile_rows, all - u);
            for (int64_t t = 0; t < tr; ++t) rowp[t] = in_row(u + t);
            a.acc = acc + u * p.ow * OB;
            table.fn[tr][p.ow](a);
          }
        } else {  // pieces of one row per tile
          for (int64_t u = 0; u < all; ++u) {
            const T* xr = in_row(u);
            int64_t ow0 = 0;
            for (int64_t piece = 0; piece < q.pieces; ++piece) {
              const int64_t tc = (p.ow - ow0) / (q.pieces - piece);
              rowp[0] = xr + ow0 * SW;
              a.acc = acc + (u * p.ow + ow0) * OB;
              table.fn[1][tc](a);
              ow0 += tc;
            }
          }
        }
      }
      const int64_t k0 = g * q.kg + kb * OB;
      write_out(y, acc, bias, e, bl, k0, std::min<int64_t>(OB, q.kg - kb * OB), p);
    }
  });
}

// Packs the weights for run(): wp[g][kb][c][i][j][o] = w[g*kg + kb*OB + o][c][i][j] (zero for
// channels past kg), or for the input gradient (flip) the transposed, flipped kernel:
// wp[g][cb][k][i][j][o] = w[g*kg + k][cb*OB + o][KH-1-i][KW-1-j]. `pp` describes w's convolution.
template <class T>
void pack_weights(T* wp, const T* w, const Conv2dParams& pp, bool flip, int tid, int nt) {
  constexpr int OB = Tiling<T>::OB;
  const int64_t cg = pp.c / pp.groups, kg = pp.k / pp.groups, khw = pp.kh * pp.kw;
  const int64_t outs = flip ? cg : kg, ins = flip ? kg : cg;  // channels of the packed convolution
  const int64_t kbs = (outs + OB - 1) / OB;
  const parallel::Range mine = parallel::split(pp.groups * kbs, tid, nt);
  // The packed group kb is the transpose of an OB x (ins * khw) matrix: read in runs of kE
  // columns so the destination (kE x OB values) stays in L1.
  constexpr int64_t kE = 64;
  const int64_t cols = ins * khw;
  for (int64_t u = mine.begin; u < mine.end; ++u) {
    const int64_t g = u / kbs, kb = u % kbs;
    const int64_t live = std::min<int64_t>(OB, outs - kb * OB);
    T* dst = wp + u * cols * OB;
    if (!flip) {  // row o is contiguous in w
      const T* src = w + (g * kg + kb * OB) * cols;
      for (int64_t e0 = 0; e0 < cols; e0 += kE) {
        const int64_t ne = std::min(kE, cols - e0);
        if constexpr (simd::Transpose<T>::available) {
          for (int64_t o0 = 0; o0 < OB; o0 += 16)
            for (int64_t e = e0; e < e0 + ne; e += 16)
              simd::Transpose<T>::block(src + o0 * cols + e, cols, int(std::clamp<int64_t>(live - o0, 0, 16)),
                                        int(std::min<int64_t>(16, e0 + ne - e)), dst + e * OB + o0, OB, 16);
        } else {
          for (int64_t o = 0; o < OB; ++o)
            for (int64_t e = e0; e < e0 + ne; ++e) dst[e * OB + o] = o < live ? src[o * cols + e] : T(0);
        }
      }
      continue;
    }
    // Flipped: column (c, t) of row o is w[g*kg + c][kb*OB + o][khw - 1 - t].
    for (int64_t c = 0; c < ins; ++c)
      for (int64_t o = 0; o < OB; ++o)
        for (int64_t t = 0; t < khw; ++t)
          dst[(c * khw + t) * OB + o] = o < live ? w[((g * kg + c) * cg + kb * OB + o) * khw + khw - 1 - t] : T(0);
  }
}

template <class T>
void pack_and_run(T* y, const T* x, const T* w, const T* bias, const ConvEpilogue<T>* e, const Conv2dParams& q_conv,
                  const Conv2dParams& w_conv, bool flip) {
  const Plan q = plan_of<T>(q_conv);
  T* wp = workspace_as<T>(kWeightSlot, q_conv.groups * q.kbs * q.cg * q_conv.kh * q_conv.kw * Tiling<T>::OB);
  const int64_t units = q_conv.groups * q.kbs;
  parallel::region(int(std::max<int64_t>(1, std::min<int64_t>(get_num_threads(), units / 2))),
                   [&](int tid, int nt) { pack_weights(wp, w, w_conv, flip, tid, nt); });
  if (q_conv.stride_w == 1)
    run<T, 1>(y, x, wp, bias, e, q_conv, q);
  else if (q_conv.stride_w == 2)
    run<T, 2>(y, x, wp, bias, e, q_conv, q);
  else
    run<T, 4>(y, x, wp, bias, e, q_conv, q);
}


// ---------------------------------------------------------------------------------------------
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
// Each thread owns a fixed run of (group, channel group, tile) items and sums them over every
// block in order, padding its own copy of each block's input: the result depends on the shapes
// only, never the thread count.
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
    const T* src = dy + ((bl.n0 + i) * p.k + k0) * ohw + bl.oh0 * p.ow;
    if constexpr (simd::Transpose<T>::available) {
      for (int64_t e = 0; e < pix; e += 16)
        for (int64_t o0 = 0; o0 < OB; o0 += 16)
          simd::Transpose<T>::block(src + o0 * ohw + e, ohw, int(std::clamp<int64_t>(live - o0, 0, 16)),
                                    int(std::min<int64_t>(16, pix - e)), dst + e * OB + o0, OB, 16);
    } else {
      for (int64_t e = 0; e < pix; ++e)
        for (int64_t o = 0; o < OB; ++o) dst[e * OB + o] = o < live ? src[o * ohw + e] : T(0);
    }
  }
}

template <class T>
void run_backward_weight(T* dw, const T* x, const T* dy, const Conv2dParams& p) {
  constexpr int OB = Tiling<T>::OB;
  constexpr int64_t kGradPixels = kChunkBytes / int64_t(OB * sizeof(T));
  const int64_t ckk = p.c / p.groups * p.kh * p.kw;
  if (p.n == 0) {  // no pixels: the sum is empty (and no plan: it divides by the image count)
    std::fill(dw, dw + p.k * ckk, T(0));
    return;
  }
  const Plan q = plan_of<T>(p);
  const TapTiling tt = tap_tiling<T>(p);
  const int64_t per_group = q.kbs * tt.count(), items = p.groups * per_group;
  T* dwt = workspace_as<T>(kWeightSlot, p.groups * q.kbs * ckk * OB);
  const double macs = double(p.n) * double(p.k) * double(p.oh * p.ow) * double(ckk);
  const int threads = int(std::max<int64_t>(
      1, std::min<int64_t>({int64_t(get_num_threads()), items, int64_t(std::max(1.0, macs / double(1 << 19)))})));
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
      for (int64_t g = mine.begin / per_group; g <= (mine.end - 1) / per_group; ++g) {
        // My items of group g, and the channel groups they need packed.
        const int64_t lo = std::max(mine.begin, g * per_group) - g * per_group;
        const int64_t hi = std::min(mine.end, (g + 1) * per_group) - g * per_group;
        const int64_t kb0 = lo / tt.count(), kb1 = (hi - 1) / tt.count() + 1;
        T* dyp = workspace_as<T>(kAccSlot, (kb1 - kb0) * pix_max * OB);
        for (int64_t b = 0; b < q.blocks; ++b) {
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
          // Runs of the block's pixels whose packed dy stays in L1 while every tile sweeps it.
          for (int64_t e0 = 0; e0 < npix; e0 += kGradPixels) {
            a.steps = std::min(kGradPixels, npix - e0);
            a.first = b == 0 && e0 == 0;
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
              a.dwt = dwt + ((g * q.kbs + kb) * ckk + t0 * p.kw + j0) * OB;
              a.dy = dyp + ((kb - kb0) * pix_max + e0) * OB;
              table.fn[tr][tc](a);
            }
          }
        }
      }
    }
    parallel::barrier(nt);
    // dwt[g][kb][tap][o] -> dw[g*kg + kb*OB + o][tap], in runs of 64 taps.
    constexpr int64_t kRun = 64;
    const int64_t runs = (ckk + kRun - 1) / kRun;
    const parallel::Range out = parallel::split(p.groups * q.kbs * runs, tid, nt);
    for (int64_t u = out.begin; u < out.end; ++u) {
      const int64_t gk = u / runs, e0 = u % runs * kRun, ne = std::min(kRun, ckk - e0);
      const int64_t kb = gk % q.kbs, k0 = gk / q.kbs * q.kg + kb * OB;
      const int64_t live = std::min<int64_t>(OB, q.kg - kb * OB);
      const T* src = dwt + (gk * ckk + e0) * OB;
      T* d = dw + k0 * ckk + e0;
      if constexpr (simd::Transpose<T>::available) {
        for (int64_t e = 0; e < ne; e += 16)
          for (int64_t o0 = 0; o0 < live; o0 += 16) {
            const int rows = int(std::min<int64_t>(16, ne - e));
            simd::Transpose<T>::block(src + e * OB + o0, OB, rows, int(std::min<int64_t>(16, live - o0)),
                                      d + o0 * ckk + e, ckk, rows);
          }
      } else {
        for (int64_t o = 0; o < live; ++o)
          for (int64_t e = 0; e < ne; ++e) d[o * ckk + e] = src[e * OB + o];
      }
    }
  });
}

// Whether the direct kernel serves convolution p. It can run any layer of column stride 1, 2 or 4
// (force); by choice it takes those where it is faster than the column matrix: most of each
// OB-channel group live, a reduction long enough to amortise a tile's start and end, and not 1x1
// (conv.cpp multiplies those in place, with no copy at all).
template <class T>
bool fits(const Conv2dParams& p, bool force) {
  constexpr int OB = Tiling<T>::OB;
  if (p.stride_w != 1 && p.stride_w != 2 && p.stride_w != 4) return false;
  if (force) return true;
  const int64_t kg = p.k / p.groups, cg = p.c / p.groups;
  const int64_t padded = (kg + OB - 1) / OB * OB;
  return p.kh * p.kw > 1 && 4 * kg >= 3 * padded && cg * p.kh * p.kw >= 32;
}

}  // namespace

template <class T>
bool direct_fits_forward(const Conv2dParams& p, bool force) {
  return fits<T>(p, force);
}

// The input gradient runs as a forward convolution of dy, which needs unit strides and a padding
// no larger than the dilated kernel's reach.
template <class T>
bool direct_fits_backward_input(const Conv2dParams& p, bool force) {
  return p.stride_h == 1 && p.stride_w == 1 && p.pad_h <= (p.kh - 1) * p.dil_h &&
         p.pad_w <= (p.kw - 1) * p.dil_w && fits<T>(transposed_of(p), force);
}

// The weight gradient's tiles take columns of the kernel as immediate offsets: column dilation 1.
// By choice, where most of each OB-channel group is live and the reduction over taps is long enough
// to fill tiles (as for the forward).
template <class T>
bool direct_fits_backward_weight(const Conv2dParams& p, bool force) {
  if (p.dil_w != 1) return false;
  if (force) return true;
  constexpr int OB = Tiling<T>::OB;
  const int64_t kg = p.k / p.groups, cg = p.c / p.groups;
  const int64_t padded = (kg + OB - 1) / OB * OB;
  return p.kh * p.kw > 1 && 4 * kg >= 3 * padded && cg * p.kh * p.kw >= 32;
}

template <class T>
void direct_forward(T* y, const T* x, const T* w, const T* bias, const ConvEpilogue<T>* e, const Conv2dParams& p) {
  pack_and_run(y, x, w, bias, e, p, p, false);
}

template <class T>
void direct_backward_input(T* dx, const T* dy, const T* w, const Conv2dParams& p) {
  pack_and_run<T>(dx, dy, w, nullptr, nullptr, transposed_of(p), p, true);
}

template <class T>
void direct_backward_weight(T* dw, const T* x, const T* dy, const Conv2dParams& p) {
  run_backward_weight(dw, x, dy, p);
}

#define CNNX_INSTANTIATE(T)                                                                  \
  template bool direct_fits_forward<T>(const Conv2dParams&, bool);                           \
  template bool direct_fits_backward_weight<T>(const Conv2dParams&, bool);                   \
  template void direct_backward_weight<T>(T*, const T*, const T*, const Conv2dParams&);      \
  template bool direct_fits_backward_input<T>(const Conv2dParams&, bool);                    \
  template void direct_forward<T>(T*, const T*, const T*, const T*, const ConvEpilogue<T>*, const Conv2dParams&); \
  template void direct_backward_input<T>(T*, const T*, const T*, const Conv2dParams&);
CNNX_INSTANTIATE(float)
CNNX_INSTANTIATE(double)
#undef CNNX_INSTANTIATE

}  // namespace CNNX_ISA_NS
}  // namespace cnnx
