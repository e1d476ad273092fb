#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include "arrays.h"
#include "cnnx/gemm.h"

namespace cnnx {
namespace bind {

namespace {

std::string shape_str(std::int64_t r, std::int64_t c) {
  return "(" + std::to_string(r) + ", " + std::to_string(c) + ")";
}

// A matrix the kernel can read in place: a copy is made when the layout is not strided-2-D or
// when it overlaps `out` (the kernel contract forbids overlap; numpy's matmul allows it, so do we).
MatrixView readable_view(py::array& a, const py::array& out) {
  MatrixView v{};
  if (!matrix_view(a, &v) || may_overlap(a, out)) {
    a = c_contiguous_copy(a);
    matrix_view(a, &v);
  }
  return v;
}

py::array gemm_py(py::handle a_obj, py::handle b_obj, py::handle out_obj, bool trans_a, bool trans_b,
                  double alpha, double beta) {
  const char* fn = "gemm";
  py::array a = require_float_array(a_obj, fn, "a", 2);
  py::array b = require_float_array(b_obj, fn, "b", 2);
  require_same_dtype(a, "a", b, "b", fn);
  const std::int64_t m = trans_a ? a.shape(1) : a.shape(0), k = trans_a ? a.shape(0) : a.shape(1);
  const std::int64_t kb = trans_b ? b.shape(1) : b.shape(0), n = trans_b ? b.shape(0) : b.shape(1);
  if (k != kb)
    throw py::value_error("gemm(): inner dimensions differ: op(a) has shape " + shape_str(m, k) +
                          " but op(b) has shape " + shape_str(kb, n) + " (trans_a=" +
                          (trans_a ? "True" : "False") + ", trans_b=" + (trans_b ? "True" : "False") + ")");

  py::array out;
  MatrixView cv{};
  if (out_obj.is_none()) {
    if (beta != 0.0)
      throw py::value_error("gemm(): beta must be 0 when out is not given, got " + std::to_string(beta));
    out = new_array(a.dtype(), std::vector<py::ssize_t>{m, n});
    matrix_view(out, &cv);
  } else {
    out = require_float_array(out_obj, fn, "out", 2);
    require_same_dtype(a, "a", out, "out", fn);
    if (out.shape(0) != m || out.shape(1) != n)
      throw py::value_error("gemm(): argument 'out' must have shape " + shape_str(m, n) + ", got " +
                            shape_str(out.shape(0), out.shape(1)));
    if (!out.writeable()) throw py::value_error("gemm(): argument 'out' must be writeable");
    if (!matrix_view(out, &cv))
      throw py::value_error(
          "gemm(): argument 'out' must be an aligned array with unit stride along one dimension "
          "(C or Fortran order, or a slice of one), got strides " +
          std::string(py::str(py::tuple(out.attr("strides")))));
  }
  const MatrixView av = readable_view(a, out);
  const MatrixView bv = readable_view(b, out);

  // A column-major view of a row-major matrix is its transpose: fold storage order into the flags.
  // For a column-major out, compute out^T = op(b)^T @ op(a)^T into its row-major view instead.
  GemmParams p;
  p.k = k;
  p.alpha = alpha;
  p.beta = beta;
  p.ldc = cv.ld;
  const void *pa = av.data, *pb = bv.data;
  if (!cv.col_major) {
    p.m = m, p.n = n;
    p.trans_a = trans_a != av.col_major, p.lda = av.ld;
    p.trans_b = trans_b != bv.col_major, p.ldb = bv.ld;
  } else {
    p.m = n, p.n = m;
    pa = bv.data, pb = av.data;
    p.trans_a = trans_b == bv.col_major, p.lda = bv.ld;
    p.trans_b = trans_a == av.col_major, p.ldb = av.ld;
  }
  const bool f32 = dtype_of(a) == DType::f32;
  {
    py::gil_scoped_release release;
    if (f32)
      cnnx::gemm<float>(static_cast<float*>(cv.data), static_cast<const float*>(pa),
                        static_cast<const float*>(pb), p);
    else
      cnnx::gemm<double>(static_cast<double*>(cv.data), static_cast<const double*>(pa),
                         static_cast<const double*>(pb), p);
  }
  return out;
}

}  // namespace

void bind_gemm(py::module_& m) {
  m.def("gemm", &gemm_py, py::arg("a"), py::arg("b"), py::arg("out"), py::arg("trans_a"),
        py::arg("trans_b"), py::arg("alpha"), py::arg("beta"),
        "out = alpha * op(a) @ op(b) + beta * out (see cnnx.kernels.gemm).");
}

}  // namespace bind
}  // namespace cnnx
