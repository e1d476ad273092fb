// Reference GEMM: the definition, written plainly. It is the oracle for the fast paths and the
// CNNX_ISA=ref fallback. Each C element sums its k products in order p = 0..k-1; the loop order
// (i, p, j) with a row accumulator keeps that order while reading B row by row, so tests stay fast.
#include <vector>

#include "cnnx/gemm.h"

namespace cnnx {
namespace ref {

template <class T>
void gemm(T* c, const T* a, const T* b, const GemmParams& p) {
  const T alpha = static_cast<T>(p.alpha), beta = static_cast<T>(p.beta);
  const bool skip_product = p.k == 0 || alpha == T(0);
  std::vector<T> acc(static_cast<std::size_t>(p.n));
  // C's element (i, j): row-major, or transposed (trans_c).
  const std::int64_t row_step = p.trans_c ? 1 : p.ldc, col_step = p.trans_c ? p.ldc : 1;
  for (std::int64_t i = 0; i < p.m; ++i) {
    T* ci = c + i * row_step;
    if (skip_product) {
      for (std::int64_t j = 0; j < p.n; ++j) ci[j * col_step] = beta == T(0) ? T(0) : beta * ci[j * col_step];
      continue;
    }
    for (std::int64_t j = 0; j < p.n; ++j) acc[j] = T(0);
    for (std::int64_t q = 0; q < p.k; ++q) {
      const T aiq = p.trans_a ? a[q * p.lda + i] : a[i * p.lda + q];
      if (p.trans_b) {
        for (std::int64_t j = 0; j < p.n; ++j) acc[j] += aiq * b[j * p.ldb + q];
      } else {
        const T* bq = b + q * p.ldb;
        for (std::int64_t j = 0; j < p.n; ++j) acc[j] += aiq * bq[j];
      }
    }
    for (std::int64_t j = 0; j < p.n; ++j) {
      T& cij = ci[j * col_step];
      cij = beta == T(0) ? alpha * acc[j] : alpha * acc[j] + beta * cij;
    }
  }
}

template void gemm<float>(float*, const float*, const float*, const GemmParams&);
template void gemm<double>(double*, const double*, const double*, const GemmParams&);

}  // namespace ref
}  // namespace cnnx
