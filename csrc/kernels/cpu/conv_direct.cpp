// Direct convolution for dense layers, compiled once per ISA. Contract: cnnx/conv.h. Called by
// conv.cpp when the direct_fits_* rules say so: the forward and the input gradient of stride-1 layers,
// which is itself a stride-1 convolution of dy (see direct_backward_input). The weight gradient, the
// same tile with pixels and taps swapped, is in conv_direct_weight.cpp; what both share is in
// cpu/conv_direct.h.
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
// of at most kChunkBytes of weights, sweeping every tile of the block per chunk; partial sums
// wait in an L2-resident buffer acc[img][pixel][OB]. As the last chunk finishes a tile's rows, they
// get the bias and the tail and are transposed into y (NCHW).
//
// Threads take (group, block, channel-group) items as they come free (parallel::Dispenser), each item
// computed by one thread in an order fixed by the shapes: results are bitwise identical for any
// thread count.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <utility>
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

// The epilogue of one OB-channel group (output channels k0 .. k0 + live): bias, then the tail e, as
// whole vectors over the channel lanes. Laid out once per item, used for each of its rows.
template <class T>
struct GroupTail {
  static constexpr int OB = Tiling<T>::OB;
  alignas(64) T bias[OB] = {}, scale[OB] = {}, shift[OB] = {};
  bool has_bias, affine, relu;

  GroupTail(const T* b, const ConvEpilogue<T>* e, int64_t k0, int64_t live)
      : has_bias(b != nullptr), affine(e && e->scale), relu(e && e->relu) {
    for (int64_t o = 0; o < live; ++o) {
      if (b) bias[o] = b[k0 + o];
      scale[o] = affine ? e->scale[k0 + o] : T(1);
      shift[o] = affine ? e->shift[k0 + o] : T(0);
    }
  }
};

// Output rows [u0, u1) of the block (row u: row u % rows of image u / rows, at acc + u * OW * OB),
// from acc[..][OB] (+ bias, then the tail) into y[img][k0 + o][oh][ow] for o < live. Called as soon
// as the last chunk has finished a tile's rows, while they are in L1: the stores into y (a line per
// channel, each a miss) then drain while the next tiles compute, where a pass over the whole block
// at its end stalled on them (AlexNet's conv1 at batch 1: 7% of the time).
template <class T>
void write_rows(T* y, T* acc, const GroupTail<T>& tail, const Block& bl, int64_t k0, int64_t live,
                const Conv2dParams& p, int64_t u0, int64_t u1) {
  using V = simd::Vec<T>;
  constexpr int W = Tiling<T>::W, OB = Tiling<T>::OB;
  const int64_t rows = bl.oh1 - bl.oh0, ohw = p.oh * p.ow;
  T* a = acc + u0 * p.ow * OB;
  const int64_t pix = (u1 - u0) * p.ow;
  if (tail.has_bias)
    for (int64_t r = 0; r < pix; ++r)
      for (int v = 0; v < OB / W; ++v)
        V::store(a + r * OB + v * W, V::add(V::load(a + r * OB + v * W), V::load(tail.bias + v * W)));
  if (tail.affine || tail.relu)
    for (int64_t r = 0; r < pix; ++r)
      for (int v = 0; v < OB / W; ++v)
        V::store(a + r * OB + v * W, conv_tail<T>(V::load(a + r * OB + v * W), V::load(tail.scale + v * W),
                                                  V::load(tail.shift + v * W), tail.affine, tail.relu));
  for (int64_t u = u0; u < u1;) {  // the rows of one image at a time: consecutive in acc and in y
    const int64_t i = u / rows, end = std::min(u1, (i + 1) * rows);
    transpose_into(y + ((bl.n0 + i) * p.k + k0) * ohw + (bl.oh0 + u % rows) * p.ow, ohw, (end - u) * p.ow,
                   acc + u * p.ow * OB, OB, (end - u) * p.ow, live);
    u = end;
  }
}

