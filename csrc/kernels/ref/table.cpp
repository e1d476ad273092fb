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
      &ref::conv2d_forward_fused<float>,
      &ref::conv2d_forward_fused<double>,
      &ref::conv2d_backward_input<float>,
      &ref::conv2d_backward_input<double>,
      &ref::conv2d_backward_weight<float>,
      &ref::conv2d_backward_weight<double>,
      &ref::conv2d_algorithm<float>,
      &ref::conv2d_algorithm<double>,
      &ref::max_pool2d_forward<float>,
      &ref::max_pool2d_forward<double>,
      &ref::max_pool2d_backward<float>,
      &ref::max_pool2d_backward<double>,
      &ref::avg_pool2d_forward<float>,
      &ref::avg_pool2d_forward<double>,
      &ref::avg_pool2d_backward<float>,
      &ref::avg_pool2d_backward<double>,
      &ref::adaptive_avg_pool2d_forward<float>,
      &ref::adaptive_avg_pool2d_forward<double>,
      &ref::adaptive_avg_pool2d_backward<float>,
      &ref::adaptive_avg_pool2d_backward<double>,
      &ref::lrn_forward<float>,
      &ref::lrn_forward<double>,
      &ref::lrn_backward<float>,
      &ref::lrn_backward<double>,
      &ref::batch_norm_forward<float>,
      &ref::batch_norm_forward<double>,
      &ref::batch_norm_backward<float>,
      &ref::batch_norm_backward<double>,
      &ref::relu_forward<float>,
      &ref::relu_forward<double>,
      &ref::relu_backward<float>,
      &ref::relu_backward<double>,
      &ref::add_forward<float>,
      &ref::add_forward<double>,
      &ref::tanh_forward<float>,
      &ref::tanh_forward<double>,
      &ref::tanh_backward<float>,
      &ref::tanh_backward<double>,
      &ref::sigmoid_forward<float>,
      &ref::sigmoid_forward<double>,
      &ref::sigmoid_backward<float>,
      &ref::sigmoid_backward<double>,
      &ref::sgd_step<float>,
      &ref::sgd_step<double>,
      &ref::adam_step<float>,
      &ref::adam_step<double>,
      &ref::fma_peak<float>,
      &ref::fma_peak<double>,
  };
  return table;
}

}  // namespace ref
}  // namespace cnnx
