// What the direct dense kernels share (conv_direct.cpp: forward and input gradient;
// conv_direct_weight.cpp: weight gradient): the register tiling, the blocking plan of a call, and the
// zero-padded input block both read in place. Included in per-ISA translation units, so it lives in
// the ISA's namespace.
#pragma once

#include <algorithm>
#include <cstdint>
#include <utility>

#if __has_include(<unistd.h>)
#include <unistd.h>  // sysconf, for the L2 size (forward_input_bytes)
#endif

#include "cnnx/conv.h"
#include "cpu/conv_geometry.h"
#include "cpu/simd.h"

namespace cnnx {
namespace CNNX_ISA_NS {
namespace direct {

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

// The forward's budget for the same block: half of this core's L2 as the system reports it, within
// [kMinInputBytes, kInputBytes]. A forward output sums the same products in the same order whatever
// the blocking, so its blocks may follow the machine (the weight gradient's sums run over a block's
// pixels, so its blocks depend on the shapes alone and keep kInputBytes). On AMD's Zen 3 (512 KiB
// of L2), ResNet-50's 3x3 stride-2 layer (128 channels of 58-value padded rows, 30 KiB a row)
// padded 29 rows, 860 KiB, per block, which every channel group then read from L3.
constexpr int64_t kMinInputBytes = 128 << 10;
inline int64_t forward_input_bytes() {
  static const int64_t bytes = [] {
    long l2 = -1;
#ifdef _SC_LEVEL2_CACHE_SIZE
    l2 = sysconf(_SC_LEVEL2_CACHE_SIZE);
#endif
    return l2 > 0 ? std::clamp<int64_t>(l2 / 2, kMinInputBytes, kInputBytes) : kInputBytes;
  }();
  return bytes;
}
// Weights of one reduction chunk (cc x KH x KW x OB values), swept in order by every tile of a
// block: a chunk larger than L1 (48 KiB here) streams from L2 behind the hardware prefetcher, and
// fewer chunks mean fewer round trips of the partial sums. Measured, 1 thread, batch 32 3x3 layers:
// 18, 36 and 72 KiB within noise of each other, 4.5 KiB 15-25% slower; in one A/B run on 2 threads,
// 72 against 36 KiB: 1.00-1.02x forward (GoogLeNet's 5x5 layer, 16 channels of 25 taps = 50 KiB, in
// one chunk), 1.02-1.07x weight gradient (conv_direct_weight.cpp sizes its dy runs by it too).
constexpr int64_t kChunkBytes = 72 << 10;

template <class T>
struct Tiling {
  using V = simd::Vec<T>;
  static constexpr int W = V::width;
  static constexpr int R = simd::DirectTile<T>::R;
  static constexpr int NV = simd::DirectTile<T>::NV;
  static constexpr int OB = NV * W;
};

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

// Padded input rows under `band` output rows.
inline int64_t input_rows(const Conv2dParams& p, int64_t band) {
  return (band - 1) * p.stride_h + (p.kh - 1) * p.dil_h + 1;
}

// Output rows per band when the p.oh rows are cut into `bands` bands evened out (27 rows in 2 bands:
// 14 + 13), a multiple of tile_rows.
inline int64_t even_band(const Conv2dParams& p, int64_t bands, int64_t tile_rows) {
  return std::min(p.oh, ((p.oh + bands - 1) / bands + tile_rows - 1) / tile_rows * tile_rows);
}

// input_bytes: the padded input block's budget (kInputBytes, or forward_input_bytes()).
template <class T>
Plan plan_of(const Conv2dParams& p, int64_t input_bytes = kInputBytes) {
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
  // Both are then evened out (27 rows in bands of at most 18 become 14 + 13, not 18 + 9), so the
  // blocks, and the threads that take them, get equal work.
  if (ohw >= kPixels || input_rows(p, p.oh) * row_bytes * 2 > input_bytes) {
    q.imgs = 1;
    int64_t band = std::max<int64_t>(1, kPixels / p.ow / q.tile_rows) * q.tile_rows;
    while (band > q.tile_rows && input_rows(p, band) * row_bytes > input_bytes) band -= q.tile_rows;
    const int64_t bands = (p.oh + band - 1) / band;
    q.band = even_band(p, bands, q.tile_rows);
  } else {
    const int64_t imgs = std::clamp<int64_t>(std::min(kPixels / ohw, input_bytes / (input_rows(p, p.oh) * row_bytes)), 1, p.n);
    const int64_t blocks = (p.n + imgs - 1) / imgs;
    q.imgs = (p.n + blocks - 1) / blocks;
    q.band = p.oh;
  }
  q.bands = (p.oh + q.band - 1) / q.band;
  q.blocks = (p.n + q.imgs - 1) / q.imgs * q.bands;
  q.in_rows = input_rows(p, q.band);
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
      // A row as vectors, its padding under masks (copy_window_row): no library calls, which the
      // compiler made of plain loops (a memset per padding row) and which cost more than the copy
      // on rows of 4 to 32 values (4% of ResNet-18's small-input inference).
      for (int64_t r = 0; r < q.in_rows; ++r, dst += q.wp) {
        const int64_t ih = bl.oh0 * p.stride_h - p.pad_h + r;
        const bool inside = ih >= 0 && ih < p.h;
        // The same row of the next channel's plane is fetched meanwhile: a block copies a band of
        // a few rows of each plane, then jumps a plane on, which the hardware prefetchers follow
        // late (waiting on those reads was 7% of GoogLeNet's 5x5 forward at batch 32, 3% after;
        // 1.02-1.06x forward, AMD EPYC). Past the last plane it fetches in vain, never faults.
        if (inside)
          for (int64_t l = 0; l < p.w; l += 64 / int64_t(sizeof(T)))
            __builtin_prefetch(plane + p.h * p.w + ih * p.w + l);
        copy_window_row(dst, shifted(plane + (inside ? ih : 0) * p.w, -p.pad_w), q.wp, p.pad_w,
                        inside ? p.pad_w + p.w : p.pad_w);
      }
    }
}

// dst[j * ldd + i] = src[i * lds + j] for j < cols and i < rows, and zero for rows <= i < width: the
// transposes between the kernels' channels-as-lanes layouts and NCHW / OIHW, in registers (blocks of
// simd::transpose_size) where the ISA has it (simd::Transpose), one value at a time elsewhere.
template <class T>
void transpose_into(T* dst, int64_t ldd, int64_t width, const T* src, int64_t lds, int64_t rows, int64_t cols) {
  if constexpr (simd::Transpose<T>::available) {
    constexpr int S = simd::transpose_size<T>();
    for (int64_t j = 0; j < cols; j += S)
      for (int64_t i = 0; i < width; i += S)
        simd::Transpose<T>::block(src + i * lds + j, lds, int(std::clamp<int64_t>(rows - i, 0, S)),
                                  int(std::min<int64_t>(S, cols - j)), dst + j * ldd + i, ldd,
                                  int(std::min<int64_t>(S, width - i)));
  } else {
    for (int64_t j = 0; j < cols; ++j)
      for (int64_t i = 0; i < width; ++i) dst[j * ldd + i] = i < rows ? src[i * lds + j] : T(0);
  }
}

// A group's kg output channels rounded up to whole OB-channel vector groups: the lanes its tiles run.
template <class T>
int64_t lanes_of(int64_t kg) {
  constexpr int OB = Tiling<T>::OB;
  return (kg + OB - 1) / OB * OB;
}

// With 16 vector registers (AVX2), where the row kernels' sums spill, the direct tiles take groups
// of at most 16 output channels from a third of their lanes (measured on an AMD EPYC, batch 256:
// LeNet's C1, 1 -> 6 at 32x32, forward 1.6x the column matrix and weight gradient 2.08 against
// 7.16 ms; C3 forward 2.0x the row kernels). preferred() adds a short-reduction bound.
template <class T>
bool few_channels_on_16_registers(int64_t kg) {
  return simd::kVectorRegisters < 32 && kg <= 16 && 3 * kg >= lanes_of<T>(kg);
}

// Where the direct kernels beat the column matrix by choice (measured): not 1x1 (conv.cpp multiplies
// those in place, with no copy at all), and most of each OB-channel group live with a reduction long
// enough to amortise a tile's start and end. Shorter reductions (a network's first layer: 3 x 3 x 3)
// still gain where the column matrix's GEMM would be narrow or gathered: at most 32 output channels
// a group, or a column stride above 1, with half the lanes live. Measured, 2 threads, against the
// column matrix: MobileNet's conv1 (3 -> 32, stride 2, 224x224) 1.35-1.52x at batch 1-32; 3 -> 16
// and 3 -> 24 at stride 2 1.26-1.80x; 1 -> 32 at 64x64 2.4x; 3 -> 32 at 112x112 1.09x. With 64
// output channels at stride 1 the GEMM is wide enough: VGG16's conv1_1 0.89x, so it stays there.
// On 16-register ISAs, few channels on reductions of at most 150 (few_channels_on_16_registers).
template <class T>
bool preferred(const Conv2dParams& p) {
  const int64_t kg = p.k / p.groups, cg = p.c / p.groups;
  const int64_t padded = lanes_of<T>(kg), reduction = cg * p.kh * p.kw;
  if (p.kh * p.kw == 1) return false;
  if (few_channels_on_16_registers<T>(kg) && reduction <= 150) return true;
  if (reduction >= 32) return 4 * kg >= 3 * padded;
  return 2 * kg >= padded && (kg <= 32 || p.stride_w > 1);
}

}  // namespace direct
}  // namespace CNNX_ISA_NS
}  // namespace cnnx
