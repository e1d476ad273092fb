// Blocked GEMM (Goto/BLIS scheme), compiled once per ISA. Contract: cnnx/gemm.h.
//
//   for jc in n by NC:                 B block  op(B)[pc:pc+KC, jc:jc+NC] packed once, shared (L3)
//     for pc in k by KC:
//       pack B block (threads split its NR-wide panels), or read row-major B in place when few
//       A panels would reuse the copy
//       for ic in m by MC:             A block  op(A)[ic:ic+MC, pc:pc+KC] packed once, shared (L2)
//         pack A block (threads split its MR-high panels)
//         micro-tiles (MR x NR each) split between threads, column-panel major, so each thread
//         keeps one KC x NR panel of B close while it walks the A panels.
//   When B is only a few panels wide, threads instead take disjoint rows of C, each packing its
//   own A blocks (see the region below).
//
// Block sizes are balanced (no short remainder block); the B panel is prefetched ahead inside the
// micro-kernel. Threads never split k, so every C element accumulates the same products in the
// same order whatever the thread count: results are bitwise reproducible across thread counts.
// Packing pads partial panels with zeros; partial tiles run a kernel sized to their rows (tile()).
#include <algorithm>
#include <array>
#include <cstdint>
#include <utility>

#include "cnnx/gemm.h"
#include "cnnx/runtime.h"
#include "cpu/parallel.h"
#include "cpu/simd.h"

