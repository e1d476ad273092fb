// Bindings of cnnx/pool.h: validate every argument (PyTorch's rules and messages where it has
// them), allocate the outputs, release the GIL, call one kernel entry point. Size arguments arrive
// as separate ints (the Python wrappers in cnnx/kernels.py turn int-or-pair into pairs).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include "arrays.h"
#include "cnnx/pool.h"

namespace cnnx {
namespace bind {

namespace {

using std::int64_t;

struct Window {
  int64_t kh, kw, sh, sw, ph, pw, dh, dw;
  bool ceil_mode;
};

// One output extent with every intermediate of pool_output_size checked against int64 overflow.
int64_t output_extent(const char* fn, int64_t in, int64_t k, int64_t s, int64_t p, int64_t d, bool ceil_mode) {
  int64_t effective, padded, reach;
  if (__builtin_mul_overflow(k - 1, d, &effective) || __builtin_add_overflow(in, 2 * p, &padded) ||
      __builtin_add_overflow(padded, s, &reach))
    argument_error(fn, "kernel_size",
                   "with this stride, padding and dilation overflows 64-bit index arithmetic (kernel_size " +
                       std::to_string(k) + ", stride " + std::to_string(s) + ", padding " + std::to_string(p) +
                       ", dilation " + std::to_string(d) + ")");
  return pool_output_size(in, k, s, p, d, ceil_mode);
}

// Checks a pooling window against PyTorch's rules and computes the output size for an input of
// n x c x h x w (`input_name` is the argument that gave h and w, named in the errors).
Pool2dParams pool_params(const char* fn, int64_t n, int64_t c, int64_t h, int64_t w, const Window& a,
                         const char* input_name) {
  if (a.kh < 1 || a.kw < 1) argument_error(fn, "kernel_size", "must be positive, got " + tuple_str({a.kh, a.kw}));
  if (a.sh < 1 || a.sw < 1) argument_error(fn, "stride", "must be positive, got " + tuple_str({a.sh, a.sw}));
  if (a.dh < 1 || a.dw < 1) argument_error(fn, "dilation", "must be positive, got " + tuple_str({a.dh, a.dw}));
  if (a.ph < 0 || a.pw < 0) argument_error(fn, "padding", "must be non-negative, got " + tuple_str({a.ph, a.pw}));
  if (a.ph > a.kh / 2 || a.pw > a.kw / 2)
    argument_error(fn, "padding",
                   "must be at most half of kernel_size (pad should be at most half of kernel size, as in "
                   "PyTorch), got padding " + tuple_str({a.ph, a.pw}) + " for kernel_size " +
                       tuple_str({a.kh, a.kw}));
  Pool2dParams p;
  p.n = n, p.c = c, p.h = h, p.w = w;
  p.kh = a.kh, p.kw = a.kw, p.sh = a.sh, p.sw = a.sw, p.ph = a.ph, p.pw = a.pw, p.dh = a.dh, p.dw = a.dw;
  p.oh = output_extent(fn, p.h, p.kh, p.sh, p.ph, p.dh, a.ceil_mode);
  p.ow = output_extent(fn, p.w, p.kw, p.sw, p.pw, p.dw, a.ceil_mode);
  // The padded plane bounds every window offset the kernels form.
  checked_elements(fn, "padding", {p.h + 2 * p.ph, p.w + 2 * p.pw}, 1);
  if (p.oh < 1 || p.ow < 1)
    argument_error(fn, input_name,
                   "of spatial size " + tuple_str({p.h, p.w}) + " is too small for kernel_size " +
                       tuple_str({p.kh, p.kw}) + ", stride " + tuple_str({p.sh, p.sw}) + ", padding " +
                       tuple_str({p.ph, p.pw}) + ", dilation " + tuple_str({p.dh, p.dw}) +
                       ": the output size would be " + tuple_str({p.oh, p.ow}) + " (output size is too small)");
  return p;
}

py::array new_like(const py::array& x, std::initializer_list<int64_t> shape) {
  return new_array(x.dtype(), std::vector<py::ssize_t>(shape.begin(), shape.end()));
}

template <class T>
T* data(py::array& a) {
  return static_cast<T*>(a.mutable_data());
}
template <class T>
const T* cdata(const py::array& a) {
  return static_cast<const T*>(a.data());
}

py::tuple max_pool2d_forward_py(py::handle x_obj, int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t ph,
                                int64_t pw, int64_t dh, int64_t dw, bool ceil_mode) {
  const char* fn = "max_pool2d_forward";
  py::array x = dense(require_float_array(x_obj, fn, "input", 4));
  const Pool2dParams p =
      pool_params(fn, x.shape(0), x.shape(1), x.shape(2), x.shape(3), {kh, kw, sh, sw, ph, pw, dh, dw, ceil_mode}, "input");
  checked_elements(fn, "input", {p.n, p.c, p.oh, p.ow}, 8);
  py::array y = new_like(x, {p.n, p.c, p.oh, p.ow});
  py::array idx = new_array(py::dtype::of<int64_t>(), std::vector<py::ssize_t>{p.n, p.c, p.oh, p.ow});
  int64_t* ip = static_cast<int64_t*>(idx.mutable_data());
  if (dtype_of(x) == DType::f32) {
    float* yp = data<float>(y);
    const float* xp = cdata<float>(x);
    py::gil_scoped_release release;
    max_pool2d_forward<float>(yp, ip, xp, p);
  } else {
    double* yp = data<double>(y);
    const double* xp = cdata<double>(x);
    py::gil_scoped_release release;
    max_pool2d_forward<double>(yp, ip, xp, p);
  }
  return py::make_tuple(y, idx);
}

py::array max_pool2d_backward_py(py::handle gy_obj, py::handle idx_obj, int64_t h, int64_t w) {
  const char* fn = "max_pool2d_backward";
  py::array gy = dense(require_float_array(gy_obj, fn, "grad_output", 4));
  py::array idx = dense(require_int64_array(idx_obj, fn, "indices", 4));
  for (int d = 0; d < 4; ++d)
    if (idx.shape(d) != gy.shape(d))
      argument_error(fn, "indices", "must have the shape of 'grad_output' " + shape_str(gy) + ", got " + shape_str(idx));
  if (h < 0 || w < 0) argument_error(fn, "input_size", "must be non-negative, got " + tuple_str({h, w}));
  Pool2dParams p;
  p.n = gy.shape(0), p.c = gy.shape(1), p.oh = gy.shape(2), p.ow = gy.shape(3), p.h = h, p.w = w;
  checked_elements(fn, "input_size", {p.n, p.c, p.h, p.w}, 8);
  py::array gx = new_like(gy, {p.n, p.c, p.h, p.w});
  const int64_t* ip = cdata<int64_t>(idx);
  bool ok;
  if (dtype_of(gy) == DType::f32) {
    float* gxp = data<float>(gx);
    const float* gyp = cdata<float>(gy);
    py::gil_scoped_release release;
    ok = max_pool2d_backward<float>(gxp, gyp, ip, p);
  } else {
    double* gxp = data<double>(gx);
    const double* gyp = cdata<double>(gy);
    py::gil_scoped_release release;
    ok = max_pool2d_backward<double>(gxp, gyp, ip, p);
  }
  if (!ok)
    argument_error(fn, "indices",
                   "holds positions outside the input plane: every index must be -1 or in [0, " +
                       std::to_string(h * w) + ") for input_size " + tuple_str({h, w}));
  return gx;
}

Pool2dParams avg_params(const char* fn, int64_t n, int64_t c, int64_t h, int64_t w, const char* input_name,
                        int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t ph, int64_t pw, bool ceil_mode,
                        bool count_include_pad, int64_t divisor_override) {
  Pool2dParams p = pool_params(fn, n, c, h, w, {kh, kw, sh, sw, ph, pw, 1, 1, ceil_mode}, input_name);
  p.count_include_pad = count_include_pad;
  p.divisor_override = divisor_override;
  return p;
}

py::array avg_pool2d_forward_py(py::handle x_obj, int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t ph,
                                int64_t pw, bool ceil_mode, bool count_include_pad, int64_t divisor_override) {
  const char* fn = "avg_pool2d_forward";
  py::array x = dense(require_float_array(x_obj, fn, "input", 4));
  const Pool2dParams p = avg_params(fn, x.shape(0), x.shape(1), x.shape(2), x.shape(3), "input", kh, kw, sh, sw, ph,
                                    pw, ceil_mode, count_include_pad, divisor_override);
  checked_elements(fn, "input", {p.n, p.c, p.oh, p.ow}, 8);
  py::array y = new_like(x, {p.n, p.c, p.oh, p.ow});
  if (dtype_of(x) == DType::f32) {
    float* yp = data<float>(y);
    const float* xp = cdata<float>(x);
    py::gil_scoped_release release;
    avg_pool2d_forward<float>(yp, xp, p);
  } else {
    double* yp = data<double>(y);
    const double* xp = cdata<double>(x);
    py::gil_scoped_release release;
    avg_pool2d_forward<double>(yp, xp, p);
  }
  return y;
}

py::array avg_pool2d_backward_py(py::handle gy_obj, int64_t h, int64_t w, int64_t kh, int64_t kw, int64_t sh,
                                 int64_t sw, int64_t ph, int64_t pw, bool ceil_mode, bool count_include_pad,
                                 int64_t divisor_override) {
  const char* fn = "avg_pool2d_backward";
  py::array gy = dense(require_float_array(gy_obj, fn, "grad_output", 4));
  if (h < 0 || w < 0) argument_error(fn, "input_size", "must be non-negative, got " + tuple_str({h, w}));
  checked_elements(fn, "input_size", {gy.shape(0), gy.shape(1), h, w}, 8);
  const Pool2dParams p = avg_params(fn, gy.shape(0), gy.shape(1), h, w, "input_size", kh, kw, sh, sw, ph, pw,
                                    ceil_mode, count_include_pad, divisor_override);
  require_shape(gy, fn, "grad_output", {p.n, p.c, p.oh, p.ow});
  py::array gx = new_like(gy, {p.n, p.c, p.h, p.w});
  if (dtype_of(gy) == DType::f32) {
    float* gxp = data<float>(gx);
    const float* gyp = cdata<float>(gy);
    py::gil_scoped_release release;
    avg_pool2d_backward<float>(gxp, gyp, p);
  } else {
    double* gxp = data<double>(gx);
    const double* gyp = cdata<double>(gy);
    py::gil_scoped_release release;
    avg_pool2d_backward<double>(gxp, gyp, p);
  }
  return gx;
}

py::array adaptive_avg_pool2d_forward_py(py::handle x_obj, int64_t oh, int64_t ow) {
  const char* fn = "adaptive_avg_pool2d_forward";
  py::array x = dense(require_float_array(x_obj, fn, "input", 4));
  if (oh < 1 || ow < 1) argument_error(fn, "output_size", "must be positive, got " + tuple_str({oh, ow}));
  AdaptivePool2dParams p{x.shape(0), x.shape(1), x.shape(2), x.shape(3), oh, ow};
  if (p.h < 1 || p.w < 1)
    argument_error(fn, "input", "must have non-zero height and width, got shape " + shape_str(x));
  // Window bounds compute (i + 1) * H: that product must fit.
  checked_elements(fn, "output_size", {p.h + 1, p.oh + 1, p.w + 1, p.ow + 1}, 1);
  checked_elements(fn, "output_size", {p.n, p.c, p.oh, p.ow}, 8);
  py::array y = new_like(x, {p.n, p.c, p.oh, p.ow});
  if (dtype_of(x) == DType::f32) {
    float* yp = data<float>(y);
    const float* xp = cdata<float>(x);
    py::gil_scoped_release release;
    adaptive_avg_pool2d_forward<float>(yp, xp, p);
  } else {
    double* yp = data<double>(y);
    const double* xp = cdata<double>(x);
    py::gil_scoped_release release;
    adaptive_avg_pool2d_forward<double>(yp, xp, p);
  }
  return y;
}

py::array adaptive_avg_pool2d_backward_py(py::handle gy_obj, int64_t h, int64_t w) {
  const char* fn = "adaptive_avg_pool2d_backward";
  py::array gy = dense(require_float_array(gy_obj, fn, "grad_output", 4));
  if (h < 1 || w < 1) argument_error(fn, "input_size", "must be positive, got " + tuple_str({h, w}));
  AdaptivePool2dParams p{gy.shape(0), gy.shape(1), h, w, gy.shape(2), gy.shape(3)};
  if (p.oh < 1 || p.ow < 1)
    argument_error(fn, "grad_output", "must have non-zero height and width, got shape " + shape_str(gy));
  checked_elements(fn, "input_size", {p.h + 1, p.oh + 1, p.w + 1, p.ow + 1}, 1);
  checked_elements(fn, "input_size", {p.n, p.c, p.h, p.w}, 8);
  py::array gx = new_like(gy, {p.n, p.c, p.h, p.w});
  if (dtype_of(gy) == DType::f32) {
    float* gxp = data<float>(gx);
    const float* gyp = cdata<float>(gy);
    py::gil_scoped_release release;
    adaptive_avg_pool2d_backward<float>(gxp, gyp, p);
  } else {
    double* gxp = data<double>(gx);
    const double* gyp = cdata<double>(gy);
    py::gil_scoped_release release;
    adaptive_avg_pool2d_backward<double>(gxp, gyp, p);
  }
  return gx;
}

}  // namespace

void bind_pool(py::module_& m) {
  m.def("max_pool2d_forward", &max_pool2d_forward_py, py::arg("input"), py::arg("kh"), py::arg("kw"), py::arg("sh"),
        py::arg("sw"), py::arg("ph"), py::arg("pw"), py::arg("dh"), py::arg("dw"), py::arg("ceil_mode"),
        "(output, indices) of 2-D max pooling (see cnnx.kernels.max_pool2d_forward).");
  m.def("max_pool2d_backward", &max_pool2d_backward_py, py::arg("grad_output"), py::arg("indices"), py::arg("h"),
        py::arg("w"), "grad_input of 2-D max pooling (see cnnx.kernels.max_pool2d_backward).");
  m.def("avg_pool2d_forward", &avg_pool2d_forward_py, py::arg("input"), py::arg("kh"), py::arg("kw"), py::arg("sh"),
        py::arg("sw"), py::arg("ph"), py::arg("pw"), py::arg("ceil_mode"), py::arg("count_include_pad"),
        py::arg("divisor_override"), "Output of 2-D average pooling (see cnnx.kernels.avg_pool2d_forward).");
  m.def("avg_pool2d_backward", &avg_pool2d_backward_py, py::arg("grad_output"), py::arg("h"), py::arg("w"),
        py::arg("kh"), py::arg("kw"), py::arg("sh"), py::arg("sw"), py::arg("ph"), py::arg("pw"),
        py::arg("ceil_mode"), py::arg("count_include_pad"), py::arg("divisor_override"),
        "grad_input of 2-D average pooling (see cnnx.kernels.avg_pool2d_backward).");
  m.def("adaptive_avg_pool2d_forward", &adaptive_avg_pool2d_forward_py, py::arg("input"), py::arg("oh"),
        py::arg("ow"), "Output of adaptive average pooling (see cnnx.kernels.adaptive_avg_pool2d_forward).");
  m.def("adaptive_avg_pool2d_backward", &adaptive_avg_pool2d_backward_py, py::arg("grad_output"), py::arg("h"),
        py::arg("w"), "grad_input of adaptive average pooling (see cnnx.kernels.adaptive_avg_pool2d_backward).");
}

}  // namespace bind
}  // namespace cnnx