// Packs unit u = (g, kb) of the weights for run(): wp[c][i][j][o] = w[g*kg + kb*OB + o][c][i][j]
// (zero for channels past kg), or for the input gradient (flip) the transposed, flipped kernel:
// wp[k][i][j][o] = w[g*kg + k][kb*OB + o][KH-1-i][KW-1-j]. `pp` describes w's convolution.
template <class T>
void pack_unit(T* dst, const T* w, const Conv2dParams& pp, bool flip, int64_t u) {
  constexpr int OB = Tiling<T>::OB;
  const int64_t cg = pp.c / pp.groups, kg = pp.k / pp.groups, khw = pp.kh * pp.kw;
  const int64_t outs = flip ? cg : kg, ins = flip ? kg : cg;  // channels of the packed convolution
  const int64_t kbs = (outs + OB - 1) / OB, cols = ins * khw;
  const int64_t g = u / kbs, kb = u % kbs;
  const int64_t live = std::min<int64_t>(OB, outs - kb * OB);
  if (!flip) {  // the transpose of its live x (ins * khw) rows of w
    transpose_into(dst, OB, OB, w + (g * kg + kb * OB) * cols, cols, live, cols);
    return;
  }
  // Flipped: column (c, t) of row o is w[g*kg + c][kb*OB + o][khw - 1 - t]. For each c that is the
  // transpose of a live x khw block of w, its rows written last to first (a negative stride).
  for (int64_t c = 0; c < ins; ++c)
    transpose_into(dst + (c * khw + khw - 1) * OB, -int64_t(OB), OB, w + ((g * kg + c) * cg + kb * OB) * khw, khw,
                   live, khw);
}

// The weights of run(): packed for the whole call up front, or, where each packed unit (a group's
// block of OB output channels) serves one item only (one block of pixels: batch 1), packed by that
// item's thread just before use, so they are still in its L2 and no thread waits for the packing.
template <class T>
struct Weights {
  const T* packed;  // units one after another (pack_unit), or null: pack per item
  const T* w;
  const Conv2dParams& w_conv;
  bool flip;
  int64_t unit;  // values in a packed unit

  // Packed unit u, packed now into the calling thread's workspace where nothing was packed up front.
  const T* at(int64_t u) const {
    if (packed) return packed + u * unit;
    T* mine = workspace_as<T>(kWeightSlot, unit);
    pack_unit(mine, w, w_conv, flip, u);
    return mine;
  }
};

// The convolution p with the weights ws, into y. Groups from p.
template <class T, int SW>
void run(T* y, const T* x, const Weights<T>& ws, const T* bias, const ConvEpilogue<T>* e, const Conv2dParams& p,
         const Plan& q) {
  using Tl = Tiling<T>;
  constexpr int OB = Tl::OB;
  const auto& table = tiles<T, SW>();
  const int64_t items = p.groups * q.blocks * q.kbs;
  const double macs = double(p.n) * double(p.k) * double(p.oh * p.ow) * double(q.cg * p.kh * p.kw);
  const int threads = threads_for(macs, items);
  const int64_t in_size = q.cg * q.imgs * q.in_rows * q.wp;
  const int64_t acc_size = q.imgs * q.band * p.ow * OB;

  // Items are independent (each writes its own outputs, summed in a fixed order), so threads take
  // them as they come free: runs of whole blocks (the items that share a padded input) where the
  // blocks are many or divide between the threads, else single items (AlexNet's conv1 at batch 1:
  // 7 bands of 6 channel groups on 2 threads), whose blocks two threads may then both pad.
  const int64_t blocks = items / q.kbs;
  parallel::Dispenser dispenser = blocks % threads == 0 || blocks >= 8 * threads
                                      ? parallel::Dispenser(items, threads, q.kbs)
                                      : parallel::Dispenser(items, 1);
  parallel::region(threads, [&](int, int) {
    T* xp = workspace_as<T>(kInputSlot, in_size);
    T* acc = workspace_as<T>(kAccSlot, acc_size);
    int64_t have = -1;  // the (group, block) whose padded input is in xp
    std::vector<int64_t> taps(q.cc * p.kh * p.kw);
    int64_t taps_cs = -1;  // the channel stride taps was built for
    dispenser.each([&](int64_t it) {
      const int64_t kb = it % q.kbs, gb = it / q.kbs, b = gb % q.blocks, g = gb / q.blocks;
      const Block bl = block_of(b, q, p);
      const int64_t imgs = bl.n1 - bl.n0, rows = bl.oh1 - bl.oh0;
      const int64_t cs = imgs * q.in_rows * q.wp;
      if (gb != have) {
        pad_block(xp, x, bl, g, q, p);
        have = gb;
      }
      const T* wk = ws.at(g * q.kbs + kb);
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
      const int64_t k0 = g * q.kg + kb * OB, live = std::min<int64_t>(OB, q.kg - kb * OB);
      const GroupTail<T> tail(bias, e, k0, live);
      for (int64_t c0 = 0; c0 < q.cg; c0 += q.cc) {
        a.steps = std::min(q.cc, q.cg - c0) * p.kh * p.kw;
        a.first = c0 == 0;
        a.w = wk + c0 * p.kh * p.kw * OB;
        const bool last = c0 + q.cc >= q.cg;
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
            if (last) write_rows(y, acc, tail, bl, k0, live, p, u, u + tr);
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
            if (last) write_rows(y, acc, tail, bl, k0, live, p, u, u + 1);
          }
        }
      }
    });
  });
}