namespace cnnx {
namespace CNNX_ISA_NS {

namespace {

using std::int64_t;

template <class T>
struct Blocking {
  using Tile = simd::GemmTile<T>;
  static constexpr int W = simd::Vec<T>::width;
  static constexpr int MR = Tile::MR;
  static constexpr int NV = Tile::NV;
  static constexpr int NR = NV * W;
  static constexpr int64_t KC = Tile::KC;
  static constexpr int64_t MC = Tile::MC;
  static constexpr int64_t NC = Tile::NC;
  static_assert(MC % MR == 0 && NC % NR == 0, "blocks must hold whole micro-panels");
};

constexpr int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Splits `total` into the fewest blocks of at most `cap`, all of nearly equal size (a multiple of
// `unit` except the last), so no block is a short remainder (a 64-deep k block after four 768-deep
// ones would run the micro-kernel at a fraction of its speed).
int64_t balanced_block(int64_t total, int64_t cap, int64_t unit) {
  const int64_t blocks = ceil_div(total, cap);
  return std::min(cap, ceil_div(ceil_div(total, blocks), unit) * unit);
}

// A transposing pack reads its panel's rows (columns of op(B)) a few values at a time, and rows
// of a few hundred values (a pointwise layer's pixels) are too short for the hardware prefetchers
// to follow: so while it packs one stretch of columns it fetches the same stretch of the next
// panel's R rows (at `next`, ld apart), one cache line per row as the stretch enters a line.
// (Prefetches never fault: past the matrix they only waste a fetch.)
template <class T, int R>
CNNX_INLINE void prefetch_next_rows(const T* next, int64_t ld) {
  constexpr int S = simd::transpose_size<T>(), L = 64 / int(sizeof(T));
  if ((reinterpret_cast<std::uintptr_t>(next) / sizeof(T)) % L >= S) return;
  for (int r = 0; r < R; ++r) __builtin_prefetch(next + r * ld);
}

// Packs rows [i, i+rows) x columns [p0, p0+kc) of op(A) into one micro-panel: for each k, MR values
// (one per row) side by side; rows >= `rows` are zero.
template <class T, int MR>
void pack_a_panel(T* dst, const T* a, int64_t lda, bool trans, int64_t i, int64_t rows, int64_t p0,
                  int64_t kc) {
  if (trans) {  // op(A)[i][q] = a[q * lda + i]: each k reads `rows` consecutive values, in vectors
    using V = simd::Vec<T>;
    constexpr int W = V::width;
    for (int64_t q = 0; q < kc; ++q) {
      const T* src = a + (p0 + q) * lda + i;
      T* d = dst + q * MR;
      for (int r0 = 0; r0 < MR; r0 += W) {
        const int live = int(std::clamp<int64_t>(rows - r0, 0, W)), span = std::min(W, MR - r0);
        const typename V::reg v = live == W ? V::load(src + r0) : live ? V::load_partial(src + r0, live) : V::zero();
        if (span == W)
          V::store(d + r0, v);
        else
          V::store_partial(d + r0, v, span);
      }
    }
  } else if constexpr (simd::Transpose<T>::available && MR <= simd::transpose_size<T>()) {
    // op(A)[i][q] = a[i * lda + q]: a transpose, done S columns at a time in registers.
    constexpr int S = simd::transpose_size<T>();
    for (int64_t q0 = 0; q0 < kc; q0 += S) {
      prefetch_next_rows<T, MR>(a + (i + MR) * lda + p0 + q0, lda);
      simd::Transpose<T>::block(a + i * lda + p0 + q0, lda, int(rows), int(std::min<int64_t>(S, kc - q0)),
                                dst + q0 * MR, MR, MR);
    }
  } else {  // the same transpose in scalar code, 16 columns at a time, so the rows are read a
            // cache line at a time and the destination chunk stays in L1.
    constexpr int64_t Q = 16;
    for (int64_t q0 = 0; q0 < kc; q0 += Q) {
      const int64_t qn = std::min(Q, kc - q0);
      T* d = dst + q0 * MR;
      int64_t r = 0;
      for (; r < rows; ++r) {
        const T* src = a + (i + r) * lda + p0 + q0;
        for (int64_t q = 0; q < qn; ++q) d[q * MR + r] = src[q];
      }
      for (; r < MR; ++r)
        for (int64_t q = 0; q < qn; ++q) d[q * MR + r] = T(0);
    }
  }
}

// Packs rows [p0, p0+kc) x columns [j, j+cols) of op(B) into one micro-panel: for each k, NR
// consecutive values; columns >= `cols` are zero.
template <class T, int NR>
void pack_b_panel(T* dst, const T* b, int64_t ldb, bool trans, int64_t p0, int64_t kc, int64_t j,
                  int64_t cols) {
  using V = simd::Vec<T>;
  constexpr int W = V::width;
  if (!trans) {  // op(B)[q][j] = b[q * ldb + j]: a contiguous copy per k
    if (cols == NR) {
      for (int64_t q = 0; q < kc; ++q) {
        const T* src = b + (p0 + q) * ldb + j;
        T* d = dst + q * NR;
#pragma GCC unroll 8
        for (int v = 0; v < NR / W; ++v) V::store(d + v * W, V::load(src + v * W));
      }
      return;
    }
    for (int64_t q = 0; q < kc; ++q) {
      const T* src = b + (p0 + q) * ldb + j;
      T* d = dst + q * NR;
      int64_t c = 0;
      for (; c < cols; ++c) d[c] = src[c];
      for (; c < NR; ++c) d[c] = T(0);
    }
  } else if constexpr (simd::Transpose<T>::available && NR % simd::transpose_size<T>() == 0) {
    // op(B)[q][j] = b[j * ldb + q]: a transpose, S x S blocks in registers.
    constexpr int S = simd::transpose_size<T>();
    for (int64_t q0 = 0; q0 < kc; q0 += S) {
      prefetch_next_rows<T, NR>(b + (j + NR) * ldb + p0 + q0, ldb);
      for (int h = 0; h < NR; h += S)
        simd::Transpose<T>::block(b + (j + h) * ldb + p0 + q0, ldb,
                                  int(std::max<int64_t>(0, std::min<int64_t>(S, cols - h))),
                                  int(std::min<int64_t>(S, kc - q0)), dst + q0 * NR + h, NR, S);
    }
  } else {  // op(B)[q][j] = b[j * ldb + q]: each column is a contiguous stream
    int64_t c = 0;
    for (; c < cols; ++c) {
      const T* src = b + (j + c) * ldb + p0;
      for (int64_t q = 0; q < kc; ++q) dst[q * NR + c] = src[q];
    }
    for (; c < NR; ++c)
      for (int64_t q = 0; q < kc; ++q) dst[q * NR + c] = T(0);
  }
}

// Packs panels [q_begin, q_end) of the B block starting at column j0 (nc columns in the block).
// Row-major B is copied a group of panels at a time, row by row: each source row is then read in
// 1-2 KiB runs instead of 128-byte pieces one page apart (ldb is often tens of KiB: an im2col
// matrix), which keeps the copy at streaming speed and off the TLB's critical path.
template <class T, int NR>
void pack_b_panels(T* b_pack, const T* b, int64_t ldb, bool trans, int64_t p0, int64_t kc,
                   int64_t j0, int64_t nc, int64_t q_begin, int64_t q_end) {
  using V = simd::Vec<T>;
  constexpr int W = V::width;
  constexpr int64_t G = 8;
  const int64_t full_end = std::min(q_end, nc / NR);  // panels with all NR columns
  int64_t q = q_begin;
  if (!trans) {
    for (; q + G <= full_end; q += G)
      for (int64_t k = 0; k < kc; ++k) {
        const T* src = b + (p0 + k) * ldb + j0 + q * NR;
        T* d = b_pack + q * NR * kc + k * NR;
        for (int64_t g = 0; g < G; ++g)
#pragma GCC unroll 8
          for (int v = 0; v < NR / W; ++v) V::store(d + g * NR * kc + v * W, V::load(src + g * NR + v * W));
      }
  }
  for (; q < q_end; ++q)
    pack_b_panel<T, NR>(b_pack + q * NR * kc, b, ldb, trans, p0, kc, j0 + q * NR,
                        std::min<int64_t>(NR, nc - q * NR));
}

// A finished MR x `cols` tile stored transposed: row r of the tile, column j, to c[j * ldc + r], so
// each column becomes MR consecutive values. The tile goes through L1 scratch in its own layout,
// where it gets alpha and beta * C exactly as the row-major stores do (the same operations, so the
// same bits), then out in slices of simd::transpose_size columns, transposed in registers where the
// ISA has it (AVX-512 and AVX2 float). beta != 0 first brings C's values into the scratch the same
// way, transposed.
template <class T, int MR, int NV>
CNNX_INLINE void store_transposed(const typename simd::Vec<T>::reg (&acc)[MR][NV], T* c, int64_t ldc, int64_t cols,
                                  typename simd::Vec<T>::reg va, T beta, const T* bias) {
  using V = simd::Vec<T>;
  constexpr int W = V::width, NR = NV * W, S = simd::transpose_size<T>();
  static_assert(NR % S == 0 || S % NR == 0, "slices of S columns");
  constexpr bool in_registers = simd::Transpose<T>::available && MR <= S;
  alignas(64) T tile[MR][NR];
  if (beta != T(0)) {
    for (int j0 = 0; j0 < cols; j0 += S) {  // tile[r][j] = c[j * ldc + r]
      const int live = int(std::min<int64_t>(S, cols - j0));
      if constexpr (in_registers)
        simd::Transpose<T>::block(c + j0 * ldc, ldc, live, MR, &tile[0][j0], NR, live);
      else
        for (int r = 0; r < MR; ++r)
          for (int j = 0; j < live; ++j) tile[r][j0 + j] = c[(j0 + j) * ldc + r];
    }
    const typename V::reg vb = V::set1(beta);
    for (int r = 0; r < MR; ++r)
      for (int v = 0; v < NV && v * W < cols; ++v)
        V::store(&tile[r][v * W], V::fmadd(acc[r][v], va, V::mul(vb, V::load(&tile[r][v * W]))));
  } else {
#pragma GCC unroll 32
    for (int r = 0; r < MR; ++r)
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) V::store(&tile[r][v * W], V::mul(acc[r][v], va));
  }
  if (bias)  // stored row j (the tile's column j) gets bias[j]
    for (int v = 0; v < NV && v * W < cols; ++v) {
      const int live = int(std::min<int64_t>(W, cols - v * W));
      const typename V::reg bv = live == W ? V::load(bias + v * W) : V::load_partial(bias + v * W, live);
      for (int r = 0; r < MR; ++r) V::store(&tile[r][v * W], V::add(V::load(&tile[r][v * W]), bv));
    }
  for (int j0 = 0; j0 < cols; j0 += S) {
    const int live = int(std::min<int64_t>(S, cols - j0));
    T* cj = c + j0 * ldc;
    if constexpr (in_registers)
      simd::Transpose<T>::block(&tile[0][j0], NR, MR, live, cj, ldc, MR);
    else
      for (int j = 0; j < live; ++j)
        for (int r = 0; r < MR; ++r) cj[j * ldc + r] = tile[r][j0 + j];
  }
}

// k steps per C line the micro-kernel fetches ahead of a transposed store.
constexpr int64_t kCLineSteps = 8;

// The micro-kernel: C[0:MR, 0:NV*W] = alpha * Ap @ Bp + beta * C, over kc packed steps.
// MR x NV accumulator registers; one broadcast of A and NV loads of B per k step. AS is the row
// length of the packed A panel (larger than MR when a kernel for a partial tile runs on a full
// panel); bs is the distance between B rows: NR in a packed panel, ldb when B is read in place.
// beta == 0: C is not read. trans_c: the tile is stored transposed (store_transposed). bias: null, or
// the tile's first stored row's entry of row_bias (gemm_blocked), added last.
template <class T, int MR, int NV, int AS>
CNNX_INLINE void micro_kernel(int64_t kc, const T* __restrict ap, const T* __restrict bp, int64_t bs,
                              T* c, int64_t ldc, int64_t cols, T alpha, T beta, bool trans_c, const T* bias) {
  using V = simd::Vec<T>;
  using R = typename V::reg;
  constexpr int W = V::width, NR = NV * W;
  R acc[MR][NV];
#pragma GCC unroll 32
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) acc[r][v] = V::zero();

