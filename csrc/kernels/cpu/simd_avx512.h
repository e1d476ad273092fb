// AVX-512F: 32 zmm registers, 16 floats / 8 doubles per register.
#pragma once
#include <immintrin.h>

#include <cstdint>

namespace cnnx {
namespace CNNX_ISA_NS {
namespace simd {

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
};

// Block transpose for packing: reads `rows` x `cols` floats (both <= 16; row stride ld; missing rows
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
