// AVX2 + FMA: 16 ymm registers, 8 floats / 4 doubles per register.
#pragma once
#include <immintrin.h>

#include <cstdint>

namespace cnnx {
namespace CNNX_ISA_NS {
namespace simd {

// Vector registers: the kernels' choices between algorithms weigh how many accumulators fit.
constexpr int kVectorRegisters = 16;

// Gathers take 32-bit lane offsets: strides beyond this fall back to scalar loads.
constexpr std::int64_t kMaxGatherStride = 1 << 27;

template <class T>
struct Vec;

template <>
struct Vec<float> {
  using reg = __m256;
  static constexpr int width = 8;
  static CNNX_INLINE reg zero() { return _mm256_setzero_ps(); }
  static CNNX_INLINE reg set1(float x) { return _mm256_set1_ps(x); }
  static CNNX_INLINE reg load(const float* p) { return _mm256_loadu_ps(p); }
  static CNNX_INLINE void store(float* p, reg v) { _mm256_storeu_ps(p, v); }
  static CNNX_INLINE reg add(reg a, reg b) { return _mm256_add_ps(a, b); }
  static CNNX_INLINE reg mul(reg a, reg b) { return _mm256_mul_ps(a, b); }
  static CNNX_INLINE reg fmadd(reg a, reg b, reg c) { return _mm256_fmadd_ps(a, b, c); }
  static CNNX_INLINE reg sub(reg a, reg b) { return _mm256_sub_ps(a, b); }
  static CNNX_INLINE reg div(reg a, reg b) { return _mm256_div_ps(a, b); }
  static CNNX_INLINE reg sqrt(reg a) { return _mm256_sqrt_ps(a); }
  // 1/sqrt(a) within a few ulp (not correctly rounded): the 12-bit estimate and one Newton step.
  static CNNX_INLINE reg rsqrt(reg a) {
    const reg r = _mm256_rsqrt_ps(a);
    const reg h = _mm256_mul_ps(_mm256_mul_ps(a, r), r);
    return _mm256_mul_ps(r, _mm256_fnmadd_ps(h, set1(0.5f), set1(1.5f)));
  }
  static CNNX_INLINE float reduce_add(reg a) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
  }
  // lo, hi = a0 b0 a1 b1 ... (the lanes of a and b interleaved): lo the first width, hi the rest.
  static CNNX_INLINE void zip(reg a, reg b, reg& lo, reg& hi) {
    const __m256 l = _mm256_unpacklo_ps(a, b), h = _mm256_unpackhi_ps(a, b);  // within 128-bit halves
    lo = _mm256_permute2f128_ps(l, h, 0x20);
    hi = _mm256_permute2f128_ps(l, h, 0x31);
  }
  // The inverse of zip: even = lo0 lo2 ... hi0 hi2 ..., odd = lo1 lo3 ... hi1 hi3 ...
  static CNNX_INLINE void unzip(reg lo, reg hi, reg& even, reg& odd) {
    unzip_unordered(lo, hi, even, odd);
    even = unzip_order(even), odd = unzip_order(odd);
  }
  // unzip's lanes in an order of the ISA's choosing, the same on every call, which unzip_order puts
  // back (and, its own inverse, puts a vector into): a kernel that only adds and multiplies unzipped
  // vectors lane by lane orders its result once instead of every unzip (here a lane-crossing permute
  // each). AVX2: within 128-bit halves, so unzip's lanes 0 1 4 5 2 3 6 7, and unzip_order swaps the
  // halves' middle 64-bit pieces.
  static CNNX_INLINE void unzip_unordered(reg lo, reg hi, reg& even, reg& odd) {
    even = _mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(2, 0, 2, 0));
    odd = _mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(3, 1, 3, 1));
  }
  static CNNX_INLINE reg unzip_order(reg v) { return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(v), 0xd8)); }
  template <int D>
  static CNNX_INLINE reg slide(reg v) {
    static_assert(D > -width && D < width, "slide by less than a vector");
    if constexpr (D == 0) {
      return v;
    } else {
      const __m256i idx = _mm256_setr_epi32((0 - D) & 7, (1 - D) & 7, (2 - D) & 7, (3 - D) & 7, (4 - D) & 7, (5 - D) & 7,
                                            (6 - D) & 7, (7 - D) & 7);
      constexpr int outside = D > 0 ? (1 << D) - 1 : 0xff & ~((1 << (8 + D)) - 1);  // lanes that take zero
      return _mm256_blend_ps(_mm256_permutevar8x32_ps(v, idx), _mm256_setzero_ps(), outside);
    }
  }
  static CNNX_INLINE reg blend_lanes(reg a, reg b, std::uint32_t bits) {
    return _mm256_blendv_ps(a, b, _mm256_castsi256_ps(lanes_on(bits)));
  }
  using mask = __m256;  // all-ones lanes
  static CNNX_INLINE mask gt_or_nan(reg a, reg b) {
    return _mm256_or_ps(_mm256_cmp_ps(a, b, _CMP_GT_OQ), _mm256_cmp_ps(a, a, _CMP_UNORD_Q));
  }
  static CNNX_INLINE reg select(mask m, reg a, reg b) { return _mm256_blendv_ps(b, a, m); }
  static CNNX_INLINE bool any(mask m) { return _mm256_movemask_ps(m) != 0; }
  static CNNX_INLINE mask lt(reg a, reg b) { return _mm256_cmp_ps(a, b, _CMP_LT_OQ); }
  static CNNX_INLINE mask is_nan(reg a) { return _mm256_cmp_ps(a, a, _CMP_UNORD_Q); }
  static CNNX_INLINE reg abs(reg a) { return _mm256_and_ps(a, _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff))); }
  static CNNX_INLINE reg neg(reg a) { return _mm256_xor_ps(a, _mm256_castsi256_ps(_mm256_set1_epi32(int(0x80000000u)))); }
  static CNNX_INLINE reg copysign(reg mag, reg sgn) {
    const reg sign = _mm256_castsi256_ps(_mm256_set1_epi32(int(0x80000000u)));
    return _mm256_or_ps(abs(mag), _mm256_and_ps(sgn, sign));
  }
  static CNNX_INLINE reg round(reg a) { return _mm256_round_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  // 2^n from the exponent field: n is a whole number in [-126, 127], so the conversion is exact.
  static CNNX_INLINE reg pow2i(reg n) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23));
  }
  static CNNX_INLINE reg load_partial(const float* p, int n) {
    const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_maskload_ps(p, _mm256_cmpgt_epi32(_mm256_set1_epi32(n), lanes));
  }
  static CNNX_INLINE void store_partial(float* p, reg v, int n) {
    const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    _mm256_maskstore_ps(p, _mm256_cmpgt_epi32(_mm256_set1_epi32(n), lanes), v);
  }
  static CNNX_INLINE __m256i lanes_on(std::uint32_t bits) {
    const __m256i bit = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
    return _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_set1_epi32(int(bits)), bit), bit);
  }
  static CNNX_INLINE reg load_lanes(const float* p, std::uint32_t bits) { return _mm256_maskload_ps(p, lanes_on(bits)); }
  // All lanes on takes a plain store: a masked store is microcoded on AMD's Zen 2/3 (about ten times
  // a plain one; the depthwise strip kernels spent a quarter of their time just after them). Kernels
  // pass all lanes on most rows. (Masked loads are cheap there; a branch on them cost the weight
  // gradient's strips 10-30%.)
  static CNNX_INLINE void store_lanes(float* p, reg v, std::uint32_t bits) {
    if (bits == 0xffu) _mm256_storeu_ps(p, v);
    else _mm256_maskstore_ps(p, lanes_on(bits), v);
  }
  static CNNX_INLINE reg gather_lanes(const float* p, const std::int32_t* idx, std::uint32_t bits,
                                      reg fill = _mm256_setzero_ps()) {
    const __m256i bit = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
    const __m256i on = _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_set1_epi32(int(bits)), bit), bit);
    return _mm256_mask_i32gather_ps(fill, p, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(idx)),
                                    _mm256_castsi256_ps(on), 4);
  }
  // dst[l] = base + l * step + int64(off[l]) for whole-number lanes 0 <= off < 2^31.
  static CNNX_INLINE void store_index(std::int64_t* dst, reg off, std::int64_t base, std::int64_t step) {
    const __m256i o = _mm256_cvttps_epi32(off);
    const __m256i b = _mm256_setr_epi64x(base, base + step, base + 2 * step, base + 3 * step);
    const __m256i b4 = _mm256_add_epi64(b, _mm256_set1_epi64x(4 * step));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst),
                        _mm256_add_epi64(b, _mm256_cvtepi32_epi64(_mm256_castsi256_si128(o))));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + 4),
                        _mm256_add_epi64(b4, _mm256_cvtepi32_epi64(_mm256_extracti128_si256(o, 1))));
  }
  // Stride 2: two loads (the second masked to 7 lanes, so nothing past p[14] is touched), an
  // in-lane shuffle of the even elements and a 64-bit cross-lane permute to put them in order.
  static CNNX_INLINE reg load_strided(const float* p, std::int64_t stride) {
    if (stride == 1) return load(p);
    if (stride == 2) {
      const __m256i seven = _mm256_setr_epi32(-1, -1, -1, -1, -1, -1, -1, 0);
      const __m256 even = _mm256_shuffle_ps(load(p), _mm256_maskload_ps(p + 8, seven), _MM_SHUFFLE(2, 0, 2, 0));
      return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(even), _MM_SHUFFLE(3, 1, 2, 0)));
    }
    if (stride <= kMaxGatherStride) {
      const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
      return _mm256_i32gather_ps(p, _mm256_mullo_epi32(lanes, _mm256_set1_epi32(int(stride))), 4);
    }
    alignas(32) float v[width];
    for (int i = 0; i < width; ++i) v[i] = p[i * stride];
    return _mm256_load_ps(v);
  }
};