  const int64_t ahead = (bs <= 64 ? 8 : 32) * bs;
  auto steps = [&](int64_t n) __attribute__((always_inline)) {
#pragma GCC unroll 4
    for (int64_t q = 0; q < n; ++q) {
      R bv[NV];
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) bv[v] = V::load(bp + v * W);
      // B streams from L2 (a packed KC x NR panel is larger than L1 at our KC) or, read in place,
      // from memory one page per row: fetch its rows ahead, 8 steps for L2 latency (measured: 83%
      // -> 96% of peak for the kernel alone), 32 for memory. The A panel is read 4x more slowly and
      // the hardware prefetcher keeps up with it.
      for (int line = 0; line < NR; line += 64 / int(sizeof(T))) __builtin_prefetch(bp + ahead + line);
#pragma GCC unroll 32
      for (int r = 0; r < MR; ++r) {
        const R av = V::set1(ap[r]);
#pragma GCC unroll 8
        for (int v = 0; v < NV; ++v) acc[r][v] = V::fmadd(av, bv[v], acc[r][v]);
      }
      ap += AS;
      bp += bs;
    }
  };
  if (!trans_c) {
    steps(kc);
  } else {
    // Stored transposed, the tile writes `cols` runs of MR values, ldc apart: each starts or ends
    // inside a cache line, and a line written in part must first be read (a whole-line store need
    // not be). So those lines are fetched during the k loop, one every kCLineSteps steps (spread
    // out: all at once, they would queue behind the A and B streams). MobileNet's 14x14 512 -> 512
    // pointwise layer at batch 32 (196 x 512 products stored as 512 x 196): 1.05-1.07x on one
    // thread, 1.02-1.05x on two; skipping the store altogether would gain 1.08-1.12x.
    const int64_t c_lines = 2 * cols;  // the first and the last value of each run
    for (int64_t q0 = 0, c_line = 0; q0 < kc; q0 += kCLineSteps, ++c_line) {
      if (c_line < c_lines) __builtin_prefetch(c + (c_line >> 1) * ldc + (c_line & 1) * (MR - 1), 1);
      steps(std::min(kCLineSteps, kc - q0));
    }
  }

