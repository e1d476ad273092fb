// Bindings of cnnx/batch_norm.h: validate, allocate, release the GIL, call one kernel entry point.
// Running statistics are updated in place, so they must be writeable, dense float arrays of the
// input's dtype (a copy would silently lose the update).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cmath>
#include <optional>

#include "arrays.h"
#include "cnnx/batch_norm.h"

namespace cnnx {
namespace bind {

namespace {

using std::int64_t;

// An optional per-channel vector: None, or a 1-D array of C values of x's dtype (copied if not dense).
std::optional<py::array> channel_vector(py::handle obj, const char* fn, const char* name, const py::array& x) {
  if (obj.is_none()) return std::nullopt;
  py::array v = require_float_array(obj, fn, name, 1);
  require_same_dtype(x, "input", v, name, fn);
  require_shape(v, fn, name, {x.shape(1)});
  return dense(v);
}

// A running statistic updated in place: None, or a writeable dense 1-D array of C values.
std::optional<py::array> running_stat(py::handle obj, const char* fn, const char* name, const py::array& x) {
  if (obj.is_none()) return std::nullopt;
  py::array v = require_float_array(obj, fn, name, 1);
  require_same_dtype(x, "input", v, name, fn);
  require_shape(v, fn, name, {x.shape(1)});
  if (!v.writeable()) argument_error(fn, name, "must be writeable (running statistics are updated in place)");
  if (dense(v).ptr() != v.ptr())
    argument_error(fn, name, "must be a contiguous, aligned array (running statistics are updated in place)");
  return v;
}


void require_finite(const char* fn, const char* name, double v) {
  if (!std::isfinite(v)) argument_error(fn, name, "must be finite, got " + std::string(py::str(py::float_(v))));
}

py::tuple batch_norm_forward_py(py::handle x_obj, py::handle w_obj, py::handle b_obj, py::handle rm_obj,
                                py::handle rv_obj, bool training, double momentum, double eps) {
  const char* fn = "batch_norm_forward";
  py::array x = dense(require_float_array(x_obj, fn, "input", 4));
  std::optional<py::array> w = channel_vector(w_obj, fn, "weight", x);
  std::optional<py::array> b = channel_vector(b_obj, fn, "bias", x);
  std::optional<py::array> rm = running_stat(rm_obj, fn, "running_mean", x);
  std::optional<py::array> rv = running_stat(rv_obj, fn, "running_var", x);
  require_finite(fn, "momentum", momentum);
  require_finite(fn, "eps", eps);
  if (eps < 0) argument_error(fn, "eps", "must be non-negative, got " + std::string(py::str(py::float_(eps))));
  if (rm.has_value() != rv.has_value())
    argument_error(fn, rm ? "running_var" : "running_mean",
                   "must be given together with '" + std::string(rm ? "running_mean" : "running_var") + "'");
  if (!training && !rm.has_value())
    argument_error(fn, "running_mean", "must be given in evaluation mode (training=False), got None");
  BatchNormParams p;
  p.n = x.shape(0), p.c = x.shape(1), p.hw = x.shape(2) * x.shape(3);
  p.training = training, p.momentum = momentum, p.eps = eps;
  if (training && p.n * p.hw == 1)
    argument_error(fn, "input",
                   "must hold more than 1 value per channel when training (expected more than 1 value per channel "
                   "when training), got shape " + shape_str(x));
  py::array y = new_array(x.dtype(), {x.shape(0), x.shape(1), x.shape(2), x.shape(3)});
  py::array save_mean = new_array(x.dtype(), {p.c});
  py::array save_invstd = new_array(x.dtype(), {p.c});
  if (dtype_of(x) == DType::f32) {
    float *yp = ptr<float>(y), *mp = ptr<float>(save_mean), *ip = ptr<float>(save_invstd);
    float *rmp = ptr<float>(rm), *rvp = ptr<float>(rv);
    const float *xp = cptr<float>(x), *wp = cptr<float>(w), *bp = cptr<float>(b);
    py::gil_scoped_release release;
    batch_norm_forward<float>(yp, mp, ip, rmp, rvp, xp, wp, bp, p);
  } else {
    double *yp = ptr<double>(y), *mp = ptr<double>(save_mean), *ip = ptr<double>(save_invstd);
    double *rmp = ptr<double>(rm), *rvp = ptr<double>(rv);
    const double *xp = cptr<double>(x), *wp = cptr<double>(w), *bp = cptr<double>(b);
    py::gil_scoped_release release;
    batch_norm_forward<double>(yp, mp, ip, rmp, rvp, xp, wp, bp, p);
  }
  return py::make_tuple(y, save_mean, save_invstd);
}

py::tuple batch_norm_backward_py(py::handle gy_obj, py::handle x_obj, py::handle w_obj, py::handle sm_obj,
                                 py::handle si_obj, bool training) {
  const char* fn = "batch_norm_backward";
  py::array gy = dense(require_float_array(gy_obj, fn, "grad_output", 4));
  py::array x = dense(require_float_array(x_obj, fn, "input", 4));
  require_same_dtype(x, "input", gy, "grad_output", fn);
  require_shape(gy, fn, "grad_output", {x.shape(0), x.shape(1), x.shape(2), x.shape(3)});
  std::optional<py::array> w = channel_vector(w_obj, fn, "weight", x);
  if (sm_obj.is_none()) argument_error(fn, "save_mean", "must be an array, got None");
  if (si_obj.is_none()) argument_error(fn, "save_invstd", "must be an array, got None");
  const py::array sm = *channel_vector(sm_obj, fn, "save_mean", x);
  const py::array si = *channel_vector(si_obj, fn, "save_invstd", x);
  BatchNormParams p;
  p.n = x.shape(0), p.c = x.shape(1), p.hw = x.shape(2) * x.shape(3), p.training = training;
  py::array gx = new_array(x.dtype(), {x.shape(0), x.shape(1), x.shape(2), x.shape(3)});
  py::array gw = new_array(x.dtype(), {p.c});
  py::array gb = new_array(x.dtype(), {p.c});
  if (dtype_of(x) == DType::f32) {
    float *gxp = ptr<float>(gx), *gwp = ptr<float>(gw), *gbp = ptr<float>(gb);
    const float *gyp = cptr<float>(gy), *xp = cptr<float>(x), *wp = cptr<float>(w);
    const float *smp = cptr<float>(sm), *sip = cptr<float>(si);
    py::gil_scoped_release release;
    batch_norm_backward<float>(gxp, gwp, gbp, gyp, xp, wp, smp, sip, p);
  } else {
    double *gxp = ptr<double>(gx), *gwp = ptr<double>(gw), *gbp = ptr<double>(gb);
    const double *gyp = cptr<double>(gy), *xp = cptr<double>(x), *wp = cptr<double>(w);
    const double *smp = cptr<double>(sm), *sip = cptr<double>(si);
    py::gil_scoped_release release;
    batch_norm_backward<double>(gxp, gwp, gbp, gyp, xp, wp, smp, sip, p);
  }
  return py::make_tuple(gx, gw, gb);
}

}  // namespace

void bind_batch_norm(py::module_& m) {
  m.def("batch_norm_forward", &batch_norm_forward_py, py::arg("input"), py::arg("weight"), py::arg("bias"),
        py::arg("running_mean"), py::arg("running_var"), py::arg("training"), py::arg("momentum"), py::arg("eps"),
        "(output, save_mean, save_invstd) of batch norm (see cnnx.kernels.batch_norm_forward).");
  m.def("batch_norm_backward", &batch_norm_backward_py, py::arg("grad_output"), py::arg("input"), py::arg("weight"),
        py::arg("save_mean"), py::arg("save_invstd"), py::arg("training"),
        "(grad_input, grad_weight, grad_bias) of batch norm (see cnnx.kernels.batch_norm_backward).");
}

}  // namespace bind
}  // namespace cnnx
