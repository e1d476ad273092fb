// Bindings of cnnx/elementwise.h: validate, allocate, release the GIL, call one kernel entry point.
//
// Arrays of any shape (0-d included) and equal shape and dtype: there is no broadcasting, and
// nothing is cast. Inputs the kernels cannot read in place (strided views, misaligned data) are
// copied first, values unchanged. Arrays that are written (`out`, an in-place input) must be
// writeable and dense, since writing into a copy would silently lose the result. An input that
// shares memory with `out` without being exactly `out` is copied first, as numpy does for
// overlapping ufunc operands; being exactly `out` is the in-place case the kernels allow.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>
#include <vector>

#include "arrays.h"
#include "cnnx/elementwise.h"

namespace cnnx {
namespace bind {

namespace {

std::vector<py::ssize_t> shape_of(const py::array& a) { return {a.shape(), a.shape() + a.ndim()}; }

std::string strides_str(const py::array& a) { return std::string(py::str(py::tuple(a.attr("strides")))); }

// `b` must have the shape of `a` (ValueError naming `b`, expected vs given).
void require_same_shape(const py::array& a, const char* a_name, const py::array& b, const char* b_name,
                        const char* fn) {
  bool same = a.ndim() == b.ndim();
  for (py::ssize_t d = 0; same && d < a.ndim(); ++d) same = a.shape(d) == b.shape(d);
  if (!same)
    argument_error(fn, b_name,
                   "must have the shape of '" + std::string(a_name) + "' " + shape_str(a) + ", got " + shape_str(b) +
                       " (no broadcasting)");
}

// An array the kernel writes in place: writeable and dense.
void require_writable_dense(const py::array& a, const char* fn, const char* name, const char* why) {
  if (!a.writeable()) argument_error(fn, name, std::string("must be writeable (") + why + ")");
  if (!is_dense(a))
    argument_error(fn, name,
                   std::string("must be a C-contiguous, aligned array (") + why + "), got strides " + strides_str(a));
}

// The output: `out` checked against `like` (dtype, shape, writeable, dense), or a new array.
py::array output_for(py::handle out_obj, const py::array& like, const char* like_name, const char* fn) {
  if (out_obj.is_none()) return new_array(like.dtype(), shape_of(like));
  py::array out = require_float_array(out_obj, fn, "out", kAnyNdim);
  require_same_dtype(like, like_name, out, "out", fn);
  require_same_shape(like, like_name, out, "out", fn);
  require_writable_dense(out, fn, "out", "the result is written into it");
  return out;
}

// An input as the kernel reads it next to `out`: dense, and either exactly `out` or apart from it.
py::array readable(const py::array& a, const py::array& out) {
  py::array d = dense(a);
  if (d.data() != out.data() && may_overlap(d, out)) d = c_contiguous_copy(d);
  return d;
}


// The unary forward kernels (relu, tanh, sigmoid): y = f(x), into x when inplace.
using UnaryF32 = void (*)(float*, const float*, std::int64_t);
using UnaryF64 = void (*)(double*, const double*, std::int64_t);

py::array unary_forward(const char* fn, py::handle x_obj, bool inplace, UnaryF32 f32, UnaryF64 f64) {
  py::array x = require_float_array(x_obj, fn, "input", kAnyNdim);
  py::array y;
  if (inplace) {
    require_writable_dense(x, fn, "input", "inplace=True writes the result into it");
    y = x;
  } else {
    x = dense(x);
    y = new_array(x.dtype(), shape_of(x));
  }
  const std::int64_t n = x.size();
  if (dtype_of(x) == DType::f32) {
    float* yp = ptr<float>(y);
    const float* xp = cptr<float>(x);
    py::gil_scoped_release release;
    f32(yp, xp, n);
  } else {
    double* yp = ptr<double>(y);
    const double* xp = cptr<double>(x);
    py::gil_scoped_release release;
    f64(yp, xp, n);
  }
  return y;
}

// The backward kernels that read the forward's output (relu, tanh, sigmoid): grad_x = f(grad_y, y).
using BackwardF32 = void (*)(float*, const float*, const float*, std::int64_t);
using BackwardF64 = void (*)(double*, const double*, const double*, std::int64_t);

py::array unary_backward(const char* fn, py::handle gy_obj, py::handle y_obj, py::handle out_obj, BackwardF32 f32,
                         BackwardF64 f64) {
  py::array gy = require_float_array(gy_obj, fn, "grad_output", kAnyNdim);
  py::array y = require_float_array(y_obj, fn, "output", kAnyNdim);
  require_same_dtype(y, "output", gy, "grad_output", fn);
  require_same_shape(y, "output", gy, "grad_output", fn);
  py::array gx = output_for(out_obj, y, "output", fn);
  gy = readable(gy, gx);
  y = readable(y, gx);
  const std::int64_t n = y.size();
  if (dtype_of(y) == DType::f32) {
    float* gxp = ptr<float>(gx);
    const float *gyp = cptr<float>(gy), *yp = cptr<float>(y);
    py::gil_scoped_release release;
    f32(gxp, gyp, yp, n);
  } else {
    double* gxp = ptr<double>(gx);
    const double *gyp = cptr<double>(gy), *yp = cptr<double>(y);
    py::gil_scoped_release release;
    f64(gxp, gyp, yp, n);
  }
  return gx;
}

py::array relu_forward_py(py::handle x, bool inplace) {
  return unary_forward("relu_forward", x, inplace, &relu_forward<float>, &relu_forward<double>);
}
py::array relu_backward_py(py::handle gy, py::handle y, py::handle out) {
  return unary_backward("relu_backward", gy, y, out, &relu_backward<float>, &relu_backward<double>);
}
py::array tanh_forward_py(py::handle x, bool inplace) {
  return unary_forward("tanh_forward", x, inplace, &tanh_forward<float>, &tanh_forward<double>);
}
py::array tanh_backward_py(py::handle gy, py::handle y, py::handle out) {
  return unary_backward("tanh_backward", gy, y, out, &tanh_backward<float>, &tanh_backward<double>);
}
py::array sigmoid_forward_py(py::handle x, bool inplace) {
  return unary_forward("sigmoid_forward", x, inplace, &sigmoid_forward<float>, &sigmoid_forward<double>);
}
py::array sigmoid_backward_py(py::handle gy, py::handle y, py::handle out) {
  return unary_backward("sigmoid_backward", gy, y, out, &sigmoid_backward<float>, &sigmoid_backward<double>);
}

py::array add_py(py::handle a_obj, py::handle b_obj, py::handle out_obj) {
  const char* fn = "add";
  py::array a = require_float_array(a_obj, fn, "a", kAnyNdim);
  py::array b = require_float_array(b_obj, fn, "b", kAnyNdim);
  require_same_dtype(a, "a", b, "b", fn);
  require_same_shape(a, "a", b, "b", fn);
  py::array y = output_for(out_obj, a, "a", fn);
  a = readable(a, y);
  b = readable(b, y);
  const std::int64_t n = a.size();
  if (dtype_of(a) == DType::f32) {
    float* yp = ptr<float>(y);
    const float *ap = cptr<float>(a), *bp = cptr<float>(b);
    py::gil_scoped_release release;
    add_forward<float>(yp, ap, bp, n);
  } else {
    double* yp = ptr<double>(y);
    const double *ap = cptr<double>(a), *bp = cptr<double>(b);
    py::gil_scoped_release release;
    add_forward<double>(yp, ap, bp, n);
  }
  return y;
}

}  // namespace

void bind_elementwise(py::module_& m) {
  m.def("relu_forward", &relu_forward_py, py::arg("input"), py::arg("inplace"),
        "max(input, 0) elementwise, NaN and -0.0 kept; into input when inplace (see cnnx.kernels.relu_forward).");
  m.def("relu_backward", &relu_backward_py, py::arg("grad_output"), py::arg("output"), py::arg("out"),
        "grad_output where output > 0 (or NaN), else 0 (see cnnx.kernels.relu_backward).");
  m.def("add", &add_py, py::arg("a"), py::arg("b"), py::arg("out"),
        "a + b for arrays of one shape and dtype (see cnnx.kernels.add).");
  m.def("tanh_forward", &tanh_forward_py, py::arg("input"), py::arg("inplace"),
        "tanh(input) elementwise, within 2 ulp (float32) / 4 ulp (float64); into input when inplace "
        "(see cnnx.kernels.tanh_forward).");
  m.def("tanh_backward", &tanh_backward_py, py::arg("grad_output"), py::arg("output"), py::arg("out"),
        "grad_output * (1 - output * output), bitwise numpy's (see cnnx.kernels.tanh_backward).");
  m.def("sigmoid_forward", &sigmoid_forward_py, py::arg("input"), py::arg("inplace"),
        "1 / (1 + exp(-input)) elementwise, without overflow; into input when inplace "
        "(see cnnx.kernels.sigmoid_forward).");
  m.def("sigmoid_backward", &sigmoid_backward_py, py::arg("grad_output"), py::arg("output"), py::arg("out"),
        "grad_output * output * (1 - output), bitwise numpy's (see cnnx.kernels.sigmoid_backward).");
}

}  // namespace bind
}  // namespace cnnx
