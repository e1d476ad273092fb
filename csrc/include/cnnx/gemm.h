// GEMM: C = alpha * op(A) @ op(B) + beta * C, row-major storage.
//
// Contract (every implementation: ref, generic, avx2, avx512):
//   op(A) is m x k: A is stored m x k (row stride lda >= k), or with trans_a, k x m (lda >= m).
//   op(B) is k x n: B is stored k x n (ldb >= n), or with trans_b, n x k (ldb >= k).
//   C is m x n with row stride ldc >= n; it must not overlap A or B. With trans_c, C is stored
//   transposed: element (i, j) at c[j * ldc + i] (ldc >= m), so a caller whose output is the
//   transpose of the natural product (a pointwise convolution computed as pixels x channels) needs
//   no copy.
//   beta == 0: C is written without being read (NaN or garbage in C does not propagate).
//   k == 0 or alpha == 0: C = beta * C and A, B are not read (BLAS semantics).
//   Deterministic: each C element sums its k products in an order fixed by the blocking constants,
//   never by the thread count, so results are bitwise identical for any number of threads.
#pragma once

#include <cstdint>

namespace cnnx {

struct GemmParams {
  std::int64_t m = 0, n = 0, k = 0;
  bool trans_a = false, trans_b = false, trans_c = false;
  std::int64_t lda = 0, ldb = 0, ldc = 0;
  double alpha = 1.0, beta = 0.0;
  int threads = 0;  // at most this many threads; 0 = cnnx::get_num_threads() (kernels calling GEMM
                    // from inside their own parallel region pass 1)
};

// The same product as its transpose, C^T = op(B)^T op(A)^T, for a call with the operands swapped
// (gemm(c, b, a, transposed_product(p))): m and n, the operands' transposes and strides exchanged,
// and C stored the other way (trans_c flipped). Every element sums the same products in the same order.
inline GemmParams transposed_product(const GemmParams& p) {
  GemmParams q = p;
  q.m = p.n, q.n = p.m;
  q.trans_a = !p.trans_b, q.lda = p.ldb;
  q.trans_b = !p.trans_a, q.ldb = p.lda;
  q.trans_c = !p.trans_c;
  return q;
}

// Dispatching entry point: runs the implementation of the active ISA (see dispatch.h).
template <class T>
void gemm(T* c, const T* a, const T* b, const GemmParams& p);

namespace ref {
// Naive triple loop: the oracle the fast paths are tested against, and the CNNX_ISA=ref path.
template <class T>
void gemm(T* c, const T* a, const T* b, const GemmParams& p);
}  // namespace ref

}  // namespace cnnx