  const R va = V::set1(alpha);
  if (trans_c) {
    store_transposed<T, MR, NV>(acc, c, ldc, cols, va, beta, bias);
    return;
  }
  auto add_bias = [&](R out, int r) { return bias ? V::add(out, V::set1(bias[r])) : out; };
  if (cols < NR) {  // a partial panel: only its first `cols` columns are C's, written under masks
    const R vb = V::set1(beta);
    for (int r = 0; r < MR; ++r)
      for (int v = 0; v < NV && v * W < cols; ++v) {
        T* cp = c + r * ldc + v * W;
        const int live = int(std::min<int64_t>(W, cols - v * W));
        const R out = beta == T(0) ? V::mul(acc[r][v], va) : V::fmadd(acc[r][v], va, V::mul(vb, V::load_partial(cp, live)));
        V::store_partial(cp, add_bias(out, r), live);
      }
  } else if (beta == T(0)) {
#pragma GCC unroll 32
    for (int r = 0; r < MR; ++r)
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) V::store(c + r * ldc + v * W, add_bias(V::mul(acc[r][v], va), r));
  } else {
    const R vb = V::set1(beta);
#pragma GCC unroll 32
    for (int r = 0; r < MR; ++r)
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) {
        T* cp = c + r * ldc + v * W;
        V::store(cp, add_bias(V::fmadd(acc[r][v], va, V::mul(vb, V::load(cp))), r));
      }
  }
}

// One tile of `rows` (= R) x `cols` (<= NR) elements. Every row count has its own kernel, so a
// partial panel (M = 64 with MR = 14 leaves 8 rows) costs what it computes, not a whole tile.
// Partial columns are written under masks; columns that fit in one vector use the one-vector kernel.
template <class T>
using TileFn = void (*)(int64_t kc, const T* ap, const T* bp, int64_t bs, T* c, int64_t ldc,
                        int64_t cols, T alpha, T beta, bool trans_c, const T* bias);

template <class T, int R, int NV, int AS>
void tile(int64_t kc, const T* ap, const T* bp, int64_t bs, T* c, int64_t ldc, int64_t cols,
          T alpha, T beta, bool trans_c, const T* bias) {
  constexpr int W = simd::Vec<T>::width;
  if (NV > 1 && cols <= W)
    micro_kernel<T, R, 1, AS>(kc, ap, bp, bs, c, ldc, cols, alpha, beta, trans_c, bias);
  else
    micro_kernel<T, R, NV, AS>(kc, ap, bp, bs, c, ldc, cols, alpha, beta, trans_c, bias);
}

// tiles[R - 1] handles R rows.
template <class T, int MR, int NV, std::size_t... Rs>
constexpr std::array<TileFn<T>, MR> make_tiles(std::index_sequence<Rs...>) {
  return {&tile<T, int(Rs) + 1, NV, MR>...};
}

// Whether an m x k by k x n product reads a row-major B (rows ldb apart) in place rather than packing
// it. Packing B pays off when many rows of A reuse it. With few (M = out channels of a convolution
// over a small image), copying B costs as much as using it: up to kInPlaceRows rows, measured on
// both ISAs (AVX-512: 8 panels of 14 rows; AVX2, 6-row panels: 64 rows 1.07-1.10x in place,
// GoogLeNet's 3a 1x1 forward and a ResNet-18 3x3 column matrix, 19% of the former was the copy;
// 128 rows 1.01-1.06x, within noise). Only where the micro-kernel's prefetch (32 rows ahead) can
// hide the reads: a reduction of at least 128 rows (with K = 32 every B row of a
// panel was a demand miss: MobileNet's 112x112 32 -> 64 pointwise layer ran 1.8x slower in place),
// rows at most 8 KiB apart (wider strides touch a page or more per row, which the prefetchers follow
// badly: ResNet-50's 1x1 dx at 56x56, 1.5x), and not a multiple of 2 KiB apart (the rows would
// crowd a few cache sets).
constexpr int64_t kInPlaceRows = 112;
template <class T>
bool reads_b_in_place(int64_t m, int64_t k, int64_t ldb) {
  const int64_t row_bytes = ldb * int64_t(sizeof(T));
  return m <= kInPlaceRows && k >= 128 && row_bytes <= 8192 && row_bytes % 2048 != 0;
}

// C = beta * C (the k == 0 / alpha == 0 case).
template <class T>
void scale_c(T* c, const GemmParams& p, T beta, const T* row_bias) {
  const int64_t rows = p.trans_c ? p.n : p.m, cols = p.trans_c ? p.m : p.n;  // as stored
  for (int64_t i = 0; i < rows; ++i) {
    T* ci = c + i * p.ldc;
    for (int64_t j = 0; j < cols; ++j) {
      ci[j] = beta == T(0) ? T(0) : beta * ci[j];
      if (row_bias) ci[j] += row_bias[i];
    }
  }
}

