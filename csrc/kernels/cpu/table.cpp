// This ISA's kernel table: one line per op and dtype. Compiled once per ISA like its kernels.
#include "cnnx/dispatch.h"

#define CNNX_STR2(x) #x
#define CNNX_STR(x) CNNX_STR2(x)

namespace cnnx {
namespace CNNX_ISA_NS {

void gemm_f32(float*, const float*, const float*, const GemmParams&);
void gemm_f64(double*, const double*, const double*, const GemmParams&);
template <class T>
void conv2d_forward(T*, const T*, const T*, const T*, const Conv2dParams&);
template <class T>
void conv2d_backward_input(T*, const T*, const T*, const Conv2dParams&);
template <class T>
void conv2d_backward_weight(T*, T*, const T*, const T*, const Conv2dParams&);

const KernelTable& kernel_table() {
  static const KernelTable table = {
      CNNX_STR(CNNX_ISA_NS),
      &gemm_f32,
      &gemm_f64,
      &conv2d_forward<float>,
      &conv2d_forward<double>,
      &conv2d_backward_input<float>,
      &conv2d_backward_input<double>,
      &conv2d_backward_weight<float>,
      &conv2d_backward_weight<double>,
  };
  return table;
}

}  // namespace CNNX_ISA_NS
}  // namespace cnnx
