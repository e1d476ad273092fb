// AVX-512F: 32 zmm registers, 16 floats / 8 doubles per register.
#pragma once
#include <immintrin.h>

#include <cstdint>

namespace cnnx {
namespace CNNX_ISA_NS {
namespace simd {

// Vector registers: the kernels' choices between algorithms weigh how many accumulators fit.
constexpr int kVectorRegisters = 32;

// Gathers take 32-bit lane offsets: strides beyond this fall back to scalar loads.
constexpr std::int64_t kMaxGatherStride = 1 << 26;

// GCC 12 implements the 512 -> 256-bit casts and extracts with an "undefined" register that trips
// -Wuninitialized; the zero-masked extracts compile to the same instructions without it.
static CNNX_INLINE __m256 low_half(__m512 a) { return _mm512_maskz_extractf32x8_ps(0xff, a, 0); }
static CNNX_INLINE __m256 high_half(__m512 a) { return _mm512_maskz_extractf32x8_ps(0xff, a, 1); }
static CNNX_INLINE __m256d low_half(__m512d a) { return _mm512_maskz_extractf64x4_pd(0xf, a, 0); }
static CNNX_INLINE __m256d high_half(__m512d a) { return _mm512_maskz_extractf64x4_pd(0xf, a, 1); }

template <class T>
struct Vec;

template <>
struct Vec<float> {
  using reg = __m512;
  static constexpr int width = 16;
  static CNNX_INLINE reg zero() { return _mm512_setzero_ps(); }
  static CNNX_INLINE reg set1(float x) { return _mm512_set1_ps(x); }
  static CNNX_INLINE reg load(const float* p) { return _mm512_loadu_ps(p); }
  static CNNX_INLINE void store(float* p, reg v) { _mm512_storeu_ps(p, v); }
  static CNNX_INLINE reg add(reg a, reg b) { return _mm512_add_ps(a, b); }
  static CNNX_INLINE reg mul(reg a, reg b) { return _mm512_mul_ps(a, b); }
  static CNNX_INLINE reg fmadd(reg a, reg b, reg c) { return _mm512_fmadd_ps(a, b, c); }
  static CNNX_INLINE reg sub(reg a, reg b) { return _mm512_sub_ps(a, b); }
  static CNNX_INLINE reg div(reg a, reg b) { return _mm512_div_ps(a, b); }
  static CNNX_INLINE reg sqrt(reg a) { return _mm512_sqrt_ps(a); }
  // 1/sqrt(a) within a few ulp (not correctly rounded): the 14-bit estimate and one Newton step.
  // Callers send lanes that are finite and positive (others: see Vec's contract in simd.h).
  static CNNX_INLINE reg rsqrt(reg a) {
    const reg r = _mm512_rsqrt14_ps(a);
    const reg h = _mm512_mul_ps(_mm512_mul_ps(a, r), r);
    return _mm512_mul_ps(r, _mm512_fnmadd_ps(h, set1(0.5f), set1(1.5f)));
  }
  static CNNX_INLINE float reduce_add(reg a) {
    const __m256 h = _mm256_add_ps(low_half(a), high_half(a));
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
  }
  // lo, hi = a0 b0 a1 b1 ... (the lanes of a and b interleaved): lo the first width, hi the rest.
  static CNNX_INLINE void zip(reg a, reg b, reg& lo, reg& hi) {
    lo = _mm512_permutex2var_ps(a, _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23), b);
    hi = _mm512_permutex2var_ps(a, _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31), b);
  }
  // The inverse of zip: even = lo0 lo2 ... hi0 hi2 ..., odd = lo1 lo3 ... hi1 hi3 ...
  static CNNX_INLINE void unzip(reg lo, reg hi, reg& even, reg& odd) {
    even = _mm512_permutex2var_ps(lo, _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30), hi);
    odd = _mm512_permutex2var_ps(lo, _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31), hi);
  }
  // unzip_unordered, unzip_order: see simd_avx2.h; here one two-source permute each, so unzip itself.
  static CNNX_INLINE void unzip_unordered(reg lo, reg hi, reg& even, reg& odd) { unzip(lo, hi, even, odd); }
  static CNNX_INLINE reg unzip_order(reg v) { return v; }
  template <int D>
  static CNNX_INLINE reg slide(reg v) {
    static_assert(D > -width && D < width, "slide by less than a vector");
    const __m512i z = _mm512_setzero_si512();
    if constexpr (D > 0) return _mm512_castsi512_ps(_mm512_alignr_epi32(_mm512_castps_si512(v), z, width - D));
    else if constexpr (D < 0) return _mm512_castsi512_ps(_mm512_alignr_epi32(z, _mm512_castps_si512(v), -D));
    else return v;
  }
  static CNNX_INLINE reg blend_lanes(reg a, reg b, std::uint32_t bits) {
    return _mm512_mask_blend_ps(static_cast<__mmask16>(bits), a, b);
  }
  using mask = __mmask16;
  static CNNX_INLINE mask gt_or_nan(reg a, reg b) {
    return _mm512_cmp_ps_mask(a, b, _CMP_GT_OQ) | _mm512_cmp_ps_mask(a, a, _CMP_UNORD_Q);
  }
  static CNNX_INLINE reg select(mask m, reg a, reg b) { return _mm512_mask_blend_ps(m, b, a); }
  static CNNX_INLINE bool any(mask m) { return m != 0; }
  static CNNX_INLINE mask lt(reg a, reg b) { return _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ); }
  static CNNX_INLINE mask is_nan(reg a) { return _mm512_cmp_ps_mask(a, a, _CMP_UNORD_Q); }
  static CNNX_INLINE reg abs(reg a) {
    return _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(a), _mm512_set1_epi32(0x7fffffff)));
  }
  static CNNX_INLINE reg neg(reg a) {
    return _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(a), _mm512_set1_epi32(int(0x80000000u))));
  }
  static CNNX_INLINE reg copysign(reg mag, reg sgn) {
    const __m512i sign = _mm512_set1_epi32(int(0x80000000u));
    return _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(abs(mag)),
                                               _mm512_and_si512(_mm512_castps_si512(sgn), sign)));
  }
  static CNNX_INLINE reg round(reg a) { return _mm512_roundscale_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  // 2^n from the exponent field: n is a whole number in [-126, 127], so the conversion is exact.
  static CNNX_INLINE reg pow2i(reg n) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23));
  }
  static CNNX_INLINE reg load_partial(const float* p, int n) {
    return _mm512_maskz_loadu_ps(static_cast<__mmask16>((1u << n) - 1), p);
  }
  static CNNX_INLINE void store_partial(float* p, reg v, int n) {
    _mm512_mask_storeu_ps(p, static_cast<__mmask16>((1u << n) - 1), v);
  }
  static CNNX_INLINE reg load_lanes(const float* p, std::uint32_t bits) {
    return _mm512_maskz_loadu_ps(static_cast<__mmask16>(bits), p);
  }
  static CNNX_INLINE void store_lanes(float* p, reg v, std::uint32_t bits) {
    _mm512_mask_storeu_ps(p, static_cast<__mmask16>(bits), v);
  }
  static CNNX_INLINE reg gather_lanes(const float* p, const std::int32_t* idx, std::uint32_t bits,
                                      reg fill = _mm512_setzero_ps()) {
    return _mm512_mask_i32gather_ps(fill, static_cast<__mmask16>(bits), _mm512_loadu_si512(idx), p, 4);
  }
  // dst[l] = base + l * step + int64(off[l]) for whole-number lanes 0 <= off < 2^31.
  static CNNX_INLINE void store_index(std::int64_t* dst, reg off, std::int64_t base, std::int64_t step) {
    const __m512i o = _mm512_cvttps_epi32(off);
    const __m512i b = _mm512_setr_epi64(base, base + step, base + 2 * step, base + 3 * step, base + 4 * step,
                                        base + 5 * step, base + 6 * step, base + 7 * step);
    const __m512i b8 = _mm512_add_epi64(b, _mm512_set1_epi64(8 * step));
    _mm512_storeu_si512(dst, _mm512_add_epi64(b, _mm512_cvtepi32_epi64(_mm512_maskz_extracti64x4_epi64(0xf, o, 0))));
    _mm512_storeu_si512(dst + 8,
                        _mm512_add_epi64(b8, _mm512_cvtepi32_epi64(_mm512_maskz_extracti64x4_epi64(0xf, o, 1))));
  }
  // Stride 2: two loads (the second masked to 15 lanes, so nothing past p[30] is touched) and one
  // cross-register permute keeping the even elements.
  static CNNX_INLINE reg load_strided(const float* p, std::int64_t stride) {
    if (stride == 1) return load(p);
    if (stride == 2) {
      const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
      return _mm512_permutex2var_ps(load(p), even, _mm512_maskz_loadu_ps(0x7fff, p + 16));
    }
    if (stride <= kMaxGatherStride) {
      const __m512i lanes = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
      return _mm512_i32gather_ps(_mm512_mullo_epi32(lanes, _mm512_set1_epi32(int(stride))), p, 4);
    }
    alignas(64) float v[width];
    for (int i = 0; i < width; ++i) v[i] = p[i * stride];
    return _mm512_load_ps(v);
  }
};