// Below this many multiply-adds per thread, waking a second thread costs more than it saves.
constexpr double kMinMacsPerThread = 1 << 19;
// gemm_blocked's threads take their own rows of C when the packed B block is at most this large
// (half of a core's 2 MiB L2 here, beside the A block and C) and each has this many rows.
constexpr int64_t kSplitMBBytes = int64_t(1) << 20;
constexpr int64_t kSplitMRows = 128;

// Where gemm_blocked reads a packed A: k block kb (all KC-deep but the last), then MR-row panels,
// each kc x MR. A caller that multiplies the same A many times (a convolution's weights, once per
// image or tile) packs it once in this layout (pack_a_panels) and passes it in (a_packed).
template <class T>
int64_t packed_a_offset(int64_t m, int64_t k, int64_t pc, int64_t row) {
  using B = Blocking<T>;
  const int64_t KC = balanced_block(k, B::KC, 8);
  return (pc / KC) * ceil_div(m, B::MR) * B::MR * KC + (row / B::MR) * B::MR * std::min(KC, k - pc);
}

template <class T>
int64_t packed_a_size(int64_t m, int64_t k) {
  return ceil_div(m, Blocking<T>::MR) * Blocking<T>::MR * k;
}

// Panels [q_begin, q_end) of op(A) (m x k), every k block, into dst laid out as packed_a_offset says.
template <class T>
void pack_a_panels(T* dst, const T* a, int64_t lda, bool trans, int64_t m, int64_t k, int64_t q_begin,
                   int64_t q_end) {
  using B = Blocking<T>;
  constexpr int MR = B::MR;
  const int64_t KC = balanced_block(k, B::KC, 8);
  for (int64_t pc = 0; pc < k; pc += KC)
    for (int64_t q = q_begin; q < q_end; ++q)
      pack_a_panel<T, MR>(dst + packed_a_offset<T>(m, k, pc, q * MR), a, lda, trans, q * MR,
                          std::min<int64_t>(MR, m - q * MR), pc, std::min(KC, k - pc));
}

// Where gemm_blocked reads a packed B: column block jc (all NC wide but the last), then k block,
// then NR-column panels, each kc x NR. A caller can build B in this layout directly (a convolution
// writes its column matrix there instead of writing it row-major for the GEMM to copy again).
template <class T>
int64_t packed_b_offset(int64_t k, int64_t n, int64_t pc, int64_t jc) {
  using B = Blocking<T>;
  const int64_t KC = balanced_block(k, B::KC, 8), NC = balanced_block(n, B::NC, B::NR);
  const int64_t nc = std::min(NC, n - jc);
  return (jc / NC) * ceil_div(NC, B::NR) * B::NR * k + (pc / KC) * ceil_div(nc, B::NR) * B::NR * KC;
}

template <class T>
int64_t packed_b_size(int64_t k, int64_t n) {
  using B = Blocking<T>;
  const int64_t NC = balanced_block(n, B::NC, B::NR);
  return n == 0 ? 0 : ((n - 1) / NC) * ceil_div(NC, B::NR) * B::NR * k + ceil_div(n - (n - 1) / NC * NC, B::NR) * B::NR * k;
}

// NR-column panels [q_begin, q_end) of op(B) (k x n), every k block, into dst laid out as
// packed_b_offset says (column blocks hold whole panels, so panel q lies in one of them).
template <class T>
void pack_b_all(T* dst, const T* b, int64_t ldb, bool trans, int64_t k, int64_t n, int64_t q_begin, int64_t q_end) {
  using B = Blocking<T>;
  constexpr int NR = B::NR;
  const int64_t KC = balanced_block(k, B::KC, 8), NC = balanced_block(n, B::NC, NR);
  for (int64_t pc = 0; pc < k; pc += KC)
    for (int64_t q = q_begin; q < q_end; ++q) {
      const int64_t j = q * NR, jc = j / NC * NC, kc = std::min(KC, k - pc);
      pack_b_panel<T, NR>(dst + packed_b_offset<T>(k, n, pc, jc) + (j - jc) * kc, b, ldb, trans, pc, kc, j,
                          std::min<int64_t>(NR, n - j));
    }
}

// Row r of op(B) (n values at row) into the packed layout; the lanes past n in a block's last panel
// are zeroed.
template <class T>
void pack_b_row(T* dst, const T* row, int64_t k, int64_t n, int64_t r) {
  using B = Blocking<T>;
  using V = simd::Vec<T>;
  constexpr int NR = B::NR, W = V::width;
  const int64_t KC = balanced_block(k, B::KC, 8), NC = balanced_block(n, B::NC, NR);
  const int64_t pc = r / KC * KC, kc = std::min(KC, k - pc);
  for (int64_t jc = 0; jc < n; jc += NC) {
    const int64_t nc = std::min(NC, n - jc);
    T* d = dst + packed_b_offset<T>(k, n, pc, jc) + (r - pc) * NR;
    int64_t j = 0;
    for (; j + NR <= nc; j += NR, d += NR * kc)
#pragma GCC unroll 8
      for (int v = 0; v < NR / W; ++v) V::store(d + v * W, V::load(row + jc + j + v * W));
    if (j < nc) {
      const int64_t left = nc - j;
      for (int64_t l = 0; l < NR; ++l) d[l] = l < left ? row[jc + j + l] : T(0);
    }
  }
}