// A forward pixel's sum runs over the same chunks in the same order whatever the blocking, so here
// (unlike the weight gradient, whose sums run over a block's pixels) the row bands of a single image
// may follow the thread count: when the items would not divide evenly between the threads (AlexNet's
// conv1 at batch 1: 7 bands x 3 channel groups on 2 threads, one thread doing 11 of 21), cut the rows
// into up to 3 more bands if that makes them divide.
template <class T>
Plan balanced_plan(const Conv2dParams& p) {
  Plan q = plan_of<T>(p, forward_input_bytes());
  const int64_t threads = get_num_threads();
  if (q.imgs != 1 || threads < 2 || (p.groups * q.blocks * q.kbs) % threads == 0) return q;
  for (int64_t more = 1; more <= 3; ++more) {
    const int64_t bands = q.bands + more, band = even_band(p, bands, q.tile_rows);
    if ((p.oh + band - 1) / band != bands || (p.groups * p.n * bands * q.kbs) % threads != 0) continue;
    q.band = band, q.bands = bands, q.blocks = p.n * bands;
    q.in_rows = input_rows(p, band);  // fewer rows than before: fits as well
    break;
  }
  return q;
}

template <class T>
void pack_and_run(T* y, const T* x, const T* w, const T* bias, const ConvEpilogue<T>* e, const Conv2dParams& q_conv,
                  const Conv2dParams& w_conv, bool flip) {
  const Plan q = balanced_plan<T>(q_conv);
  Weights<T> ws{nullptr, w, w_conv, flip, q.cg * q_conv.kh * q_conv.kw * Tiling<T>::OB};
  const int64_t units = q_conv.groups * q.kbs;
  if (q.blocks > 1) {  // each unit serves several items: packed once, up front
    T* wp = workspace_as<T>(kWeightSlot, units * ws.unit);
    parallel::split_range(int(std::max<int64_t>(1, std::min<int64_t>(get_num_threads(), units / 2))), units, 1, 1,
                          [&](int64_t u0, int64_t u1) {
                            for (int64_t u = u0; u < u1; ++u) pack_unit(wp + u * ws.unit, w, w_conv, flip, u);
                          });
    ws.packed = wp;
  }
  if (q_conv.stride_w == 1)
    run<T, 1>(y, x, ws, bias, e, q_conv, q);
  else if (q_conv.stride_w == 2)
    run<T, 2>(y, x, ws, bias, e, q_conv, q);
  else
    run<T, 4>(y, x, ws, bias, e, q_conv, q);
}

// Whether the direct kernel serves convolution p: any layer of column stride 1, 2 or 4 (force), by
// choice where preferred() (cpu/conv_direct.h).
template <class T>
bool fits(const Conv2dParams& p, bool force) {
  if (p.stride_w != 1 && p.stride_w != 2 && p.stride_w != 4) return false;
  return force || preferred<T>(p);
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

template <class T>
void direct_forward(T* y, const T* x, const T* w, const T* bias, const ConvEpilogue<T>* e, const Conv2dParams& p) {
  pack_and_run(y, x, w, bias, e, p, p, false);
}

template <class T>
void direct_backward_input(T* dx, const T* dy, const T* w, const Conv2dParams& p) {
  pack_and_run<T>(dx, dy, w, nullptr, nullptr, transposed_of(p), p, true);
}

#define CNNX_INSTANTIATE(T)                                                                  \
  template bool direct_fits_forward<T>(const Conv2dParams&, bool);                           \
  template bool direct_fits_backward_input<T>(const Conv2dParams&, bool);                    \
  template void direct_forward<T>(T*, const T*, const T*, const T*, const ConvEpilogue<T>*, const Conv2dParams&); \
  template void direct_backward_input<T>(T*, const T*, const T*, const Conv2dParams&);
CNNX_INSTANTIATE(float)
CNNX_INSTANTIATE(double)
#undef CNNX_INSTANTIATE

}  // namespace CNNX_ISA_NS
}  // namespace cnnx
