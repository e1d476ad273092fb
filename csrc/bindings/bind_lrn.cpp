// Bindings of cnnx/lrn.h: validate, allocate, release the GIL, call one kernel entry point.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cmath>

#include "arrays.h"
#include "cnnx/lrn.h"

namespace cnnx {
namespace bind {

namespace {

using std::int64_t;

LrnParams lrn_params(const char* fn, const py::array& x, int64_t size, double alpha, double beta, double k) {
  if (size < 1) argument_error(fn, "size", "must be at least 1, got " + std::to_string(size));
  const std::pair<const char*, double> scalars[] = {{"alpha", alpha}, {"beta", beta}, {"k", k}};
  for (const auto& [name, v] : scalars)
    if (!std::isfinite(v)) argument_error(fn, name, "must be finite, got " + std::string(py::str(py::float_(v))));
  LrnParams p;
  p.n = x.shape(0), p.c = x.shape(1), p.h = x.shape(2), p.w = x.shape(3);
  p.size = size, p.alpha = alpha, p.beta = beta, p.k = k;
  return p;
}

template <class T>
T* data(py::array& a) {
  return static_cast<T*>(a.mutable_data());
}
template <class T>
const T* cdata(const py::array& a) {
  return static_cast<const T*>(a.data());
}

py::tuple lrn_forward_py(py::handle x_obj, int64_t size, double alpha, double beta, double k) {
  const char* fn = "local_response_norm_forward";
  py::array x = dense(require_float_array(x_obj, fn, "input", 4));
  const LrnParams p = lrn_params(fn, x, size, alpha, beta, k);
  const std::vector<py::ssize_t> shape{p.n, p.c, p.h, p.w};
  py::array y = new_array(x.dtype(), shape), scale = new_array(x.dtype(), shape);
  if (dtype_of(x) == DType::f32) {
    float *yp = data<float>(y), *sp = data<float>(scale);
    const float* xp = cdata<float>(x);
    py::gil_scoped_release release;
    lrn_forward<float>(yp, sp, xp, p);
  } else {
    double *yp = data<double>(y), *sp = data<double>(scale);
    const double* xp = cdata<double>(x);
    py::gil_scoped_release release;
    lrn_forward<double>(yp, sp, xp, p);
  }
  return py::make_tuple(y, scale);
}

py::array lrn_backward_py(py::handle gy_obj, py::handle x_obj, py::handle y_obj, py::handle s_obj, int64_t size,
                          double alpha, double beta, double k) {
  const char* fn = "local_response_norm_backward";
  py::array gy = dense(require_float_array(gy_obj, fn, "grad_output", 4));
  py::array x = dense(require_float_array(x_obj, fn, "input", 4));
  py::array y = dense(require_float_array(y_obj, fn, "output", 4));
  py::array s = dense(require_float_array(s_obj, fn, "scale", 4));
  require_same_dtype(gy, "grad_output", x, "input", fn);
  require_same_dtype(gy, "grad_output", y, "output", fn);
  require_same_dtype(gy, "grad_output", s, "scale", fn);
  const LrnParams p = lrn_params(fn, gy, size, alpha, beta, k);
  require_shape(x, fn, "input", {p.n, p.c, p.h, p.w});
  require_shape(y, fn, "output", {p.n, p.c, p.h, p.w});
  require_shape(s, fn, "scale", {p.n, p.c, p.h, p.w});
  py::array gx = new_array(gy.dtype(), std::vector<py::ssize_t>{p.n, p.c, p.h, p.w});
  if (dtype_of(gy) == DType::f32) {
    float* gxp = data<float>(gx);
    const float *gyp = cdata<float>(gy), *xp = cdata<float>(x), *yp = cdata<float>(y), *sp = cdata<float>(s);
    py::gil_scoped_release release;
    lrn_backward<float>(gxp, gyp, xp, yp, sp, p);
  } else {
    double* gxp = data<double>(gx);
    const double *gyp = cdata<double>(gy), *xp = cdata<double>(x), *yp = cdata<double>(y), *sp = cdata<double>(s);
    py::gil_scoped_release release;
    lrn_backward<double>(gxp, gyp, xp, yp, sp, p);
  }
  return gx;
}

}  // namespace

void bind_lrn(py::module_& m) {
  m.def("local_response_norm_forward", &lrn_forward_py, py::arg("input"), py::arg("size"), py::arg("alpha"),
        py::arg("beta"), py::arg("k"), "(output, scale) of LRN (see cnnx.kernels.local_response_norm_forward).");
  m.def("local_response_norm_backward", &lrn_backward_py, py::arg("grad_output"), py::arg("input"),
        py::arg("output"), py::arg("scale"), py::arg("size"), py::arg("alpha"), py::arg("beta"), py::arg("k"),
        "grad_input of LRN (see cnnx.kernels.local_response_norm_backward).");
}

}  // namespace bind
}  // namespace cnnx