// Micro-kernel cycles per k step over all the tiles of an m x n product: a tile of r rows and
// nv vectors issues r * nv FMAs and r + nv loads (broadcasts and B vectors), two of each per
// cycle. A panel with at most one vector of live columns runs the one-vector kernel, which is
// load-bound: the 4 columns left over from 196 (a 14x14 image) cost half a full panel.
template <class T>
double product_cycles(int64_t m, int64_t n) {
  using B = Blocking<T>;
  auto tile_cycles = [](int64_t r, int64_t cols) {
    const int64_t nv = cols <= B::W ? 1 : B::NV;
    return double(std::max(r * nv, r + nv)) / 2;
  };
  const int64_t fm = m / B::MR, rm = m % B::MR, fn = n / B::NR, rn = n % B::NR;
  double cycles = double(fm) * double(fn) * tile_cycles(B::MR, B::NR);
  if (rn) cycles += double(fm) * tile_cycles(B::MR, rn);
  if (rm) cycles += double(fn) * tile_cycles(rm, B::NR);
  if (rm && rn) cycles += tile_cycles(rm, rn);
  return cycles;
}

// Whether C = op(A) op(B) runs clearly faster as C^T = op(B)^T op(A)^T, stored transposed: the
// tiles are MR x NR, so the better fit of m and n to them decides. Depends on the shapes only.
// `ratio`: how many fewer cycles it must save. A caller that packs the operands once (a pointwise
// convolution, gemm_computes_transposed) gains from 5% (512 channels x 196 pixels as 196 x 512 is
// 6% fewer cycles: 14 rows per tile exactly, no narrow column panel). A GEMM on its own swaps only
// for 1/0.7 = 1.4x fewer: swapped, its large operand (a layer's weights) becomes the B block, packed
// whole and read back from L3 by few row panels, which ate the gain (2048 x 49 from 2048 x 512
// weights: 0.96x), while narrow products gain much (m x 10, a classifier: 1.3-1.8x).
constexpr double kPackedTileRatio = 0.95, kOwnTileRatio = 0.7;

template <class T>
bool computes_transposed(int64_t m, int64_t n, double ratio) {
  return product_cycles<T>(n, m) < ratio * product_cycles<T>(m, n);
}