template <>
struct Vec<double> {
  using reg = __m512d;
  static constexpr int width = 8;
  static CNNX_INLINE reg zero() { return _mm512_setzero_pd(); }
  static CNNX_INLINE reg set1(double x) { return _mm512_set1_pd(x); }
  static CNNX_INLINE reg load(const double* p) { return _mm512_loadu_pd(p); }
  static CNNX_INLINE void store(double* p, reg v) { _mm512_storeu_pd(p, v); }
  static CNNX_INLINE reg add(reg a, reg b) { return _mm512_add_pd(a, b); }
  static CNNX_INLINE reg mul(reg a, reg b) { return _mm512_mul_pd(a, b); }
  static CNNX_INLINE reg fmadd(reg a, reg b, reg c) { return _mm512_fmadd_pd(a, b, c); }
  static CNNX_INLINE reg sub(reg a, reg b) { return _mm512_sub_pd(a, b); }
  static CNNX_INLINE reg div(reg a, reg b) { return _mm512_div_pd(a, b); }
  static CNNX_INLINE reg sqrt(reg a) { return _mm512_sqrt_pd(a); }
  static CNNX_INLINE reg rsqrt(reg a) { return _mm512_div_pd(set1(1.0), _mm512_sqrt_pd(a)); }
  static CNNX_INLINE double reduce_add(reg a) {
    const __m256d h = _mm256_add_pd(low_half(a), high_half(a));
    const __m128d s = _mm_add_pd(_mm256_castpd256_pd128(h), _mm256_extractf128_pd(h, 1));
    return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
  }
  static CNNX_INLINE void zip(reg a, reg b, reg& lo, reg& hi) {  // as Vec<float>::zip
    lo = _mm512_permutex2var_pd(a, _mm512_setr_epi64(0, 8, 1, 9, 2, 10, 3, 11), b);
    hi = _mm512_permutex2var_pd(a, _mm512_setr_epi64(4, 12, 5, 13, 6, 14, 7, 15), b);
  }
  static CNNX_INLINE void unzip(reg lo, reg hi, reg& even, reg& odd) {  // as Vec<float>::unzip
    even = _mm512_permutex2var_pd(lo, _mm512_setr_epi64(0, 2, 4, 6, 8, 10, 12, 14), hi);
    odd = _mm512_permutex2var_pd(lo, _mm512_setr_epi64(1, 3, 5, 7, 9, 11, 13, 15), hi);
  }
  // unzip_unordered, unzip_order: see simd_avx2.h; here one two-source permute each, so unzip itself.
  static CNNX_INLINE void unzip_unordered(reg lo, reg hi, reg& even, reg& odd) { unzip(lo, hi, even, odd); }
  static CNNX_INLINE reg unzip_order(reg v) { return v; }
  template <int D>
  static CNNX_INLINE reg slide(reg v) {
    static_assert(D > -width && D < width, "slide by less than a vector");
    const __m512i z = _mm512_setzero_si512();
    if constexpr (D > 0) return _mm512_castsi512_pd(_mm512_alignr_epi64(_mm512_castpd_si512(v), z, width - D));
    else if constexpr (D < 0) return _mm512_castsi512_pd(_mm512_alignr_epi64(z, _mm512_castpd_si512(v), -D));
    else return v;
  }
  static CNNX_INLINE reg blend_lanes(reg a, reg b, std::uint32_t bits) {
    return _mm512_mask_blend_pd(static_cast<__mmask8>(bits), a, b);
  }
  using mask = __mmask8;
  static CNNX_INLINE mask gt_or_nan(reg a, reg b) {
    return _mm512_cmp_pd_mask(a, b, _CMP_GT_OQ) | _mm512_cmp_pd_mask(a, a, _CMP_UNORD_Q);
  }
  static CNNX_INLINE reg select(mask m, reg a, reg b) { return _mm512_mask_blend_pd(m, b, a); }
  static CNNX_INLINE bool any(mask m) { return m != 0; }
  static CNNX_INLINE mask lt(reg a, reg b) { return _mm512_cmp_pd_mask(a, b, _CMP_LT_OQ); }
  static CNNX_INLINE mask is_nan(reg a) { return _mm512_cmp_pd_mask(a, a, _CMP_UNORD_Q); }
  static CNNX_INLINE reg abs(reg a) {
    return _mm512_castsi512_pd(_mm512_and_si512(_mm512_castpd_si512(a), _mm512_set1_epi64(0x7fffffffffffffffLL)));
  }
  static CNNX_INLINE reg neg(reg a) {
    return _mm512_castsi512_pd(_mm512_xor_si512(_mm512_castpd_si512(a),
                                                _mm512_set1_epi64(static_cast<long long>(0x8000000000000000ULL))));
  }
  static CNNX_INLINE reg copysign(reg mag, reg sgn) {
    const __m512i sign = _mm512_set1_epi64(static_cast<long long>(0x8000000000000000ULL));
    return _mm512_castsi512_pd(_mm512_or_si512(_mm512_castpd_si512(abs(mag)),
                                               _mm512_and_si512(_mm512_castpd_si512(sgn), sign)));
  }
  static CNNX_INLINE reg round(reg a) { return _mm512_roundscale_pd(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  // 2^n from the exponent field: n is a whole number in [-1022, 1023] (exact as int32, then widened).
  static CNNX_INLINE reg pow2i(reg n) {
    const __m512i e = _mm512_add_epi64(_mm512_cvtepi32_epi64(_mm512_cvtpd_epi32(n)), _mm512_set1_epi64(1023));
    return _mm512_castsi512_pd(_mm512_slli_epi64(e, 52));
  }
  static CNNX_INLINE reg load_partial(const double* p, int n) {
    return _mm512_maskz_loadu_pd(static_cast<__mmask8>((1u << n) - 1), p);
  }
  static CNNX_INLINE void store_partial(double* p, reg v, int n) {
    _mm512_mask_storeu_pd(p, static_cast<__mmask8>((1u << n) - 1), v);
  }
  static CNNX_INLINE reg load_lanes(const double* p, std::uint32_t bits) {
    return _mm512_maskz_loadu_pd(static_cast<__mmask8>(bits), p);
  }
  static CNNX_INLINE void store_lanes(double* p, reg v, std::uint32_t bits) {
    _mm512_mask_storeu_pd(p, static_cast<__mmask8>(bits), v);
  }
  static CNNX_INLINE reg gather_lanes(const double* p, const std::int32_t* idx, std::uint32_t bits,
                                      reg fill = _mm512_setzero_pd()) {
    return _mm512_mask_i32gather_pd(fill, static_cast<__mmask8>(bits),
                                    _mm256_loadu_si256(reinterpret_cast<const __m256i*>(idx)), p, 8);
  }
  static CNNX_INLINE void store_index(std::int64_t* dst, reg off, std::int64_t base, std::int64_t step) {
    const __m512i b = _mm512_setr_epi64(base, base + step, base + 2 * step, base + 3 * step, base + 4 * step,
                                        base + 5 * step, base + 6 * step, base + 7 * step);
    _mm512_storeu_si512(dst, _mm512_add_epi64(b, _mm512_cvttpd_epi64(off)));
  }
  static CNNX_INLINE reg load_strided(const double* p, std::int64_t stride) {
    if (stride == 1) return load(p);
    if (stride == 2) {
      const __m512i even = _mm512_setr_epi64(0, 2, 4, 6, 8, 10, 12, 14);
      return _mm512_permutex2var_pd(load(p), even, _mm512_maskz_loadu_pd(0x7f, p + 8));
    }
    if (stride <= kMaxGatherStride) {
      const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
      return _mm512_i32gather_pd(_mm256_mullo_epi32(lanes, _mm256_set1_epi32(int(stride))), p, 8);
    }
    alignas(64) double v[width];
    for (int i = 0; i < width; ++i) v[i] = p[i * stride];
    return _mm512_load_pd(v);
  }
  // `width` floats from p, widened to double (exact).
  static CNNX_INLINE reg load_widen(const float* p) { return _mm512_cvtps_pd(_mm256_loadu_ps(p)); }
};

// Block transpose for packing: reads `rows` x `cols` floats (both <= `size` = 16; row stride ld; missing rows
// and columns read as zero), and writes column j (j < cols) as the first `width` lanes at
// dst + j * dst_stride. 16x16 in registers: unpack 32-bit, unpack 64-bit, then two 128-bit lane
// shuffles; masked loads/stores keep every access inside the caller's bounds.
template <class T>
struct Transpose {
  static constexpr bool available = false;
};
template <>
struct Transpose<float> {
  static constexpr bool available = true;
  static constexpr int size = 16;
  static inline void block(const float* src, std::int64_t ld, int rows, int cols, float* dst,
                           std::int64_t dst_stride, int width) {
    const __mmask16 load_mask = static_cast<__mmask16>((1u << cols) - 1);
    const __mmask16 store_mask = static_cast<__mmask16>((1u << width) - 1);
    __m512 r[16], t[16], u[16];
    for (int i = 0; i < 16; ++i)
      r[i] = i < rows ? _mm512_maskz_loadu_ps(load_mask, src + i * ld) : _mm512_setzero_ps();
    for (int i = 0; i < 8; ++i) {
      t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
      t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 4; ++i) {
      const __m512d a = _mm512_castps_pd(t[4 * i]), b = _mm512_castps_pd(t[4 * i + 1]);
      const __m512d c = _mm512_castps_pd(t[4 * i + 2]), d = _mm512_castps_pd(t[4 * i + 3]);
      u[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
      u[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
      u[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
      u[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
    }
    for (int i = 0; i < 4; ++i) {
      t[i] = _mm512_shuffle_f32x4(u[i], u[4 + i], 0x88);
      t[4 + i] = _mm512_shuffle_f32x4(u[i], u[4 + i], 0xdd);
      t[8 + i] = _mm512_shuffle_f32x4(u[8 + i], u[12 + i], 0x88);
      t[12 + i] = _mm512_shuffle_f32x4(u[8 + i], u[12 + i], 0xdd);
    }
    for (int i = 0; i < 4; ++i) {
      r[i] = _mm512_shuffle_f32x4(t[i], t[8 + i], 0x88);
      r[4 + i] = _mm512_shuffle_f32x4(t[4 + i], t[12 + i], 0x88);
      r[8 + i] = _mm512_shuffle_f32x4(t[i], t[8 + i], 0xdd);
      r[12 + i] = _mm512_shuffle_f32x4(t[4 + i], t[12 + i], 0xdd);
    }
    for (int j = 0; j < cols; ++j) _mm512_mask_storeu_ps(dst + j * dst_stride, store_mask, r[j]);
  }
};

// Direct convolution tiles (conv_direct.cpp): up to R output pixels x NV vectors of output channels,
// 14 x 2 = 28 accumulators of the 32 zmm registers plus the NV weight vectors (the broadcast input
// value folds into the FMA's memory operand).
template <class T>
struct DirectTile {
  static constexpr int R = 14, NV = 2;
};

// GEMM tiles: 12 x 2 registers = 24 accumulators of the 32 zmm registers, leaving room for the two B
// vectors and the A broadcasts (the shape BLIS uses on Skylake-X). KC x NR of packed B (48 KiB for
// float at KC=384) streams through L1; the MC x KC block of packed A (288 KiB) sits in L2.
template <class T>
struct GemmTile;
template <>
struct GemmTile<float> {
  static constexpr int MR = 14, NV = 2;
  static constexpr std::int64_t KC = 768, MC = 140, NC = 3072;
};
template <>
struct GemmTile<double> {
  static constexpr int MR = 12, NV = 2;
  static constexpr std::int64_t KC = 256, MC = 144, NC = 2048;
};

}  // namespace simd
}  // namespace CNNX_ISA_NS
}  // namespace cnnx
