// AVX2 + FMA: 16 ymm registers, 8 floats / 4 doubles per register.
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
  using reg = __m256;
  static constexpr int width = 8;
  static CNNX_INLINE reg zero() { return _mm256_setzero_ps(); }
  static CNNX_INLINE reg set1(float x) { return _mm256_set1_ps(x); }
  static CNNX_INLINE reg load(const float* p) { return _mm256_loadu_ps(p); }
  static CNNX_INLINE void store(float* p, reg v) { _mm256_storeu_ps(p, v); }
  static CNNX_INLINE reg add(reg a, reg b) { return _mm256_add_ps(a, b); }
  static CNNX_INLINE reg mul(reg a, reg b) { return _mm256_mul_ps(a, b); }
  static CNNX_INLINE reg fmadd(reg a, reg b, reg c) { return _mm256_fmadd_ps(a, b, c); }
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
};

// No vector transpose here: packing uses its scalar loops.
template <class T>
struct Transpose {
  static constexpr bool available = false;
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
