// Argument checking and array views shared by the bindings. Every check raises TypeError or
// ValueError naming the function, the argument, what was expected and what was given; nothing is
// converted silently (a float64 array passed where float32 is needed is an error, not a cast).
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <vector>

namespace cnnx {
namespace bind {

namespace py = pybind11;

enum class DType { f32, f64 };

std::string describe_type(py::handle obj);  // "list", "numpy.ndarray of int64", ...

// `obj` must be a numpy.ndarray of native-endian float32 or float64 with `ndim` dimensions
// (any number of them when ndim is kAnyNdim).
constexpr int kAnyNdim = -1;
py::array require_float_array(py::handle obj, const char* fn, const char* name, int ndim);
DType dtype_of(const py::array& a);
const char* dtype_name(DType d);
void require_same_dtype(const py::array& a, const char* a_name, const py::array& b,
                        const char* b_name, const char* fn);

// A 2-D array as a strided matrix: element (i, j) at data[i * ld + j] when !col_major, or at
// data[j * ld + i] when col_major. matrix_view() returns false when the array has no such layout
// (negative or non-unit strides in both dimensions, misaligned data).
struct MatrixView {
  void* data;
  std::int64_t rows, cols, ld;
  bool col_major;
};
bool matrix_view(const py::array& a, MatrixView* out);

// A copy in C order (used for inputs whose layout the kernels cannot read in place).
py::array c_contiguous_copy(const py::array& a);

// True when `a` is C-contiguous and aligned: kernels can read (or write) it in place.
bool is_dense(const py::array& a);

// `a` itself when it is dense, else a C-ordered copy (values and dtype unchanged).
py::array dense(const py::array& a);

// A new C-order array for a kernel's output, contents undefined. Large ones come from a cache of
// blocks freed by earlier outputs (alloc.cpp), so steady-state calls do not page-fault.
py::array new_array(const py::dtype& dtype, const std::vector<py::ssize_t>& shape);

// `obj` must be a numpy.ndarray of native int64 with `ndim` dimensions (argmax indices).
py::array require_int64_array(py::handle obj, const char* fn, const char* name, int ndim);

// "(2, 3, 5, 7)"
std::string shape_str(const py::array& a);
std::string tuple_str(std::initializer_list<std::int64_t> values);

// `a` must have exactly this shape.
void require_shape(const py::array& a, const char* fn, const char* name, std::initializer_list<std::int64_t> shape);

// The product of `dims` (times `itemsize` bytes) must fit in int64; else ValueError naming `name`.
std::int64_t checked_elements(const char* fn, const char* name, std::initializer_list<std::int64_t> dims,
                              std::int64_t itemsize);

// ValueError "fn(): argument 'name' <what>".
[[noreturn]] void argument_error(const char* fn, const char* name, const std::string& what);

// True when the memory spans of the two arrays intersect.
bool may_overlap(const py::array& a, const py::array& b);

// Typed data pointers of an array already checked for its dtype.
template <class T>
T* ptr(py::array& a) {
  return static_cast<T*>(a.mutable_data());
}
template <class T>
T* ptr(std::optional<py::array>& a) {
  return a ? ptr<T>(*a) : nullptr;
}
template <class T>
const T* cptr(const py::array& a) {
  return static_cast<const T*>(a.data());
}
template <class T>
const T* cptr(const std::optional<py::array>& a) {
  return a ? cptr<T>(*a) : nullptr;
}

}  // namespace bind
}  // namespace cnnx
