#include "cnnx/dispatch.h"

#include <atomic>
#include <cstdlib>
#include <mutex>
#include <type_traits>

namespace cnnx {

namespace {

struct State {
  std::atomic<const KernelTable*> active{nullptr};
  std::string note;
};

State& state() {
  static State s;
  return s;
}

const KernelTable* best_supported() {
  for (const IsaEntry& e : isa_candidates())
    if (e.supported) return e.table;
  return &ref::kernel_table();
}

const KernelTable* find_runnable(const std::string& name) {
  if (name == "ref") return &ref::kernel_table();
  for (const IsaEntry& e : isa_candidates())
    if (e.supported && name == e.table->isa) return e.table;
  return nullptr;
}

const KernelTable* choose_at_startup() {
  const char* env = std::getenv("CNNX_ISA");
  if (env == nullptr || *env == '\0') return best_supported();
  if (const KernelTable* t = find_runnable(env)) return t;
  const KernelTable* best = best_supported();
  state().note = std::string("CNNX_ISA=") + env + " is not available on this build/CPU (available: ";
  for (const std::string& s : available_isas()) state().note += s + " ";
  state().note += "); using " + std::string(best->isa);
  return best;
}

}  // namespace

const KernelTable& active_kernels() {
  State& s = state();
  const KernelTable* t = s.active.load(std::memory_order_acquire);
  if (t == nullptr) {
    static std::once_flag once;
    std::call_once(once, [&] {
      const KernelTable* chosen = choose_at_startup();
      const KernelTable* expected = nullptr;
      s.active.compare_exchange_strong(expected, chosen);
    });
    t = s.active.load(std::memory_order_acquire);
  }
  return *t;
}

const char* active_isa() { return active_kernels().isa; }

std::vector<std::string> built_isas() {
  std::vector<std::string> out;
  for (const IsaEntry& e : isa_candidates()) out.push_back(e.table->isa);
  out.push_back("ref");
  return out;
}

std::vector<std::string> available_isas() {
  std::vector<std::string> out;
  for (const IsaEntry& e : isa_candidates())
    if (e.supported) out.push_back(e.table->isa);
  out.push_back("ref");
  return out;
}

bool set_isa(const std::string& name) {
  active_kernels();  // settle the start-up choice first so it cannot overwrite this one
  const KernelTable* t = find_runnable(name);
  if (t == nullptr) return false;
  state().active.store(t, std::memory_order_release);
  return true;
}

std::string isa_note() {
  active_kernels();
  return state().note;
}

// The dispatching entry points: one line per op and dtype.
template <>
void gemm<float>(float* c, const float* a, const float* b, const GemmParams& p) {
  active_kernels().gemm_f32(c, a, b, p);
}
template <>
void gemm<double>(double* c, const double* a, const double* b, const GemmParams& p) {
  active_kernels().gemm_f64(c, a, b, p);
}

template <>
void conv2d_forward<float>(float* y, const float* x, const float* w, const float* b, const Conv2dParams& p) {
  active_kernels().conv2d_forward_f32(y, x, w, b, p);
}
template <>
void conv2d_forward<double>(double* y, const double* x, const double* w, const double* b,
                            const Conv2dParams& p) {
  active_kernels().conv2d_forward_f64(y, x, w, b, p);
}
template <>
void conv2d_forward_fused<float>(float* y, const float* x, const float* w, const float* b,
                                 const ConvEpilogue<float>& e, const Conv2dParams& p) {
  active_kernels().conv2d_forward_fused_f32(y, x, w, b, e, p);
}
template <>
void conv2d_forward_fused<double>(double* y, const double* x, const double* w, const double* b,
                                  const ConvEpilogue<double>& e, const Conv2dParams& p) {
  active_kernels().conv2d_forward_fused_f64(y, x, w, b, e, p);
}
template <>
void conv2d_backward_input<float>(float* dx, const float* dy, const float* w, const Conv2dParams& p) {
  active_kernels().conv2d_backward_input_f32(dx, dy, w, p);
}
template <>
void conv2d_backward_input<double>(double* dx, const double* dy, const double* w, const Conv2dParams& p) {
  active_kernels().conv2d_backward_input_f64(dx, dy, w, p);
}
template <>
void conv2d_backward_weight<float>(float* dw, float* db, const float* x, const float* dy,
                                   const Conv2dParams& p) {
  active_kernels().conv2d_backward_weight_f32(dw, db, x, dy, p);
}
template <>
void conv2d_backward_weight<double>(double* dw, double* db, const double* x, const double* dy,
                                    const Conv2dParams& p) {
  active_kernels().conv2d_backward_weight_f64(dw, db, x, dy, p);
}
template <>
const char* conv2d_algorithm<float>(const Conv2dParams& p, ConvPass pass) {
  return active_kernels().conv2d_algorithm_f32(p, pass);
}
template <>
const char* conv2d_algorithm<double>(const Conv2dParams& p, ConvPass pass) {
  return active_kernels().conv2d_algorithm_f64(p, pass);
}

// Layers: one generic entry point per op; the dtype picks the table field (f32 or f64).
namespace {
template <class T, class F32, class F64>
auto pick(F32 f32, F64 f64) {
  if constexpr (std::is_same_v<T, float>)
    return f32;
  else
    return f64;
}
}  // namespace

template <class T>
void max_pool2d_forward(T* y, std::int64_t* indices, const T* x, const Pool2dParams& p) {
  const KernelTable& k = active_kernels();
  pick<T>(k.max_pool2d_forward_f32, k.max_pool2d_forward_f64)(y, indices, x, p);
}
template <class T>
bool max_pool2d_backward(T* grad_x, const T* grad_y, const std::int64_t* indices, const Pool2dParams& p) {
  const KernelTable& k = active_kernels();
  return pick<T>(k.max_pool2d_backward_f32, k.max_pool2d_backward_f64)(grad_x, grad_y, indices, p);
}
template <class T>
void avg_pool2d_forward(T* y, const T* x, const Pool2dParams& p) {
  const KernelTable& k = active_kernels();
  pick<T>(k.avg_pool2d_forward_f32, k.avg_pool2d_forward_f64)(y, x, p);
}
template <class T>
void avg_pool2d_backward(T* grad_x, const T* grad_y, const Pool2dParams& p) {
  const KernelTable& k = active_kernels();
  pick<T>(k.avg_pool2d_backward_f32, k.avg_pool2d_backward_f64)(grad_x, grad_y, p);
}
template <class T>
void adaptive_avg_pool2d_forward(T* y, const T* x, const AdaptivePool2dParams& p) {
  const KernelTable& k = active_kernels();
  pick<T>(k.adaptive_avg_pool2d_forward_f32, k.adaptive_avg_pool2d_forward_f64)(y, x, p);
}
template <class T>
void adaptive_avg_pool2d_backward(T* grad_x, const T* grad_y, const AdaptivePool2dParams& p) {
  const KernelTable& k = active_kernels();
  pick<T>(k.adaptive_avg_pool2d_backward_f32, k.adaptive_avg_pool2d_backward_f64)(grad_x, grad_y, p);
}
template <class T>
void lrn_forward(T* y, T* scale, const T* x, const LrnParams& p) {
  const KernelTable& k = active_kernels();
  pick<T>(k.lrn_forward_f32, k.lrn_forward_f64)(y, scale, x, p);
}
template <class T>
void lrn_backward(T* grad_x, const T* grad_y, const T* x, const T* y, const T* scale, const LrnParams& p) {
  const KernelTable& k = active_kernels();
  pick<T>(k.lrn_backward_f32, k.lrn_backward_f64)(grad_x, grad_y, x, y, scale, p);
}
template <class T>
void batch_norm_forward(T* y, T* save_mean, T* save_invstd, T* running_mean, T* running_var, const T* x,
                        const T* weight, const T* bias, const BatchNormParams& p) {
  const KernelTable& k = active_kernels();
  pick<T>(k.batch_norm_forward_f32, k.batch_norm_forward_f64)(y, save_mean, save_invstd, running_mean,
                                                              running_var, x, weight, bias, p);
}
template <class T>
void batch_norm_backward(T* grad_x, T* grad_weight, T* grad_bias, const T* grad_y, const T* x, const T* weight,
                         const T* save_mean, const T* save_invstd, const BatchNormParams& p) {
  const KernelTable& k = active_kernels();
  pick<T>(k.batch_norm_backward_f32, k.batch_norm_backward_f64)(grad_x, grad_weight, grad_bias, grad_y, x,
                                                                weight, save_mean, save_invstd, p);
}

template <class T>
void relu_forward(T* y, const T* x, std::int64_t n) {
  const KernelTable& k = active_kernels();
  pick<T>(k.relu_forward_f32, k.relu_forward_f64)(y, x, n);
}
template <class T>
void relu_backward(T* grad_x, const T* grad_y, const T* y, std::int64_t n) {
  const KernelTable& k = active_kernels();
  pick<T>(k.relu_backward_f32, k.relu_backward_f64)(grad_x, grad_y, y, n);
}
template <class T>
void add_forward(T* y, const T* a, const T* b, std::int64_t n) {
  const KernelTable& k = active_kernels();
  pick<T>(k.add_forward_f32, k.add_forward_f64)(y, a, b, n);
}
template <class T>
void tanh_forward(T* y, const T* x, std::int64_t n) {
  const KernelTable& k = active_kernels();
  pick<T>(k.tanh_forward_f32, k.tanh_forward_f64)(y, x, n);
}
template <class T>
void tanh_backward(T* grad_x, const T* grad_y, const T* y, std::int64_t n) {
  const KernelTable& k = active_kernels();
  pick<T>(k.tanh_backward_f32, k.tanh_backward_f64)(grad_x, grad_y, y, n);
}
template <class T>
void sigmoid_forward(T* y, const T* x, std::int64_t n) {
  const KernelTable& k = active_kernels();
  pick<T>(k.sigmoid_forward_f32, k.sigmoid_forward_f64)(y, x, n);
}
template <class T>
void sigmoid_backward(T* grad_x, const T* grad_y, const T* y, std::int64_t n) {
  const KernelTable& k = active_kernels();
  pick<T>(k.sigmoid_backward_f32, k.sigmoid_backward_f64)(grad_x, grad_y, y, n);
}

template <class T>
void sgd_step(T* param, const T* grad, T* momentum_buffer, std::int64_t n, const SgdParams& p) {
  const KernelTable& k = active_kernels();
  pick<T>(k.sgd_step_f32, k.sgd_step_f64)(param, grad, momentum_buffer, n, p);
}
template <class T>
void adam_step(T* param, const T* grad, T* exp_avg, T* exp_avg_sq, T* max_exp_avg_sq, std::int64_t n,
               const AdamParams& p) {
  const KernelTable& k = active_kernels();
  pick<T>(k.adam_step_f32, k.adam_step_f64)(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, n, p);
}

template <class T>
double fma_peak(int threads, double seconds) {
  const KernelTable& k = active_kernels();
  return pick<T>(k.fma_peak_f32, k.fma_peak_f64)(threads, seconds);
}

#define CNNX_LAYER_ENTRIES(T)                                                                            \
  template void max_pool2d_forward<T>(T*, std::int64_t*, const T*, const Pool2dParams&);               \
  template bool max_pool2d_backward<T>(T*, const T*, const std::int64_t*, const Pool2dParams&);         \
  template void avg_pool2d_forward<T>(T*, const T*, const Pool2dParams&);                               \
  template void avg_pool2d_backward<T>(T*, const T*, const Pool2dParams&);                              \
  template void adaptive_avg_pool2d_forward<T>(T*, const T*, const AdaptivePool2dParams&);              \
  template void adaptive_avg_pool2d_backward<T>(T*, const T*, const AdaptivePool2dParams&);             \
  template void lrn_forward<T>(T*, T*, const T*, const LrnParams&);                                     \
  template void lrn_backward<T>(T*, const T*, const T*, const T*, const T*, const LrnParams&);          \
  template void batch_norm_forward<T>(T*, T*, T*, T*, T*, const T*, const T*, const T*,                 \
                                      const BatchNormParams&);                                          \
  template void batch_norm_backward<T>(T*, T*, T*, const T*, const T*, const T*, const T*, const T*,    \
                                       const BatchNormParams&);                                         \
  template void relu_forward<T>(T*, const T*, std::int64_t);                                            \
  template void relu_backward<T>(T*, const T*, const T*, std::int64_t);                                 \
  template void add_forward<T>(T*, const T*, const T*, std::int64_t);                                   \
  template void tanh_forward<T>(T*, const T*, std::int64_t);                                            \
  template void tanh_backward<T>(T*, const T*, const T*, std::int64_t);                                 \
  template void sigmoid_forward<T>(T*, const T*, std::int64_t);                                         \
  template void sigmoid_backward<T>(T*, const T*, const T*, std::int64_t);                              \
  template void sgd_step<T>(T*, const T*, T*, std::int64_t, const SgdParams&);                          \
  template void adam_step<T>(T*, const T*, T*, T*, T*, std::int64_t, const AdamParams&);              \
  template double fma_peak<T>(int, double);
CNNX_LAYER_ENTRIES(float)
CNNX_LAYER_ENTRIES(double)
#undef CNNX_LAYER_ENTRIES

}  // namespace cnnx