template <>
struct Vec<double> {
  using reg = __m256d;
  static constexpr int width = 4;
  static CNNX_INLINE reg zero() { return _mm256_setzero_pd(); }
  static CNNX_INLINE reg set1(double x) { return _mm256_set1_pd(x); }
  static CNNX_INLINE reg load(const double* p) { return _mm256_loadu_pd(p); }
  static CNNX_INLINE void store(double* p, reg v) { _mm256_storeu_pd(p, v); }
  static CNNX_INLINE reg add(reg a, reg b) { return _mm256_add_pd(a, b); }
  static CNNX_INLINE reg mul(reg a, reg b) { return _mm256_mul_pd(a, b); }
  static CNNX_INLINE reg fmadd(reg a, reg b, reg c) { return _mm256_fmadd_pd(a, b, c); }
  static CNNX_INLINE reg sub(reg a, reg b) { return _mm256_sub_pd(a, b); }
  static CNNX_INLINE reg div(reg a, reg b) { return _mm256_div_pd(a, b); }
  static CNNX_INLINE reg sqrt(reg a) { return _mm256_sqrt_pd(a); }
  static CNNX_INLINE reg rsqrt(reg a) { return _mm256_div_pd(set1(1.0), _mm256_sqrt_pd(a)); }
  static CNNX_INLINE double reduce_add(reg a) {
    const __m128d s = _mm_add_pd(_mm256_castpd256_pd128(a), _mm256_extractf128_pd(a, 1));
    return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
  }
  static CNNX_INLINE void zip(reg a, reg b, reg& lo, reg& hi) {  // as Vec<float>::zip
    const __m256d l = _mm256_unpacklo_pd(a, b), h = _mm256_unpackhi_pd(a, b);
    lo = _mm256_permute2f128_pd(l, h, 0x20);
    hi = _mm256_permute2f128_pd(l, h, 0x31);
  }
  static CNNX_INLINE void unzip(reg lo, reg hi, reg& even, reg& odd) {  // as Vec<float>::unzip
    unzip_unordered(lo, hi, even, odd);
    even = unzip_order(even), odd = unzip_order(odd);
  }
  static CNNX_INLINE void unzip_unordered(reg lo, reg hi, reg& even, reg& odd) {  // lanes 0 2 1 3 of unzip's
    even = _mm256_unpacklo_pd(lo, hi);
    odd = _mm256_unpackhi_pd(lo, hi);
  }
  static CNNX_INLINE reg unzip_order(reg v) { return _mm256_permute4x64_pd(v, 0xd8); }
  template <int D>
  static CNNX_INLINE reg slide(reg v) {
    static_assert(D > -width && D < width, "slide by less than a vector");
    if constexpr (D == 0) {
      return v;
    } else {
      constexpr int imm = ((0 - D) & 3) | ((1 - D) & 3) << 2 | ((2 - D) & 3) << 4 | ((3 - D) & 3) << 6;
      constexpr int outside = D > 0 ? (1 << D) - 1 : 0xf & ~((1 << (4 + D)) - 1);
      return _mm256_blend_pd(_mm256_permute4x64_pd(v, imm), _mm256_setzero_pd(), outside);
    }
  }
  static CNNX_INLINE reg blend_lanes(reg a, reg b, std::uint32_t bits) {
    return _mm256_blendv_pd(a, b, _mm256_castsi256_pd(lanes_on(bits)));
  }
  using mask = __m256d;
  static CNNX_INLINE mask gt_or_nan(reg a, reg b) {
    return _mm256_or_pd(_mm256_cmp_pd(a, b, _CMP_GT_OQ), _mm256_cmp_pd(a, a, _CMP_UNORD_Q));
  }
  static CNNX_INLINE reg select(mask m, reg a, reg b) { return _mm256_blendv_pd(b, a, m); }
  static CNNX_INLINE bool any(mask m) { return _mm256_movemask_pd(m) != 0; }
  static CNNX_INLINE mask lt(reg a, reg b) { return _mm256_cmp_pd(a, b, _CMP_LT_OQ); }
  static CNNX_INLINE mask is_nan(reg a) { return _mm256_cmp_pd(a, a, _CMP_UNORD_Q); }
  static CNNX_INLINE reg abs(reg a) {
    return _mm256_and_pd(a, _mm256_castsi256_pd(_mm256_set1_epi64x(0x7fffffffffffffffLL)));
  }
  static CNNX_INLINE reg neg(reg a) {
    return _mm256_xor_pd(a, _mm256_castsi256_pd(_mm256_set1_epi64x(static_cast<long long>(0x8000000000000000ULL))));
  }
  static CNNX_INLINE reg copysign(reg mag, reg sgn) {
    const reg sign = _mm256_castsi256_pd(_mm256_set1_epi64x(static_cast<long long>(0x8000000000000000ULL)));
    return _mm256_or_pd(abs(mag), _mm256_and_pd(sgn, sign));
  }
  static CNNX_INLINE reg round(reg a) { return _mm256_round_pd(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  // 2^n from the exponent field: n is a whole number in [-1022, 1023] (exact as int32, then widened).
  static CNNX_INLINE reg pow2i(reg n) {
    const __m256i e = _mm256_add_epi64(_mm256_cvtepi32_epi64(_mm256_cvtpd_epi32(n)), _mm256_set1_epi64x(1023));
    return _mm256_castsi256_pd(_mm256_slli_epi64(e, 52));
  }
  static CNNX_INLINE reg load_partial(const double* p, int n) {
    const __m256i lanes = _mm256_setr_epi64x(0, 1, 2, 3);
    return _mm256_maskload_pd(p, _mm256_cmpgt_epi64(_mm256_set1_epi64x(n), lanes));
  }
  static CNNX_INLINE void store_partial(double* p, reg v, int n) {
    const __m256i lanes = _mm256_setr_epi64x(0, 1, 2, 3);
    _mm256_maskstore_pd(p, _mm256_cmpgt_epi64(_mm256_set1_epi64x(n), lanes), v);
  }
  static CNNX_INLINE __m256i lanes_on(std::uint32_t bits) {
    const __m256i bit = _mm256_setr_epi64x(1, 2, 4, 8);
    return _mm256_cmpeq_epi64(_mm256_and_si256(_mm256_set1_epi64x(bits), bit), bit);
  }
  static CNNX_INLINE reg load_lanes(const double* p, std::uint32_t bits) { return _mm256_maskload_pd(p, lanes_on(bits)); }
  static CNNX_INLINE void store_lanes(double* p, reg v, std::uint32_t bits) {  // see the float version
    if (bits == 0xfu) _mm256_storeu_pd(p, v);
    else _mm256_maskstore_pd(p, lanes_on(bits), v);
  }
  static CNNX_INLINE reg gather_lanes(const double* p, const std::int32_t* idx, std::uint32_t bits,
                                      reg fill = _mm256_setzero_pd()) {
    const __m256i bit = _mm256_setr_epi64x(1, 2, 4, 8);
    const __m256i on = _mm256_cmpeq_epi64(_mm256_and_si256(_mm256_set1_epi64x(bits), bit), bit);
    return _mm256_mask_i32gather_pd(fill, p, _mm_loadu_si128(reinterpret_cast<const __m128i*>(idx)),
                                    _mm256_castsi256_pd(on), 8);
  }
  static CNNX_INLINE void store_index(std::int64_t* dst, reg off, std::int64_t base, std::int64_t step) {
    const __m256i b = _mm256_setr_epi64x(base, base + step, base + 2 * step, base + 3 * step);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst), _mm256_add_epi64(b, _mm256_cvtepi32_epi64(_mm256_cvttpd_epi32(off))));
  }
  static CNNX_INLINE reg load_strided(const double* p, std::int64_t stride) {
    if (stride == 1) return load(p);
    if (stride == 2) {
      const __m256i three = _mm256_setr_epi64x(-1, -1, -1, 0);
      const __m256d mixed = _mm256_unpacklo_pd(load(p), _mm256_maskload_pd(p + 4, three));  // 0 4 2 6
      return _mm256_permute4x64_pd(mixed, _MM_SHUFFLE(3, 1, 2, 0));
    }
    if (stride <= kMaxGatherStride) {
      const __m128i lanes = _mm_setr_epi32(0, 1, 2, 3);
      return _mm256_i32gather_pd(p, _mm_mullo_epi32(lanes, _mm_set1_epi32(int(stride))), 8);
    }
    return _mm256_setr_pd(p[0], p[stride], p[2 * stride], p[3 * stride]);
  }
  static CNNX_INLINE reg load_widen(const float* p) { return _mm256_cvtps_pd(_mm_loadu_ps(p)); }
};

