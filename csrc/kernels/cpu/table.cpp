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
void conv2d_forward_fused(T*, const T*, const T*, const T*, const ConvEpilogue<T>&, const Conv2dParams&);
template <class T>
void conv2d_backward_input(T*, const T*, const T*, const Conv2dParams&);
template <class T>
void conv2d_backward_weight(T*, T*, const T*, const T*, const Conv2dParams&);
template <class T>
const char* conv2d_algorithm(const Conv2dParams&, ConvPass);
void max_pool2d_forward_f32(float*, std::int64_t*, const float*, const Pool2dParams&);
void max_pool2d_forward_f64(double*, std::int64_t*, const double*, const Pool2dParams&);
bool max_pool2d_backward_f32(float*, const float*, const std::int64_t*, const Pool2dParams&);
bool max_pool2d_backward_f64(double*, const double*, const std::int64_t*, const Pool2dParams&);
void avg_pool2d_forward_f32(float*, const float*, const Pool2dParams&);
void avg_pool2d_forward_f64(double*, const double*, const Pool2dParams&);
void avg_pool2d_backward_f32(float*, const float*, const Pool2dParams&);
void avg_pool2d_backward_f64(double*, const double*, const Pool2dParams&);
void adaptive_avg_pool2d_forward_f32(float*, const float*, const AdaptivePool2dParams&);
void adaptive_avg_pool2d_forward_f64(double*, const double*, const AdaptivePool2dParams&);
void adaptive_avg_pool2d_backward_f32(float*, const float*, const AdaptivePool2dParams&);
void adaptive_avg_pool2d_backward_f64(double*, const double*, const AdaptivePool2dParams&);
void lrn_forward_f32(float*, float*, const float*, const LrnParams&);
void lrn_forward_f64(double*, double*, const double*, const LrnParams&);
void lrn_backward_f32(float*, const float*, const float*, const float*, const float*, const LrnParams&);
void lrn_backward_f64(double*, const double*, const double*, const double*, const double*, const LrnParams&);
void batch_norm_forward_f32(float*, float*, float*, float*, float*, const float*, const float*, const float*,
                            const BatchNormParams&);
void batch_norm_forward_f64(double*, double*, double*, double*, double*, const double*, const double*, const double*,
                            const BatchNormParams&);
void batch_norm_backward_f32(float*, float*, float*, const float*, const float*, const float*, const float*,
                             const float*, const BatchNormParams&);
void batch_norm_backward_f64(double*, double*, double*, const double*, const double*, const double*, const double*,
                             const double*, const BatchNormParams&);
void relu_forward_f32(float*, const float*, std::int64_t);
void relu_forward_f64(double*, const double*, std::int64_t);
void relu_backward_f32(float*, const float*, const float*, std::int64_t);
void relu_backward_f64(double*, const double*, const double*, std::int64_t);
void add_forward_f32(float*, const float*, const float*, std::int64_t);
void add_forward_f64(double*, const double*, const double*, std::int64_t);
void tanh_forward_f32(float*, const float*, std::int64_t);
void tanh_forward_f64(double*, const double*, std::int64_t);
void tanh_backward_f32(float*, const float*, const float*, std::int64_t);
void tanh_backward_f64(double*, const double*, const double*, std::int64_t);
void sigmoid_forward_f32(float*, const float*, std::int64_t);
void sigmoid_forward_f64(double*, const double*, std::int64_t);
void sigmoid_backward_f32(float*, const float*, const float*, std::int64_t);
void sigmoid_backward_f64(double*, const double*, const double*, std::int64_t);
void sgd_step_f32(float*, const float*, float*, std::int64_t, const SgdParams&);
void sgd_step_f64(double*, const double*, double*, std::int64_t, const SgdParams&);
void adam_step_f32(float*, const float*, float*, float*, float*, std::int64_t, const AdamParams&);
void adam_step_f64(double*, const double*, double*, double*, double*, std::int64_t, const AdamParams&);
template <class T>
double fma_peak(int, double);

const KernelTable& kernel_table() {
  static const KernelTable table = {
      CNNX_STR(CNNX_ISA_NS),
      &gemm_f32,
      &gemm_f64,
      &conv2d_forward<float>,
      &conv2d_forward<double>,
      &conv2d_forward_fused<float>,
      &conv2d_forward_fused<double>,
      &conv2d_backward_input<float>,
      &conv2d_backward_input<double>,
      &conv2d_backward_weight<float>,
      &conv2d_backward_weight<double>,
      &conv2d_algorithm<float>,
      &conv2d_algorithm<double>,
      &max_pool2d_forward_f32,
      &max_pool2d_forward_f64,
      &max_pool2d_backward_f32,
      &max_pool2d_backward_f64,
      &avg_pool2d_forward_f32,
      &avg_pool2d_forward_f64,
      &avg_pool2d_backward_f32,
      &avg_pool2d_backward_f64,
      &adaptive_avg_pool2d_forward_f32,
      &adaptive_avg_pool2d_forward_f64,
      &adaptive_avg_pool2d_backward_f32,
      &adaptive_avg_pool2d_backward_f64,
      &lrn_forward_f32,
      &lrn_forward_f64,
      &lrn_backward_f32,
      &lrn_backward_f64,
      &batch_norm_forward_f32,
      &batch_norm_forward_f64,
      &batch_norm_backward_f32,
      &batch_norm_backward_f64,
      &relu_forward_f32,
      &relu_forward_f64,
      &relu_backward_f32,
      &relu_backward_f64,
      &add_forward_f32,
      &add_forward_f64,
      &tanh_forward_f32,
      &tanh_forward_f64,
      &tanh_backward_f32,
      &tanh_backward_f64,
      &sigmoid_forward_f32,
      &sigmoid_forward_f64,
      &sigmoid_backward_f32,
      &sigmoid_backward_f64,
      &sgd_step_f32,
      &sgd_step_f64,
      &adam_step_f32,
      &adam_step_f64,
      &fma_peak<float>,
      &fma_peak<double>,
  };
  return table;
}

}  // namespace CNNX_ISA_NS
}  // namespace cnnx
