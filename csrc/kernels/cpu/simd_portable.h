// Portable 16-byte vectors through GCC/Clang vector extensions: SSE2 on baseline x86-64, NEON on
// aarch64. No fused multiply-add (baseline x86-64 has none): fmadd is a multiply then an add.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

namespace cnnx {
namespace CNNX_ISA_NS {
namespace simd {

// Vector registers: the kernels' choices between algorithms weigh how many accumulators fit.
constexpr int kVectorRegisters = 16;

template <class T>
struct Vec {
  typedef T reg __attribute__((vector_size(16)));
  static constexpr int width = 16 / sizeof(T);
  static CNNX_INLINE reg zero() { return reg{}; }
  static CNNX_INLINE reg set1(T x) { return reg{} + x; }
  static CNNX_INLINE reg load(const T* p) {
    reg r;
    std::memcpy(&r, p, sizeof r);
    return r;
  }
  static CNNX_INLINE void store(T* p, reg v) { std::memcpy(p, &v, sizeof v); }
  static CNNX_INLINE reg add(reg a, reg b) { return a + b; }
  static CNNX_INLINE reg mul(reg a, reg b) { return a * b; }
  static CNNX_INLINE reg fmadd(reg a, reg b, reg c) { return a * b + c; }
  static CNNX_INLINE reg sub(reg a, reg b) { return a - b; }
  static CNNX_INLINE reg div(reg a, reg b) { return a / b; }
  static CNNX_INLINE reg sqrt(reg a) {
    for (int i = 0; i < width; ++i) a[i] = std::sqrt(a[i]);
    return a;
  }
  static CNNX_INLINE reg rsqrt(reg a) { return reg{} + T(1) / sqrt(a); }
  static CNNX_INLINE T reduce_add(reg a) {
    T s = a[0];
    for (int i = 1; i < width; ++i) s += a[i];
    return s;
  }
  // lo, hi = a0 b0 a1 b1 ... (the lanes of a and b interleaved): lo the first width, hi the rest.
  static CNNX_INLINE void zip(reg a, reg b, reg& lo, reg& hi) {
    reg l{}, h{};
    for (int i = 0; i < width; ++i) {
      reg& dst = 2 * i < width ? l : h;
      dst[(2 * i) % width] = a[i];
      dst[(2 * i + 1) % width] = b[i];
    }
    lo = l, hi = h;
  }
  // The inverse of zip: even = lo0 lo2 ... hi0 hi2 ..., odd = lo1 lo3 ... hi1 hi3 ...
  static CNNX_INLINE void unzip(reg lo, reg hi, reg& even, reg& odd) {
    reg e{}, o{};
    for (int i = 0; i < width; ++i) {
      const reg& src = 2 * i < width ? lo : hi;
      e[i] = src[(2 * i) % width];
      o[i] = src[(2 * i + 1) % width];
    }
    even = e, odd = o;
  }
  // unzip_unordered, unzip_order: see simd_avx2.h; here unzip itself.
  static CNNX_INLINE void unzip_unordered(reg lo, reg hi, reg& even, reg& odd) { unzip(lo, hi, even, odd); }
  static CNNX_INLINE reg unzip_order(reg v) { return v; }
  template <int D>
  static CNNX_INLINE reg slide(reg v) {
    static_assert(D > -width && D < width, "slide by less than a vector");
    reg r{};
    for (int l = 0; l < width; ++l)
      if (l - D >= 0 && l - D < width) r[l] = v[l - D];
    return r;
  }
  static CNNX_INLINE reg blend_lanes(reg a, reg b, std::uint32_t bits) {
    reg r = a;
    for (int l = 0; l < width; ++l)
      if (bits >> l & 1u) r[l] = b[l];
    return r;
  }
  using mask = decltype(reg{} > reg{});  // all-ones integer lanes
  static CNNX_INLINE mask gt_or_nan(reg a, reg b) { return (a > b) | (a != a); }
  static CNNX_INLINE reg select(mask m, reg a, reg b) { return m ? a : b; }
  static CNNX_INLINE bool any(mask m) {
    for (int i = 0; i < width; ++i)
      if (m[i]) return true;
    return false;
  }
  static CNNX_INLINE mask lt(reg a, reg b) { return a < b; }
  static CNNX_INLINE mask is_nan(reg a) { return a != a; }
  // Bit operations on the lanes' integer images (a vector cast between same-sized vector types
  // reinterprets the bits). kSign: only the sign bit set.
  static constexpr int kMantissaBits = sizeof(T) == 4 ? 23 : 52;
  static CNNX_INLINE mask sign_bits() { return mask{} + (decltype(mask{}[0])(1) << (8 * sizeof(T) - 1)); }
  static CNNX_INLINE reg abs(reg a) { return (reg)((mask)a & ~sign_bits()); }
  static CNNX_INLINE reg neg(reg a) { return (reg)((mask)a ^ sign_bits()); }
  static CNNX_INLINE reg copysign(reg mag, reg sgn) { return (reg)(((mask)mag & ~sign_bits()) | ((mask)sgn & sign_bits())); }
  // Adding and subtracting 1.5 * 2^mantissa_bits rounds to a whole number in the current (nearest-even)
  // mode, for |a| < 2^(mantissa_bits - 1). The project compiles without -ffast-math, so the two
  // operations are not folded away.
  static CNNX_INLINE reg round(reg a) {
    const reg magic = set1(T(1.5) * T(std::int64_t(1) << kMantissaBits));
    return (a + magic) - magic;
  }
  static CNNX_INLINE reg pow2i(reg n) {
    const mask e = __builtin_convertvector(n, mask) + ((1 << (sizeof(T) == 4 ? 7 : 10)) - 1);
    return (reg)(e << kMantissaBits);
  }
  static CNNX_INLINE reg load_partial(const T* p, int n) {
    reg r{};
    for (int i = 0; i < n; ++i) r[i] = p[i];
    return r;
  }
  static CNNX_INLINE void store_partial(T* p, reg v, int n) {
    for (int i = 0; i < n; ++i) p[i] = v[i];
  }
  static CNNX_INLINE reg load_lanes(const T* p, std::uint32_t bits) {
    reg r{};
    for (int i = 0; i < width; ++i)
      if (bits >> i & 1u) r[i] = p[i];
    return r;
  }
  static CNNX_INLINE void store_lanes(T* p, reg v, std::uint32_t bits) {
    for (int i = 0; i < width; ++i)
      if (bits >> i & 1u) p[i] = v[i];
  }
  static CNNX_INLINE reg gather_lanes(const T* p, const std::int32_t* idx, std::uint32_t bits, reg fill = reg{}) {
    reg r = fill;
    for (int i = 0; i < width; ++i)
      if (bits >> i & 1u) r[i] = p[idx[i]];
    return r;
  }
  static CNNX_INLINE void store_index(std::int64_t* dst, reg off, std::int64_t base, std::int64_t step) {
    for (int i = 0; i < width; ++i) dst[i] = base + i * step + static_cast<std::int64_t>(off[i]);
  }
  static CNNX_INLINE reg load_strided(const T* p, std::int64_t stride) {
    reg r;
    for (int i = 0; i < width; ++i) r[i] = p[i * stride];
    return r;
  }
  // `width` floats from p, widened (Vec<double> only).
  static CNNX_INLINE reg load_widen(const float* p) {
    reg r;
    for (int i = 0; i < width; ++i) r[i] = p[i];
    return r;
  }
};

// No vector transpose here: packing uses its scalar loops.
template <class T>
struct Transpose {
  static constexpr bool available = false;
};

// Direct convolution tiles (conv_direct.cpp): 4 pixels x 2 vectors = 8 accumulators of 16 xmm.
template <class T>
struct DirectTile {
  static constexpr int R = 4, NV = 2;
};

// GEMM tiles: 4 x 2 registers = 8 accumulators of the 16 xmm registers.
template <class T>
struct GemmTile {
  static constexpr int MR = 4, NV = 2;
  static constexpr std::int64_t KC = 256, MC = 128, NC = 2048;
};

}  // namespace simd
}  // namespace CNNX_ISA_NS
}  // namespace cnnx
