// SIMD vocabulary for the kernels in this folder, which CMake compiles once per ISA (see
// CMakeLists.txt, cnnx_add_isa). Each build sees exactly one of the headers below, chosen by the
// compiler flags of that build; this is the only place where kernels meet an ISA #if.
//
// Vec<T> (T = float, double) gives:
//   reg, width, zero, set1, load, store, add, sub, mul, div, sqrt, fmadd(a, b, c) = a * b + c,
//   reduce_add(a)            sum of the lanes in a fixed order
//   zip(a, b, lo, hi)        a and b interleaved (a0 b0 a1 b1 ...): lo the first width lanes, hi the rest
//   unzip(lo, hi, even, odd) its inverse: the even and the odd lanes of lo then hi
//   mask, gt_or_nan(a, b)    lanes where a > b or a is NaN; select(m, a, b) (a where m, else b); any(m)
//   lt(a, b)                 mask of lanes where a < b (false where either is NaN)
//   is_nan(a)                mask of the NaN lanes
//   abs(a)                   a with its sign bit cleared (NaN stays NaN, -0.0 gives +0.0)
//   neg(a)                   a with its sign bit flipped (NaN included: numpy's np.negative bits)
//   copysign(m, s)           the magnitude bits of m with the sign bit of s (bitwise, NaN included)
//   round(a)                 the nearest whole number, ties to even, for |a| < 2^22 (float) or 2^51
//                            (double); other lanes undefined
//   pow2i(n)                 2^n exactly, for whole-number lanes n in [-126, 127] (float) or
//                            [-1022, 1023] (double), i.e. normal powers of two; other lanes undefined
//   rsqrt(a)                 1/sqrt(a) for finite positive lanes (other lanes undefined): within a few
//                            ulp for float on AVX2/AVX-512 (hardware estimate + one Newton step),
//                            1 / sqrt elsewhere
//   load_strided(p, s)       p[0], p[s], ..., p[(width-1)*s], reading nothing else
//   load_partial(p, n)       the first n < width lanes, the rest zero, reading nothing past p[n-1]
//   store_partial(p, v, n)   the first n < width lanes
//   load_lanes(p, bits)      lane l = p[l] where bit l of bits is set, else zero; reads only those
//                            lanes (the others may lie outside any object: they are not touched)
//   store_lanes(p, v, bits)  p[l] = lane l where bit l of bits is set; writes only those lanes
//   gather_lanes(p, idx, bits[, fill])  lane l = p[idx[l]] where bit l is set, else fill (default
//                            zero; idx: width int32s); reads only those lanes
//   slide<D>(v)              lane l = v[l - D] where 0 <= l - D < width, else zero (|D| < width:
//                            D > 0 moves lanes up, D < 0 down)
//   blend_lanes(a, b, bits)  b on the lanes set in bits, a on the others
//   store_index(dst, off, base, step)   dst[l] = base + l*step + int64(off[l]), for whole-number lanes
//                            in [0, 2^31)
//   load_widen(const float*) on Vec<double>: `width` floats, widened
// Transpose<T>: `available` where the ISA transposes blocks of `size` x `size` values in registers
// (AVX-512 float: 16, AVX2 float: 8); block(src, ld, rows, cols, dst, dst_stride, width) writes
// column j of the rows x cols block at src as the first `width` values at dst + j * dst_stride
// (rows past `rows` as zeros). transpose_size<T>() is that size, or 16 (the scalar loops' chunk).
// All loads and stores are unaligned. GemmTile<T> gives the GEMM register tile (MR rows x NV
// vectors) and cache blocking.
#pragma once

#ifndef CNNX_ISA_NS
#error "files in csrc/kernels/cpu are compiled per ISA: CMake defines CNNX_ISA_NS"
#endif

#define CNNX_INLINE inline __attribute__((always_inline))

#if defined(__AVX512F__)
#include "cpu/simd_avx512.h"
#elif defined(__AVX2__) && defined(__FMA__)
#include "cpu/simd_avx2.h"
#else
#include "cpu/simd_portable.h"
#endif

namespace cnnx {
namespace CNNX_ISA_NS {
namespace simd {
template <class T>
constexpr int transpose_size() {
  if constexpr (Transpose<T>::available)
    return Transpose<T>::size;
  else
    return 16;
}
}  // namespace simd
}  // namespace CNNX_ISA_NS
}  // namespace cnnx
