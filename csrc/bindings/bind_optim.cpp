// Bindings of cnnx/optim.h: validate, release the GIL, call one kernel entry point. Nothing is
// returned: the parameter and the optimizer state are updated in place.
//
// Arrays of any shape (0-d included), all of the parameter's shape and dtype: no broadcasting, and
// nothing is cast. The arrays that are written (the parameter and every state array) must be
// writeable and dense (C-contiguous and aligned), since writing into a copy would silently lose the
// update; the gradient is only read, and is copied first when the kernel cannot read it in place
// (values unchanged). No two arrays may share memory: the kernels update each element from its own
// operands, which is not what the numpy code's sequence of in-place passes gives for aliased
// arrays, so aliasing is refused rather than given another meaning.
//
// The scalars are the Python floats the numpy code of cnnx/optim uses (see optim.h): they arrive
// as doubles, unchanged, and the kernels round them to the arrays' dtype.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "arrays.h"
#include "cnnx/optim.h"

namespace cnnx {
namespace bind {

namespace {

std::string strides_str(const py::array& a) { return std::string(py::str(py::tuple(a.attr("strides")))); }

// `b` must have the dtype and shape of `a` (TypeError / ValueError naming `b`).
void require_like(const py::array& a, const char* a_name, const py::array& b, const char* b_name, const char* fn) {
  require_same_dtype(a, a_name, b, b_name, fn);
  bool same = a.ndim() == b.ndim();
  for (py::ssize_t d = 0; same && d < a.ndim(); ++d) same = a.shape(d) == b.shape(d);
  if (!same)
    argument_error(fn, b_name,
                   "must have the shape of '" + std::string(a_name) + "' " + shape_str(a) + ", got " + shape_str(b) +
                       " (no broadcasting)");
}

// An array the step updates in place: writeable and dense.
void require_updatable(const py::array& a, const char* fn, const char* name) {
  if (!a.writeable()) argument_error(fn, name, "must be writeable (the step updates it in place)");
  if (!is_dense(a))
    argument_error(fn, name,
                   "must be a C-contiguous, aligned array (the step updates it in place), got strides " +
                       strides_str(a));
}

// A state array: a float array like `param`, updated in place.
py::array state_array(py::handle obj, const py::array& param, const char* fn, const char* name) {
  py::array a = require_float_array(obj, fn, name, kAnyNdim);
  require_like(param, "param", a, name, fn);
  require_updatable(a, fn, name);
  return a;
}

// No two of the named arrays may share memory (ValueError naming the later one of a pair).
void require_apart(const std::vector<std::pair<const char*, const py::array*>>& arrays, const char* fn) {
  for (std::size_t j = 1; j < arrays.size(); ++j)
    for (std::size_t i = 0; i < j; ++i)
      if (may_overlap(*arrays[i].second, *arrays[j].second))
        argument_error(fn, arrays[j].first,
                       std::string("must not share memory with '") + arrays[i].first +
                           "' (each array of an optimizer step is updated or read on its own)");
}


void sgd_step_py(py::handle param_obj, py::handle grad_obj, py::handle buf_obj, double lr, double momentum,
                 double dampening, double weight_decay, bool nesterov, bool maximize, bool first_step) {
  const char* fn = "sgd_step";
  py::array param = require_float_array(param_obj, fn, "param", kAnyNdim);
  require_updatable(param, fn, "param");
  py::array grad = require_float_array(grad_obj, fn, "grad", kAnyNdim);
  require_like(param, "param", grad, "grad", fn);
  grad = dense(grad);
  py::array buf;
  std::vector<std::pair<const char*, const py::array*>> arrays = {{"param", &param}, {"grad", &grad}};
  if (!buf_obj.is_none()) {
    buf = state_array(buf_obj, param, fn, "momentum_buffer");
    arrays.push_back({"momentum_buffer", &buf});
  } else if (momentum != 0) {
    argument_error(fn, "momentum_buffer", "must be an array when momentum != 0, got None");
  }
  require_apart(arrays, fn);
  SgdParams p;
  p.lr = lr;
  p.momentum = momentum;
  p.dampening = dampening;
  p.weight_decay = weight_decay;
  p.nesterov = nesterov;
  p.maximize = maximize;
  p.first_step = first_step;
  const std::int64_t n = param.size();
  const bool has_buf = momentum != 0;  // a buffer passed with momentum == 0 is checked, never touched
  if (dtype_of(param) == DType::f32) {
    float* pp = ptr<float>(param);
    const float* gp = cptr<float>(grad);
    float* bp = has_buf ? ptr<float>(buf) : nullptr;
    py::gil_scoped_release release;
    sgd_step<float>(pp, gp, bp, n, p);
  } else {
    double* pp = ptr<double>(param);
    const double* gp = cptr<double>(grad);
    double* bp = has_buf ? ptr<double>(buf) : nullptr;
    py::gil_scoped_release release;
    sgd_step<double>(pp, gp, bp, n, p);
  }
}

void adam_step_py(py::handle param_obj, py::handle grad_obj, py::handle m_obj, py::handle v_obj, py::handle vmax_obj,
                  double lr, double beta1, double beta2, double eps, double weight_decay, double step_size,
                  double bias_correction2_sqrt, bool decoupled, bool maximize) {
  const char* fn = "adam_step";
  py::array param = require_float_array(param_obj, fn, "param", kAnyNdim);
  require_updatable(param, fn, "param");
  py::array grad = require_float_array(grad_obj, fn, "grad", kAnyNdim);
  require_like(param, "param", grad, "grad", fn);
  grad = dense(grad);
  py::array m = state_array(m_obj, param, fn, "exp_avg");
  py::array v = state_array(v_obj, param, fn, "exp_avg_sq");
  py::array vmax;
  std::vector<std::pair<const char*, const py::array*>> arrays = {
      {"param", &param}, {"grad", &grad}, {"exp_avg", &m}, {"exp_avg_sq", &v}};
  const bool amsgrad = !vmax_obj.is_none();
  if (amsgrad) {
    vmax = state_array(vmax_obj, param, fn, "max_exp_avg_sq");
    arrays.push_back({"max_exp_avg_sq", &vmax});
  }
  require_apart(arrays, fn);
  AdamParams p;
  p.lr = lr;
  p.beta1 = beta1;
  p.beta2 = beta2;
  p.eps = eps;
  p.weight_decay = weight_decay;
  p.step_size = step_size;
  p.bias_correction2_sqrt = bias_correction2_sqrt;
  p.decoupled = decoupled;
  p.maximize = maximize;
  p.amsgrad = amsgrad;
  const std::int64_t n = param.size();
  if (dtype_of(param) == DType::f32) {
    float *pp = ptr<float>(param), *mp = ptr<float>(m), *vp = ptr<float>(v);
    float* xp = amsgrad ? ptr<float>(vmax) : nullptr;
    const float* gp = cptr<float>(grad);
    py::gil_scoped_release release;
    adam_step<float>(pp, gp, mp, vp, xp, n, p);
  } else {
    double *pp = ptr<double>(param), *mp = ptr<double>(m), *vp = ptr<double>(v);
    double* xp = amsgrad ? ptr<double>(vmax) : nullptr;
    const double* gp = cptr<double>(grad);
    py::gil_scoped_release release;
    adam_step<double>(pp, gp, mp, vp, xp, n, p);
  }
}

}  // namespace

void bind_optim(py::module_& m) {
  m.def("sgd_step", &sgd_step_py, py::arg("param"), py::arg("grad"), py::arg("momentum_buffer"), py::arg("lr"),
        py::arg("momentum"), py::arg("dampening"), py::arg("weight_decay"), py::arg("nesterov"),
        py::arg("maximize"), py::arg("first_step"),
        "One SGD step on param (and momentum_buffer) in place, bitwise cnnx.optim.SGD's numpy update "
        "(see cnnx.kernels.sgd_step).");
  m.def("adam_step", &adam_step_py, py::arg("param"), py::arg("grad"), py::arg("exp_avg"), py::arg("exp_avg_sq"),
        py::arg("max_exp_avg_sq"), py::arg("lr"), py::arg("beta1"), py::arg("beta2"), py::arg("eps"),
        py::arg("weight_decay"), py::arg("step_size"), py::arg("bias_correction2_sqrt"), py::arg("decoupled"),
        py::arg("maximize"),
        "One Adam/AdamW step on param and its moments in place, bitwise cnnx.optim.Adam's numpy update "
        "(see cnnx.kernels.adam_step).");
}

}  // namespace bind
}  // namespace cnnx
