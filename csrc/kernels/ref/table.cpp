// The reference kernel table (CNNX_ISA=ref): one line per op and dtype.
#include "cnnx/dispatch.h"

namespace cnnx {
namespace ref {

const KernelTable& kernel_table() {
  static const KernelTable table = {
      "ref",
      &ref::gemm<float>,
      &ref::gemm<double>,
      &ref::conv2d_forward<float>,
      &ref::conv2d_forward<double>,
      &ref::conv2d_backward_input<float>,
      &ref::conv2d_backward_input<double>,
      &ref::conv2d_backward_weight<float>,
      &ref::conv2d_backward_weight<double>,
  };
  return table;
}

}  // namespace ref
}  // namespace cnnx
