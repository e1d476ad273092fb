#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <array>

#include "arrays.h"
#include "cnnx/conv.h"

namespace cnnx {
namespace bind {

namespace {

using Pair = std::array<std::int64_t, 2>;

// Builds and checks the parameters; the messages name the argument at fault.
// `ws` is the weight's shape (K, C/G, KH, KW).
using Shape4 = std::array<std::int64_t, 4>;
std::string weight_str(const Shape4& s) { return tuple_str({s[0], s[1], s[2], s[3]}); }
Shape4 shape4(const py::array& a) { return {a.shape(0), a.shape(1), a.shape(2), a.shape(3)}; }

Conv2dParams make_params(const char* fn, std::int64_t n, std::int64_t c, std::int64_t h, std::int64_t w,
                         const Shape4& ws, Pair stride, Pair padding, Pair dilation, std::int64_t groups) {
  Conv2dParams p;
  p.n = n, p.c = c, p.h = h, p.w = w;
  p.k = ws[0], p.kh = ws[2], p.kw = ws[3];
  p.stride_h = stride[0], p.stride_w = stride[1];
  p.pad_h = padding[0], p.pad_w = padding[1];
  p.dil_h = dilation[0], p.dil_w = dilation[1];
  p.groups = groups;
  const std::string f = std::string(fn) + "(): ";
  if (groups < 1) throw py::value_error(f + "argument 'groups' must be positive, got " + std::to_string(groups));
  if (c % groups != 0)
    throw py::value_error(f + "input channels (" + std::to_string(c) + ") must be divisible by groups (" +
                          std::to_string(groups) + ")");
  if (p.k % groups != 0)
    throw py::value_error(f + "weight of shape " + weight_str(ws) + ": out channels (" +
                          std::to_string(p.k) + ") must be divisible by groups (" + std::to_string(groups) + ")");
  if (ws[1] * groups != c)
    throw py::value_error(f + "weight of shape " + weight_str(ws) + " expects " +
                          std::to_string(ws[1] * groups) + " input channels (in/groups = " +
                          std::to_string(ws[1]) + ", groups = " + std::to_string(groups) +
                          "), but the input has " + std::to_string(c));
  if (p.kh < 1 || p.kw < 1)
    throw py::value_error(f + "weight of shape " + weight_str(ws) + " has an empty kernel");
  const std::string err = conv2d_check(p);
  if (err.rfind("sizes overflow", 0) == 0)
    throw py::value_error(f + "input size " + std::to_string(h) + "x" + std::to_string(w) + " with weight " +
                          weight_str(ws) + ", padding " + std::to_string(p.pad_h) + "x" + std::to_string(p.pad_w) +
                          ", dilation " + std::to_string(p.dil_h) + "x" + std::to_string(p.dil_w) + " and stride " +
                          std::to_string(p.stride_h) + "x" + std::to_string(p.stride_w) +
                          " gives sizes that overflow 64-bit indexing");
  if (err.rfind("kernel size", 0) == 0)
    throw py::value_error(f + "kernel " + std::to_string(p.kh) + "x" + std::to_string(p.kw) + " (dilation " +
                          std::to_string(p.dil_h) + "x" + std::to_string(p.dil_w) +
                          ") is larger than the padded input " + std::to_string(h + 2 * p.pad_h) + "x" +
                          std::to_string(w + 2 * p.pad_w));
  if (!err.empty()) throw py::value_error(f + err);
  return p;
}

void require_dim(const char* fn, const char* name, const py::array& a, int dim, std::int64_t expected,
                 const char* what) {
  if (a.shape(dim) != expected)
    throw py::value_error(std::string(fn) + "(): argument '" + name + "' of shape " + shape_str(a) + " has " +
                          std::to_string(a.shape(dim)) + " " + what + ", expected " + std::to_string(expected));
}

template <class F>
void by_dtype(DType d, F&& f) {
  py::gil_scoped_release release;
  if (d == DType::f32)
    f(float{});
  else
    f(double{});
}

// scale/shift (both or neither) and relu: the optional per-channel tail (ConvEpilogue).
py::array forward_py(py::handle x_obj, py::handle w_obj, py::handle b_obj, Pair stride, Pair padding,
                     Pair dilation, std::int64_t groups, py::handle scale_obj, py::handle shift_obj, bool relu) {
  const char* fn = "conv2d_forward";
  py::array x = dense(require_float_array(x_obj, fn, "input", 4));
  py::array w = dense(require_float_array(w_obj, fn, "weight", 4));
  require_same_dtype(x, "input", w, "weight", fn);
  py::array b;  // stays an empty array (not a null handle) when bias is None
  const bool has_bias = !b_obj.is_none();
  if (has_bias) {
    b = dense(require_float_array(b_obj, fn, "bias", 1));
    require_same_dtype(x, "input", b, "bias", fn);
    require_dim(fn, "bias", b, 0, w.shape(0), "elements");
  }
  if (scale_obj.is_none() != shift_obj.is_none())
    throw py::value_error(std::string(fn) + "(): arguments 'scale' and 'shift' must be given together");
  py::array scale, shift;
  const bool affine = !scale_obj.is_none();
  if (affine) {
    scale = dense(require_float_array(scale_obj, fn, "scale", 1));
    shift = dense(require_float_array(shift_obj, fn, "shift", 1));
    require_same_dtype(x, "input", scale, "scale", fn);
    require_same_dtype(x, "input", shift, "shift", fn);
    require_dim(fn, "scale", scale, 0, w.shape(0), "elements");
    require_dim(fn, "shift", shift, 0, w.shape(0), "elements");
  }
  const Conv2dParams p = make_params(fn, x.shape(0), x.shape(1), x.shape(2), x.shape(3), shape4(w), stride,
                                     padding, dilation, groups);
  py::array y = new_array(x.dtype(), std::vector<py::ssize_t>{p.n, p.k, p.oh, p.ow});
  const void *xd = x.data(), *wd = w.data(), *bd = has_bias ? b.data() : nullptr;
  const void *sd = affine ? scale.data() : nullptr, *hd = affine ? shift.data() : nullptr;
  void* yd = y.mutable_data();
  by_dtype(dtype_of(x), [&](auto t) {
    using T = decltype(t);
    if (!affine && !relu) {
      conv2d_forward<T>(static_cast<T*>(yd), static_cast<const T*>(xd), static_cast<const T*>(wd),
                        static_cast<const T*>(bd), p);
      return;
    }
    ConvEpilogue<T> e;
    e.scale = static_cast<const T*>(sd);
    e.shift = static_cast<const T*>(hd);
    e.relu = relu;
    conv2d_forward_fused<T>(static_cast<T*>(yd), static_cast<const T*>(xd), static_cast<const T*>(wd),
                            static_cast<const T*>(bd), e, p);
  });
  return y;
}

py::array backward_input_py(py::handle dy_obj, py::handle w_obj, Pair input_size, Pair stride, Pair padding,
                            Pair dilation, std::int64_t groups) {
  const char* fn = "conv2d_backward_input";
  py::array dy = dense(require_float_array(dy_obj, fn, "grad_output", 4));
  py::array w = dense(require_float_array(w_obj, fn, "weight", 4));
  require_same_dtype(dy, "grad_output", w, "weight", fn);
  if (input_size[0] < 1 || input_size[1] < 1)
    throw py::value_error(std::string(fn) + "(): argument 'input_size' must be positive, got (" +
                          std::to_string(input_size[0]) + ", " + std::to_string(input_size[1]) + ")");
  const Conv2dParams p = make_params(fn, dy.shape(0), w.shape(1) * groups, input_size[0], input_size[1],
                                     shape4(w), stride, padding, dilation, groups);
  require_dim(fn, "grad_output", dy, 1, p.k, "channels");
  require_dim(fn, "grad_output", dy, 2, p.oh, "rows (the output height for this input_size)");
  require_dim(fn, "grad_output", dy, 3, p.ow, "columns (the output width for this input_size)");
  py::array dx = new_array(dy.dtype(), std::vector<py::ssize_t>{p.n, p.c, p.h, p.w});
  const void *dyd = dy.data(), *wd = w.data();
  void* dxd = dx.mutable_data();
  by_dtype(dtype_of(dy), [&](auto t) {
    using T = decltype(t);
    conv2d_backward_input<T>(static_cast<T*>(dxd), static_cast<const T*>(dyd), static_cast<const T*>(wd), p);
  });
  return dx;
}

py::tuple backward_weight_py(py::handle x_obj, py::handle dy_obj, Pair kernel_size, Pair stride, Pair padding,
                             Pair dilation, std::int64_t groups, bool with_bias) {
  const char* fn = "conv2d_backward_weight";
  py::array x = dense(require_float_array(x_obj, fn, "input", 4));
  py::array dy = dense(require_float_array(dy_obj, fn, "grad_output", 4));
  require_same_dtype(x, "input", dy, "grad_output", fn);
  if (kernel_size[0] < 1 || kernel_size[1] < 1)
    throw py::value_error(std::string(fn) + "(): argument 'kernel_size' must be positive, got (" +
                          std::to_string(kernel_size[0]) + ", " + std::to_string(kernel_size[1]) + ")");
  if (groups < 1) throw py::value_error(std::string(fn) + "(): argument 'groups' must be positive");
  const std::int64_t cg = x.shape(1) / groups;
  const Conv2dParams p = make_params(fn, x.shape(0), x.shape(1), x.shape(2), x.shape(3),
                                     {dy.shape(1), cg, kernel_size[0], kernel_size[1]}, stride, padding,
                                     dilation, groups);
  require_dim(fn, "grad_output", dy, 0, p.n, "images (the input's batch)");
  require_dim(fn, "grad_output", dy, 2, p.oh, "rows (the output height)");
  require_dim(fn, "grad_output", dy, 3, p.ow, "columns (the output width)");
  py::array dw = new_array(x.dtype(), std::vector<py::ssize_t>{p.k, cg, p.kh, p.kw});
  py::object db = py::none();
  void* dbd = nullptr;
  if (with_bias) {
    py::array dba = new_array(x.dtype(), std::vector<py::ssize_t>{p.k});
    dbd = dba.mutable_data();
    db = dba;
  }
  const void *xd = x.data(), *dyd = dy.data();
  void* dwd = dw.mutable_data();
  by_dtype(dtype_of(x), [&](auto t) {
    using T = decltype(t);
    conv2d_backward_weight<T>(static_cast<T*>(dwd), static_cast<T*>(dbd), static_cast<const T*>(xd),
                              static_cast<const T*>(dyd), p);
  });
  return py::make_tuple(dw, db);
}

// Shapes only (no arrays): the checks of the passes themselves, through make_params.
std::string algorithm_py(const std::string& pass, std::array<std::int64_t, 4> in, Shape4 ws, Pair stride,
                         Pair padding, Pair dilation, std::int64_t groups, const std::string& dtype) {
  const char* fn = "conv2d_algorithm";
  ConvPass which;
  if (pass == "forward")
    which = ConvPass::kForward;
  else if (pass == "backward_input")
    which = ConvPass::kBackwardInput;
  else if (pass == "backward_weight")
    which = ConvPass::kBackwardWeight;
  else
    throw py::value_error(std::string(fn) + "(): argument 'pass_' must be 'forward', 'backward_input' or " +
                          "'backward_weight', got '" + pass + "'");
  if (dtype != "float32" && dtype != "float64")
    throw py::value_error(std::string(fn) + "(): argument 'dtype' must be 'float32' or 'float64', got '" + dtype + "'");
  for (int i = 0; i < 4; ++i) {
    if (in[i] < 0)
      throw py::value_error(std::string(fn) + "(): argument 'input_shape' must not be negative, got " +
                            tuple_str({in[0], in[1], in[2], in[3]}));
    if (ws[i] < 0)
      throw py::value_error(std::string(fn) + "(): argument 'weight_shape' must not be negative, got " +
                            weight_str(ws));
  }
  const Conv2dParams p = make_params(fn, in[0], in[1], in[2], in[3], ws, stride, padding, dilation, groups);
  return dtype == "float32" ? conv2d_algorithm<float>(p, which) : conv2d_algorithm<double>(p, which);
}

}  // namespace

void bind_conv(py::module_& m) {
  m.def("conv2d_forward", &forward_py, py::arg("input"), py::arg("weight"), py::arg("bias"), py::arg("stride"),
        py::arg("padding"), py::arg("dilation"), py::arg("groups"), py::arg("scale") = py::none(),
        py::arg("shift") = py::none(), py::arg("relu") = false, "See cnnx.kernels.conv2d_forward.");
  m.def("conv2d_backward_input", &backward_input_py, py::arg("grad_output"), py::arg("weight"),
        py::arg("input_size"), py::arg("stride"), py::arg("padding"), py::arg("dilation"), py::arg("groups"),
        "See cnnx.kernels.conv2d_backward_input.");
  m.def("conv2d_backward_weight", &backward_weight_py, py::arg("input"), py::arg("grad_output"),
        py::arg("kernel_size"), py::arg("stride"), py::arg("padding"), py::arg("dilation"), py::arg("groups"),
        py::arg("bias"), "See cnnx.kernels.conv2d_backward_weight.");
  m.def("conv2d_algorithm", &algorithm_py, py::arg("pass_"), py::arg("input_shape"), py::arg("weight_shape"),
        py::arg("stride"), py::arg("padding"), py::arg("dilation"), py::arg("groups"), py::arg("dtype"),
        "See cnnx.kernels.conv2d_algorithm.");
}

}  // namespace bind
}  // namespace cnnx
