// One table of kernel implementations per instruction set; one of them is active.
//
// The ISA is chosen once, the first time a kernel runs: CNNX_ISA=avx512|avx2|generic|ref forces one
// (an unknown or unsupported value falls back to the best available and is reported by isa_note()),
// otherwise the best one this CPU supports. set_isa() switches later (used by the tests).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "cnnx/conv.h"
#include "cnnx/batch_norm.h"
#include "cnnx/elementwise.h"
#include "cnnx/gemm.h"
#include "cnnx/lrn.h"
#include "cnnx/optim.h"
#include "cnnx/peak.h"
#include "cnnx/pool.h"

namespace cnnx {

struct KernelTable {
  const char* isa;
  void (*gemm_f32)(float*, const float*, const float*, const GemmParams&);
  void (*gemm_f64)(double*, const double*, const double*, const GemmParams&);
  void (*conv2d_forward_f32)(float*, const float*, const float*, const float*, const Conv2dParams&);
  void (*conv2d_forward_f64)(double*, const double*, const double*, const double*, const Conv2dParams&);
  void (*conv2d_forward_fused_f32)(float*, const float*, const float*, const float*, const ConvEpilogue<float>&,
                                   const Conv2dParams&);
  void (*conv2d_forward_fused_f64)(double*, const double*, const double*, const double*,
                                   const ConvEpilogue<double>&, const Conv2dParams&);
  void (*conv2d_backward_input_f32)(float*, const float*, const float*, const Conv2dParams&);
  void (*conv2d_backward_input_f64)(double*, const double*, const double*, const Conv2dParams&);
  void (*conv2d_backward_weight_f32)(float*, float*, const float*, const float*, const Conv2dParams&);
  void (*conv2d_backward_weight_f64)(double*, double*, const double*, const double*, const Conv2dParams&);
  const char* (*conv2d_algorithm_f32)(const Conv2dParams&, ConvPass);
  const char* (*conv2d_algorithm_f64)(const Conv2dParams&, ConvPass);
  // Layers (pool.h, lrn.h, batch_norm.h).
  void (*max_pool2d_forward_f32)(float*, std::int64_t*, const float*, const Pool2dParams&);
  void (*max_pool2d_forward_f64)(double*, std::int64_t*, const double*, const Pool2dParams&);
  bool (*max_pool2d_backward_f32)(float*, const float*, const std::int64_t*, const Pool2dParams&);
  bool (*max_pool2d_backward_f64)(double*, const double*, const std::int64_t*, const Pool2dParams&);
  void (*avg_pool2d_forward_f32)(float*, const float*, const Pool2dParams&);
  void (*avg_pool2d_forward_f64)(double*, const double*, const Pool2dParams&);
  void (*avg_pool2d_backward_f32)(float*, const float*, const Pool2dParams&);
  void (*avg_pool2d_backward_f64)(double*, const double*, const Pool2dParams&);
  void (*adaptive_avg_pool2d_forward_f32)(float*, const float*, const AdaptivePool2dParams&);
  void (*adaptive_avg_pool2d_forward_f64)(double*, const double*, const AdaptivePool2dParams&);
  void (*adaptive_avg_pool2d_backward_f32)(float*, const float*, const AdaptivePool2dParams&);
  void (*adaptive_avg_pool2d_backward_f64)(double*, const double*, const AdaptivePool2dParams&);
  void (*lrn_forward_f32)(float*, float*, const float*, const LrnParams&);
  void (*lrn_forward_f64)(double*, double*, const double*, const LrnParams&);
  void (*lrn_backward_f32)(float*, const float*, const float*, const float*, const float*, const LrnParams&);
  void (*lrn_backward_f64)(double*, const double*, const double*, const double*, const double*, const LrnParams&);
  void (*batch_norm_forward_f32)(float*, float*, float*, float*, float*, const float*, const float*, const float*,
                                 const BatchNormParams&);
  void (*batch_norm_forward_f64)(double*, double*, double*, double*, double*, const double*, const double*,
                                 const double*, const BatchNormParams&);
  void (*batch_norm_backward_f32)(float*, float*, float*, const float*, const float*, const float*, const float*,
                                  const float*, const BatchNormParams&);
  void (*batch_norm_backward_f64)(double*, double*, double*, const double*, const double*, const double*,
                                  const double*, const double*, const BatchNormParams&);
  // Elementwise (elementwise.h).
  void (*relu_forward_f32)(float*, const float*, std::int64_t);
  void (*relu_forward_f64)(double*, const double*, std::int64_t);
  void (*relu_backward_f32)(float*, const float*, const float*, std::int64_t);
  void (*relu_backward_f64)(double*, const double*, const double*, std::int64_t);
  void (*add_forward_f32)(float*, const float*, const float*, std::int64_t);
  void (*add_forward_f64)(double*, const double*, const double*, std::int64_t);
  void (*tanh_forward_f32)(float*, const float*, std::int64_t);
  void (*tanh_forward_f64)(double*, const double*, std::int64_t);
  void (*tanh_backward_f32)(float*, const float*, const float*, std::int64_t);
  void (*tanh_backward_f64)(double*, const double*, const double*, std::int64_t);
  void (*sigmoid_forward_f32)(float*, const float*, std::int64_t);
  void (*sigmoid_forward_f64)(double*, const double*, std::int64_t);
  void (*sigmoid_backward_f32)(float*, const float*, const float*, std::int64_t);
  void (*sigmoid_backward_f64)(double*, const double*, const double*, std::int64_t);
  // Optimizer steps (optim.h).
  void (*sgd_step_f32)(float*, const float*, float*, std::int64_t, const SgdParams&);
  void (*sgd_step_f64)(double*, const double*, double*, std::int64_t, const SgdParams&);
  void (*adam_step_f32)(float*, const float*, float*, float*, float*, std::int64_t, const AdamParams&);
  void (*adam_step_f64)(double*, const double*, double*, double*, double*, std::int64_t, const AdamParams&);
  // The arithmetic-peak probe (peak.h).
  double (*fma_peak_f32)(int, double);
  double (*fma_peak_f64)(int, double);
};

// One entry per ISA this binary was built with, best first; `supported` says whether this CPU runs it.
struct IsaEntry {
  const KernelTable* table;
  bool supported;
};
std::vector<IsaEntry> isa_candidates();  // isa_x86.cpp or isa_portable.cpp, chosen by CMake

const KernelTable& active_kernels();
const char* active_isa();
std::vector<std::string> built_isas();      // includes "ref"
std::vector<std::string> available_isas();  // built and runnable on this CPU, best first; includes "ref"
bool set_isa(const std::string& name);      // false if unknown or not runnable here
std::string isa_note();                     // why CNNX_ISA was not honoured, or empty

namespace ref {
const KernelTable& kernel_table();
}

}  // namespace cnnx
