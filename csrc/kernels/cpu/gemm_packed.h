// The GEMM's packed-operand interface (gemm.cpp), for kernels in the same ISA build that pack an
// operand once and multiply it many times (conv.cpp, conv_winograd.cpp). Included in per-ISA
// translation units, so it lives in the ISA's namespace.
#pragma once

#include <cstdint>

#include "cnnx/gemm.h"

namespace cnnx {
namespace CNNX_ISA_NS {

void gemm_f32(float*, const float*, const float*, const GemmParams&);
void gemm_f64(double*, const double*, const double*, const GemmParams&);
// A packed once for many GEMMs (gemm.cpp, same ISA build): sizes, packing of MR-row panels
// [q0, q1), and the GEMM that reads it (p.lda and p.trans_a unused).
std::int64_t gemm_packed_a_size(std::int64_t m, std::int64_t k, float);
std::int64_t gemm_packed_a_size(std::int64_t m, std::int64_t k, double);
// Whether gemm_f32 / gemm_f64 read a row-major, untransposed B of an m x k by k x n product (rows
// ldb apart) in place; otherwise they copy it into panels, so a caller building B may as well build
// it packed (gemm_pack_b_row).
bool gemm_reads_b_in_place(std::int64_t m, std::int64_t k, std::int64_t ldb, float);
bool gemm_reads_b_in_place(std::int64_t m, std::int64_t k, std::int64_t ldb, double);
std::int64_t gemm_a_panels(std::int64_t m, float);
std::int64_t gemm_a_panels(std::int64_t m, double);
// The depth of the GEMM's k blocks for a reduction of length k: it adds their products into C one
// after another, so a caller that sums the blocks' products itself, in that order, gets its bits.
std::int64_t gemm_k_block(std::int64_t k, float);
std::int64_t gemm_k_block(std::int64_t k, double);
void gemm_pack_a(float*, const float*, std::int64_t lda, bool trans, std::int64_t m, std::int64_t k, std::int64_t q0,
                 std::int64_t q1);
void gemm_pack_a(double*, const double*, std::int64_t lda, bool trans, std::int64_t m, std::int64_t k,
                 std::int64_t q0, std::int64_t q1);
// B likewise: NR-column panels [q0, q1) of op(B) (k x n) packed from a matrix (gemm_pack_b), or the
// layout built a row at a time (gemm_pack_b_row).
std::int64_t gemm_packed_b_size(std::int64_t k, std::int64_t n, float);
std::int64_t gemm_packed_b_size(std::int64_t k, std::int64_t n, double);
std::int64_t gemm_b_panels(std::int64_t n, float);
std::int64_t gemm_b_panels(std::int64_t n, double);
void gemm_pack_b(float* dst, const float* b, std::int64_t ldb, bool trans, std::int64_t k, std::int64_t n,
                 std::int64_t q0, std::int64_t q1);
void gemm_pack_b(double* dst, const double* b, std::int64_t ldb, bool trans, std::int64_t k, std::int64_t n,
                 std::int64_t q0, std::int64_t q1);
void gemm_pack_b_row(float* dst, const float* row, std::int64_t k, std::int64_t n, std::int64_t r);
void gemm_pack_b_row(double* dst, const double* row, std::int64_t k, std::int64_t n, std::int64_t r);
// Whether an m x n product whose operands are packed once for many GEMMs runs faster as its
// transpose (C^T = op(B)^T op(A)^T, stored with trans_c) because the register tiles fit n x m
// better: a pointwise convolution then packs its weights as B and multiplies pixels x channels. (A
// GEMM on its own makes the same choice, for a larger gain: see gemm.cpp, computes_transposed.)
bool gemm_computes_transposed(std::int64_t m, std::int64_t n, float);
bool gemm_computes_transposed(std::int64_t m, std::int64_t n, double);
// a_packed / b_packed: null to read a / b as gemm_f32 does. row_bias: null, or a value per stored
// row of C (row i; column j with trans_c) added after alpha and beta (a convolution's bias, fused).
void gemm_prepacked(float* c, const float* a, const float* a_packed, const float* b, const float* b_packed,
                    const GemmParams& p, const float* row_bias = nullptr);
void gemm_prepacked(double* c, const double* a, const double* a_packed, const double* b, const double* b_packed,
                    const GemmParams& p, const double* row_bias = nullptr);

}  // namespace CNNX_ISA_NS
}  // namespace cnnx