// Block transpose (the contract of simd_avx512.h's, on `size` = 8 x 8 blocks): reads `rows` x `cols`
// floats (both <= 8; row stride ld; missing rows and columns read as zero), and writes column j
// (j < cols) as the first `width` lanes at dst + j * dst_stride. Unpack 32-bit, shuffle 64-bit, then
// swap 128-bit halves. Loads of short rows are masked (cheap on loads); short outputs go out as
// 4-, 2- and 1-lane plain stores, since masked stores (vmaskmovps) are slow on AMD's cores.
template <class T>
struct Transpose {
  static constexpr bool available = false;
};
template <>
struct Transpose<float> {
  static constexpr bool available = true;
  static constexpr int size = 8;
  static inline void block(const float* src, std::int64_t ld, int rows, int cols, float* dst,
                           std::int64_t dst_stride, int width) {
    __m256 r[8], t[8];
    for (int i = 0; i < 8; ++i)
      r[i] = i >= rows ? _mm256_setzero_ps() : cols == 8 ? _mm256_loadu_ps(src + i * ld)
                                                          : Vec<float>::load_partial(src + i * ld, cols);
    for (int i = 0; i < 4; ++i) {
      t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);      // a0 b0 a1 b1 | a4 b4 a5 b5
      t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);  // a2 b2 a3 b3 | a6 b6 a7 b7
    }
    for (int i = 0; i < 2; ++i) {  // rows 4i..4i+3, columns 0/1, 2/3 (and +4 in the high half)
      const __m256 a = t[4 * i], b = t[4 * i + 1], c = t[4 * i + 2], d = t[4 * i + 3];
      r[4 * i] = _mm256_shuffle_ps(a, c, 0x44);
      r[4 * i + 1] = _mm256_shuffle_ps(a, c, 0xee);
      r[4 * i + 2] = _mm256_shuffle_ps(b, d, 0x44);
      r[4 * i + 3] = _mm256_shuffle_ps(b, d, 0xee);
    }
    for (int j = 0; j < 4; ++j) {  // column j: rows 0-3 from r[j]'s low half, 4-7 from r[4 + j]'s
      t[j] = _mm256_permute2f128_ps(r[j], r[4 + j], 0x20);
      t[4 + j] = _mm256_permute2f128_ps(r[j], r[4 + j], 0x31);
    }
    for (int j = 0; j < cols; ++j) {
      float* d = dst + j * dst_stride;
      if (width == 8) {
        _mm256_storeu_ps(d, t[j]);
        continue;
      }
      __m128 v = _mm256_castps256_ps128(t[j]);
      int at = 0;
      if (width & 4) {
        _mm_storeu_ps(d, v);
        v = _mm256_extractf128_ps(t[j], 1);
        at = 4;
      }
      if (width & 2) {
        _mm_storel_pi(reinterpret_cast<__m64*>(d + at), v);
        v = _mm_movehl_ps(v, v);
        at += 2;
      }
      if (width & 1) _mm_store_ss(d + at, v);
    }
  }
};

// Direct convolution tiles (conv_direct.cpp): 6 pixels x 2 vectors = 12 accumulators of 16 ymm,
// plus two weight vectors and a broadcast.
template <class T>
struct DirectTile {
  static constexpr int R = 6, NV = 2;
};

// GEMM tiles: 6 x 2 registers = 12 accumulators of 16 ymm (the classic Haswell 6x16 shape).
template <class T>
struct GemmTile;
template <>
struct GemmTile<float> {
  static constexpr int MR = 6, NV = 2;
  static constexpr std::int64_t KC = 256, MC = 120, NC = 3072;
};
template <>
struct GemmTile<double> {
  static constexpr int MR = 6, NV = 2;
  static constexpr std::int64_t KC = 256, MC = 96, NC = 2048;
};

}  // namespace simd
}  // namespace CNNX_ISA_NS
}  // namespace cnnx
