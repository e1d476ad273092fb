#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "cnnx/dispatch.h"
#include "cnnx/runtime.h"

namespace cnnx {
namespace bind {

namespace py = pybind11;

void bind_runtime(py::module_& m) {
  m.def("version", &cnnx::version, "Version of the compiled core.");
  m.def("compiler", &cnnx::compiler_description, "Compiler that built the core.");
  m.def("openmp", &cnnx::openmp_enabled, "Whether the core was built with OpenMP.");
  m.def("get_num_threads", &cnnx::get_num_threads, "Threads each kernel may use.");
  m.def(
      "set_conv_algorithm",
      [](const std::string& name) {
        if (name == "auto")
          cnnx::set_conv_algorithm(cnnx::ConvAlgorithm::kAuto);
        else if (name == "gemm")
          cnnx::set_conv_algorithm(cnnx::ConvAlgorithm::kGemm);
        else if (name == "direct")
          cnnx::set_conv_algorithm(cnnx::ConvAlgorithm::kDirect);
        else if (name == "winograd")
          cnnx::set_conv_algorithm(cnnx::ConvAlgorithm::kWinograd);
        else if (name == "rows")
          cnnx::set_conv_algorithm(cnnx::ConvAlgorithm::kRows);
        else
          throw py::value_error(
              "set_conv_algorithm(): name must be 'auto', 'gemm', 'direct', 'winograd' or 'rows', got '" + name + "'");
      },
      py::arg("name"),
      "How dense convolutions are computed: 'auto' (per shape), or force 'gemm' / 'direct' / 'winograd' / 'rows' "
      "where it can run.");
  m.def(
      "conv_algorithm",
      []() -> std::string {
        switch (cnnx::conv_algorithm()) {
          case cnnx::ConvAlgorithm::kGemm: return "gemm";
          case cnnx::ConvAlgorithm::kDirect: return "direct";
          case cnnx::ConvAlgorithm::kWinograd: return "winograd";
          case cnnx::ConvAlgorithm::kRows: return "rows";
          default: return "auto";
        }
      },
      "The convolution algorithm setting ('auto', 'gemm', 'direct', 'winograd' or 'rows').");
  m.def(
      "set_num_threads", [](int n) {
        if (n < 1) throw py::value_error("set_num_threads(): n must be >= 1, got " + std::to_string(n));
        cnnx::set_num_threads(n);
      },
      py::arg("n"), "Set the threads each kernel may use (n >= 1).");
  m.def(
      "fma_peak",
      [](int threads, double seconds, const std::string& dtype) {
        if (threads < 1) throw py::value_error("fma_peak(): threads must be >= 1, got " + std::to_string(threads));
        if (!(seconds > 0 && seconds <= 60))
          throw py::value_error("fma_peak(): seconds must be in (0, 60], got " + std::to_string(seconds));
        if (dtype != "float32" && dtype != "float64")
          throw py::value_error("fma_peak(): dtype must be 'float32' or 'float64', got '" + dtype + "'");
        py::gil_scoped_release release;
        return dtype == "float32" ? cnnx::fma_peak<float>(threads, seconds) : cnnx::fma_peak<double>(threads, seconds);
      },
      py::arg("threads"), py::arg("seconds") = 0.2, py::arg("dtype") = "float32",
      "GFLOP/s of register-only fused multiply-add chains of the active ISA on `threads` threads, run "
      "for about `seconds`: this machine's arithmetic ceiling right now (cnnx bench uses it for % peak).");
  m.def("isa", &cnnx::active_isa, "The instruction-set path in use.");
  m.def("isa_note", &cnnx::isa_note, "Why CNNX_ISA was not honoured (empty when it was or is unset).");
  m.def("built_isas", &cnnx::built_isas, "Instruction-set paths compiled into this build, best first.");
  m.def("available_isas", &cnnx::available_isas, "Paths this CPU can run, best first.");
  m.def(
      "set_isa", [](const std::string& name) {
        if (!cnnx::set_isa(name)) {
          std::string avail;
          for (const auto& s : cnnx::available_isas()) avail += (avail.empty() ? "" : ", ") + s;
          throw py::value_error("set_isa(): isa must be one of " + avail + " on this CPU, got '" + name + "'");
        }
      },
      py::arg("isa"), "Switch the instruction-set path (for tests and benchmarks).");
}

}  // namespace bind
}  // namespace cnnx