// row_bias: null, or one value per stored row of C (row i, or column j with trans_c), added to the
// row's elements after alpha and beta, on the last k block: a convolution's bias, with no pass of its
// own over the output (MobileNet's 14x14 512 -> 512 pointwise forward: 11% of its time).
template <class T>
void gemm_blocked(T* c, const T* a, const T* b, const GemmParams& p, const T* a_packed = nullptr,
                  const T* b_packed = nullptr, const T* row_bias = nullptr) {
  // Each C element still sums the same products in the same order, so the bits do not change; the
  // stored rows are the same, so is row_bias.
  if (!a_packed && !b_packed && computes_transposed<T>(p.m, p.n, kOwnTileRatio))
    return gemm_blocked<T>(c, b, a, transposed_product(p), nullptr, nullptr, row_bias);
  using B = Blocking<T>;
  constexpr int MR = B::MR, NV = B::NV, NR = B::NR;
  static constexpr std::array<TileFn<T>, MR> tiles = make_tiles<T, MR, NV>(std::make_index_sequence<MR>());
  const T alpha = static_cast<T>(p.alpha), beta = static_cast<T>(p.beta);
  if (p.m == 0 || p.n == 0) return;
  if (p.k == 0 || alpha == T(0)) {
    scale_c(c, p, beta, row_bias);
    return;
  }

  const int64_t KC = balanced_block(p.k, B::KC, 8);
  const int64_t MC = balanced_block(p.m, B::MC, MR);
  const int64_t NC = balanced_block(p.n, B::NC, NR);
  T* a_pack = workspace_as<T>(0, ceil_div(MC, MR) * MR * KC);
  T* b_pack = workspace_as<T>(1, ceil_div(NC, NR) * NR * KC);

  const bool direct_b = !b_packed && !p.trans_b && reads_b_in_place<T>(p.m, p.k, p.ldb);

  const double macs = double(p.m) * double(p.n) * double(p.k);
  const int64_t max_tiles = ceil_div(MC, MR) * ceil_div(NC, NR);
  int threads = p.threads > 0 ? p.threads : get_num_threads();
  threads = int(std::min<double>(threads, std::max(1.0, macs / kMinMacsPerThread)));
  threads = int(std::min<int64_t>(threads, max_tiles));

  // Tiles [t_begin, t_end) of the block of C at (ic, jc): column-panel major, so a thread keeps one
  // B panel in L1/L2 while it walks the A panels.
  auto run_tiles = [&](const T* a_block, int64_t ic, int64_t mc, int64_t jc, int64_t nc, int64_t pc,
                       int64_t kc, int64_t t_begin, int64_t t_end) {
    const T beta_k = pc == 0 ? beta : T(1);  // later k blocks accumulate onto the first
    const int64_t a_panels = ceil_div(mc, MR);
    for (int64_t t = t_begin; t < t_end; ++t) {
      const int64_t jr = t / a_panels, ir = t % a_panels;
      const T* ap = a_block + ir * MR * kc;
      const int64_t i = ic + ir * MR, j = jc + jr * NR;
      T* ct = p.trans_c ? c + j * p.ldc + i : c + i * p.ldc + j;
      const T* bias = row_bias && pc + kc == p.k ? row_bias + (p.trans_c ? j : i) : nullptr;
      const int64_t rows = std::min<int64_t>(MR, mc - ir * MR);
      const int64_t cols = std::min<int64_t>(NR, nc - jr * NR);
      const bool in_place = direct_b && cols == NR;
      const T* b_block = b_packed ? b_packed + packed_b_offset<T>(p.k, p.n, pc, jc) : b_pack;
      const T* bp = in_place ? b + pc * p.ldb + jc + jr * NR : b_block + jr * NR * kc;
      const int64_t bs = in_place ? p.ldb : NR;
      if (rows == MR && cols == NR)
        micro_kernel<T, MR, NV, MR>(kc, ap, bp, bs, ct, p.ldc, NR, alpha, beta_k, p.trans_c, bias);
      else
        tiles[rows - 1](kc, ap, bp, bs, ct, p.ldc, cols, alpha, beta_k, p.trans_c, bias);
    }
  };
  auto pack_a_block = [&](T* dst, int64_t ic, int64_t mc, int64_t pc, int64_t kc, int64_t q_begin,
                          int64_t q_end) {
    if (a_packed) return;  // already packed by the caller
    for (int64_t q = q_begin; q < q_end; ++q)
      pack_a_panel<T, MR>(dst + q * MR * kc, a, p.lda, p.trans_a, ic + q * MR,
                          std::min<int64_t>(MR, mc - q * MR), pc, kc);
  };

  parallel::region(threads, [&](int tid, int nt) {
    // Two ways to share the work. Threads either share each packed A block and split its tiles,
    // or each takes its own rows of C and packs its own A blocks, with no barrier between them
    // (split_m). Sharing keeps each thread to half of the B block; taking rows costs each thread
    // the whole B block, but saves two barriers per A block and reading the other thread's half of
    // each A block. Rows are taken when the B block is only a few panels wide (too few tiles to
    // split evenly: N small, M large, the deep layers of a network), or when it stays in a core's
    // L2 (kSplitMBBytes) and each thread has rows enough to reuse it (kSplitMRows). Measured, 2
    // threads, against sharing: 6272 x 512 x 512 1.07-1.11x, 3136 x 256 x 1152 1.16-1.26x,
    // 256 x 256 x 256 1.09-1.31x; where B is larger than L2 (2048^3, 512 x 6272 x 512) 0.95x, and
    // 128 x 12544 x 64 (64 rows a thread, B read once) 0.87x, so those share.
    const int64_t m_panels = ceil_div(p.m, MR);
    const int64_t b_bytes = std::min(KC, p.k) * std::min(NC, p.n) * int64_t(sizeof(T));
    const bool split_m = nt > 1 && m_panels >= 2 * nt &&
                         (ceil_div(std::min(NC, p.n), NR) < 4 * nt ||
                          (b_bytes <= kSplitMBBytes && p.m >= kSplitMRows * nt));
    T* my_a = split_m ? workspace_as<T>(2, ceil_div(MC, MR) * MR * KC) : nullptr;

    for (int64_t jc = 0; jc < p.n; jc += NC) {
      const int64_t nc = std::min(NC, p.n - jc);
      const int64_t b_panels = ceil_div(nc, NR);
      for (int64_t pc = 0; pc < p.k; pc += KC) {
        const int64_t kc = std::min(KC, p.k - pc);

        const parallel::Range bq = parallel::split(b_panels, tid, nt);
        if (b_packed)
          ;  // already packed by the caller
        else if (!direct_b)
          pack_b_panels<T, NR>(b_pack, b, p.ldb, p.trans_b, pc, kc, jc, nc, bq.begin, bq.end);
        else if (nc % NR != 0 && tid == nt - 1)  // only the ragged last panel needs a copy
          pack_b_panels<T, NR>(b_pack, b, p.ldb, false, pc, kc, jc, nc, b_panels - 1, b_panels);

        if (split_m) {
          parallel::barrier(nt);  // B block complete
          const parallel::Range mine = parallel::split(m_panels, tid, nt);
          const int64_t row_end = std::min(p.m, mine.end * MR);
          for (int64_t ic = mine.begin * MR; ic < row_end; ic += MC) {
            const int64_t mc = std::min(MC, row_end - ic);
            pack_a_block(my_a, ic, mc, pc, kc, 0, ceil_div(mc, MR));
            const T* a_block = a_packed ? a_packed + packed_a_offset<T>(p.m, p.k, pc, ic) : my_a;
            run_tiles(a_block, ic, mc, jc, nc, pc, kc, 0, ceil_div(mc, MR) * b_panels);
          }
          parallel::barrier(nt);  // nobody repacks B while another thread still reads it
          continue;
        }
        for (int64_t ic = 0; ic < p.m; ic += MC) {
          const int64_t mc = std::min(MC, p.m - ic);
          const int64_t a_panels = ceil_div(mc, MR);
          const parallel::Range aq = parallel::split(a_panels, tid, nt);
          pack_a_block(a_pack, ic, mc, pc, kc, aq.begin, aq.end);
          parallel::barrier(nt);  // both packed blocks complete
          const parallel::Range tq = parallel::split(a_panels * b_panels, tid, nt);
          const T* a_block = a_packed ? a_packed + packed_a_offset<T>(p.m, p.k, pc, ic) : a_pack;
          run_tiles(a_block, ic, mc, jc, nc, pc, kc, tq.begin, tq.end);
          parallel::barrier(nt);  // nobody repacks A (or B) while another thread still reads it
        }
      }
    }
  });
}

}  // namespace

