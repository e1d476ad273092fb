#include "cnnx/dispatch.h"

#include <atomic>
#include <cstdlib>
#include <mutex>

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

}  // namespace cnnx
