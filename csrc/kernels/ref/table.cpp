// The reference kernel table (CNNX_ISA=ref): one line per op and dtype.
#include "cnnx/dispatch.h"

namespace cnnx {
namespace ref {

const KernelTable& kernel_table() {
  static const KernelTable table = {
      "ref",
      &ref::gemm<float>,
      &ref::gemm<double>,
  };
  return table;
}

}  // namespace ref
}  // namespace cnnx
