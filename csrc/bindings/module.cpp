// cnnx._C: the compiled core. Each bind_<family>.cpp converts and validates arguments, allocates
// outputs, releases the GIL and calls one kernel entry point; no numerics live in the bindings.
#include <pybind11/pybind11.h>

namespace cnnx {
namespace bind {
void bind_runtime(pybind11::module_& m);
void bind_alloc(pybind11::module_& m);
void bind_gemm(pybind11::module_& m);
void bind_conv(pybind11::module_& m);
void bind_pool(pybind11::module_& m);
void bind_lrn(pybind11::module_& m);
void bind_batch_norm(pybind11::module_& m);
void bind_elementwise(pybind11::module_& m);
void bind_optim(pybind11::module_& m);
}  // namespace bind
}  // namespace cnnx

PYBIND11_MODULE(_C, m) {
  m.doc() = "cnnx compiled core: C++ kernels (OpenMP + SIMD) and their bindings";
  cnnx::bind::bind_runtime(m);
  cnnx::bind::bind_alloc(m);
  cnnx::bind::bind_gemm(m);
  cnnx::bind::bind_conv(m);
  cnnx::bind::bind_pool(m);
  cnnx::bind::bind_lrn(m);
  cnnx::bind::bind_batch_norm(m);
  cnnx::bind::bind_elementwise(m);
  cnnx::bind::bind_optim(m);
}
