#include "arrays.h"

#include <algorithm>

namespace cnnx {
namespace bind {

std::string describe_type(py::handle obj) {
  if (py::isinstance<py::array>(obj)) {
    auto a = py::reinterpret_borrow<py::array>(obj);
    return "numpy.ndarray of " + std::string(py::str(a.dtype()));
  }
  return std::string(py::str(py::type::handle_of(obj).attr("__name__")));
}

DType dtype_of(const py::array& a) { return a.dtype().num() == py::dtype::of<float>().num() ? DType::f32 : DType::f64; }

const char* dtype_name(DType d) { return d == DType::f32 ? "float32" : "float64"; }

py::array require_float_array(py::handle obj, const char* fn, const char* name, int ndim) {
  if (!py::isinstance<py::array>(obj))
    throw py::type_error(std::string(fn) + "(): argument '" + name +
                         "' must be a numpy.ndarray of float32 or float64, got " + describe_type(obj));
  auto a = py::reinterpret_borrow<py::array>(obj);
  const py::dtype dt = a.dtype();
  const int num = dt.num();
  const bool is_float = num == py::dtype::of<float>().num() || num == py::dtype::of<double>().num();
  const bool native = dt.attr("isnative").cast<bool>();
  if (!is_float || !native)
    throw py::type_error(std::string(fn) + "(): argument '" + name +
                         "' must have dtype float32 or float64 (native byte order), got " +
                         std::string(py::str(dt)));
  if (ndim != kAnyNdim && a.ndim() != ndim)
    throw py::value_error(std::string(fn) + "(): argument '" + name + "' must be " +
                          std::to_string(ndim) + "-D, got " + std::to_string(a.ndim()) +
                          "-D array of shape " + std::string(py::str(py::tuple(a.attr("shape")))));
  return a;
}

void require_same_dtype(const py::array& a, const char* a_name, const py::array& b,
                        const char* b_name, const char* fn) {
  if (dtype_of(a) != dtype_of(b))
    throw py::type_error(std::string(fn) + "(): argument '" + b_name + "' must have the dtype of '" +
                         a_name + "' (" + dtype_name(dtype_of(a)) + "), got " + dtype_name(dtype_of(b)));
}

bool matrix_view(const py::array& a, MatrixView* out) {
  const std::int64_t s = a.itemsize();
  const std::int64_t rows = a.shape(0), cols = a.shape(1);
  const std::int64_t st0 = a.strides(0), st1 = a.strides(1);
  if (reinterpret_cast<std::uintptr_t>(a.data()) % s != 0) return false;
  *out = {const_cast<void*>(a.data()), rows, cols, 0, false};
  if (rows == 0 || cols == 0) {  // nothing is read or written; numpy reports strides (0, 0) here
    out->ld = std::max<std::int64_t>(cols, 1);
    return true;
  }
  // A dimension of extent <= 1 has a meaningless stride; only the other one matters.
  const bool row_ok = (cols <= 1 || st1 == s) && (rows <= 1 || (st0 > 0 && st0 % s == 0 && st0 / s >= cols));
  if (row_ok) {
    out->ld = rows <= 1 ? std::max<std::int64_t>(cols, 1) : st0 / s;
    return true;
  }
  const bool col_ok = (rows <= 1 || st0 == s) && (cols <= 1 || (st1 > 0 && st1 % s == 0 && st1 / s >= rows));
  if (col_ok) {
    out->col_major = true;
    out->ld = cols <= 1 ? std::max<std::int64_t>(rows, 1) : st1 / s;
    return true;
  }
  return false;
}

py::array c_contiguous_copy(const py::array& a) {
  return py::module_::import("numpy").attr("array")(a, py::arg("order") = "C", py::arg("copy") = true);
}

bool is_dense(const py::array& a) {
  const bool aligned = reinterpret_cast<std::uintptr_t>(a.data()) % a.itemsize() == 0;
  return aligned && (a.flags() & py::array::c_style);
}

py::array dense(const py::array& a) { return is_dense(a) ? a : c_contiguous_copy(a); }

py::array require_int64_array(py::handle obj, const char* fn, const char* name, int ndim) {
  if (!py::isinstance<py::array>(obj))
    throw py::type_error(std::string(fn) + "(): argument '" + name + "' must be a numpy.ndarray of int64, got " +
                         describe_type(obj));
  auto a = py::reinterpret_borrow<py::array>(obj);
  const py::dtype dt = a.dtype();
  if (dt.num() != py::dtype::of<std::int64_t>().num() || !dt.attr("isnative").cast<bool>())
    throw py::type_error(std::string(fn) + "(): argument '" + name + "' must have dtype int64, got " +
                         std::string(py::str(dt)));
  if (a.ndim() != ndim)
    throw py::value_error(std::string(fn) + "(): argument '" + name + "' must be " + std::to_string(ndim) +
                          "-D, got " + std::to_string(a.ndim()) + "-D array of shape " + shape_str(a));
  return a;
}

std::string shape_str(const py::array& a) { return std::string(py::str(py::tuple(a.attr("shape")))); }

std::string tuple_str(std::initializer_list<std::int64_t> values) {
  std::string s = "(";
  for (std::int64_t v : values) s += (s.size() > 1 ? ", " : "") + std::to_string(v);
  return s + (values.size() == 1 ? ",)" : ")");
}

void require_shape(const py::array& a, const char* fn, const char* name, std::initializer_list<std::int64_t> shape) {
  bool same = a.ndim() == static_cast<py::ssize_t>(shape.size());
  py::ssize_t d = 0;
  for (std::int64_t v : shape) same = same && a.shape(d++) == v;
  if (!same) argument_error(fn, name, "must have shape " + tuple_str(shape) + ", got " + shape_str(a));
}

std::int64_t checked_elements(const char* fn, const char* name, std::initializer_list<std::int64_t> dims,
                              std::int64_t itemsize) {
  std::int64_t n = 1, bytes = 0;
  for (std::int64_t d : dims)
    if (d < 0 || __builtin_mul_overflow(n, d, &n))
      argument_error(fn, name, "gives an array of " + tuple_str(dims) + " elements, which 64-bit indexing cannot address");
  if (__builtin_mul_overflow(n, itemsize, &bytes))
    argument_error(fn, name, "gives an array of " + tuple_str(dims) + " elements, which 64-bit indexing cannot address");
  return n;
}

void argument_error(const char* fn, const char* name, const std::string& what) {
  throw py::value_error(std::string(fn) + "(): argument '" + name + "' " + what);
}

namespace {
// [lo, hi) byte span an array's elements occupy (empty arrays occupy nothing).
void byte_span(const py::array& a, std::uintptr_t* lo, std::uintptr_t* hi) {
  auto base = reinterpret_cast<std::uintptr_t>(a.data());
  *lo = *hi = base;
  if (a.size() == 0) return;
  std::intptr_t first = 0, last = 0;
  for (py::ssize_t d = 0; d < a.ndim(); ++d) {
    const std::intptr_t extent = (a.shape(d) - 1) * a.strides(d);
    (extent < 0 ? first : last) += extent;
  }
  *lo = base + first;
  *hi = base + last + a.itemsize();
}
}  // namespace

bool may_overlap(const py::array& a, const py::array& b) {
  std::uintptr_t alo, ahi, blo, bhi;
  byte_span(a, &alo, &ahi);
  byte_span(b, &blo, &bhi);
  return alo < bhi && blo < ahi;
}

}  // namespace bind
}  // namespace cnnx
