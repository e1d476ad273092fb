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