void gemm_f32(float* c, const float* a, const float* b, const GemmParams& p) {
  gemm_blocked<float>(c, a, b, p);
}
void gemm_f64(double* c, const double* a, const double* b, const GemmParams& p) {
  gemm_blocked<double>(c, a, b, p);
}

// Pre-packed A (see packed_a_offset): for kernels in this ISA build that reuse one A many times.
int64_t gemm_packed_a_size(int64_t m, int64_t k, float) { return packed_a_size<float>(m, k); }
int64_t gemm_packed_a_size(int64_t m, int64_t k, double) { return packed_a_size<double>(m, k); }
bool gemm_reads_b_in_place(int64_t m, int64_t k, int64_t ldb, float) { return reads_b_in_place<float>(m, k, ldb); }
bool gemm_reads_b_in_place(int64_t m, int64_t k, int64_t ldb, double) { return reads_b_in_place<double>(m, k, ldb); }
int64_t gemm_a_panels(int64_t m, float) { return ceil_div(m, Blocking<float>::MR); }
int64_t gemm_a_panels(int64_t m, double) { return ceil_div(m, Blocking<double>::MR); }
int64_t gemm_k_block(int64_t k, float) { return balanced_block(k, Blocking<float>::KC, 8); }
int64_t gemm_k_block(int64_t k, double) { return balanced_block(k, Blocking<double>::KC, 8); }
void gemm_pack_a(float* dst, const float* a, int64_t lda, bool trans, int64_t m, int64_t k, int64_t q0, int64_t q1) {
  pack_a_panels<float>(dst, a, lda, trans, m, k, q0, q1);
}
void gemm_pack_a(double* dst, const double* a, int64_t lda, bool trans, int64_t m, int64_t k, int64_t q0,
                 int64_t q1) {
  pack_a_panels<double>(dst, a, lda, trans, m, k, q0, q1);
}
bool gemm_computes_transposed(int64_t m, int64_t n, float) {
  return computes_transposed<float>(m, n, kPackedTileRatio);
}
bool gemm_computes_transposed(int64_t m, int64_t n, double) {
  return computes_transposed<double>(m, n, kPackedTileRatio);
}
int64_t gemm_b_panels(int64_t n, float) { return ceil_div(n, Blocking<float>::NR); }
int64_t gemm_b_panels(int64_t n, double) { return ceil_div(n, Blocking<double>::NR); }
void gemm_pack_b(float* dst, const float* b, int64_t ldb, bool trans, int64_t k, int64_t n, int64_t q0, int64_t q1) {
  pack_b_all<float>(dst, b, ldb, trans, k, n, q0, q1);
}
void gemm_pack_b(double* dst, const double* b, int64_t ldb, bool trans, int64_t k, int64_t n, int64_t q0,
                 int64_t q1) {
  pack_b_all<double>(dst, b, ldb, trans, k, n, q0, q1);
}
int64_t gemm_packed_b_size(int64_t k, int64_t n, float) { return packed_b_size<float>(k, n); }
int64_t gemm_packed_b_size(int64_t k, int64_t n, double) { return packed_b_size<double>(k, n); }
void gemm_pack_b_row(float* dst, const float* row, int64_t k, int64_t n, int64_t r) {
  pack_b_row<float>(dst, row, k, n, r);
}
void gemm_pack_b_row(double* dst, const double* row, int64_t k, int64_t n, int64_t r) {
  pack_b_row<double>(dst, row, k, n, r);
}
// a_packed / b_packed: null to use a / b (p.lda, p.trans_a / p.ldb, p.trans_b) as in gemm_*.
void gemm_prepacked(float* c, const float* a, const float* a_packed, const float* b, const float* b_packed,
                    const GemmParams& p, const float* row_bias) {
  gemm_blocked<float>(c, a, b, p, a_packed, b_packed, row_bias);
}
void gemm_prepacked(double* c, const double* a, const double* a_packed, const double* b, const double* b_packed,
                    const GemmParams& p, const double* row_bias) {
  gemm_blocked<double>(c, a, b, p, a_packed, b_packed, row_bias);
}

}  // namespace CNNX_ISA_NS
}  // namespace cnnx
