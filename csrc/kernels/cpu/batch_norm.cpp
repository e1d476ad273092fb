// Batch normalisation, compiled once per ISA. Contract: cnnx/batch_norm.h.
//
// Training needs every channel's statistics before any of its outputs, so each thread takes whole
// channels and runs them one by one: the statistics passes and the normalising pass read the same
// N planes of the channel back to back. A channel of the common layers (N*H*W up to a few hundred
// thousand values) fits in the per-core L2, so only the first pass reads memory and the tensor
// moves once in and once out, although the arithmetic is PyTorch's three passes (mean, then the
// centred sum of squares, then y = x * a + b). Backward does the same with its two passes.
// Sums run in double (float data widened in registers), in a fixed order per channel, on one
// thread: results do not depend on the thread count. Eval-mode forward has no sums and splits
// planes instead.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "cnnx/batch_norm.h"
#include "cnnx/runtime.h"
#include "cpu/parallel.h"
#include "cpu/simd.h"

namespace cnnx {
namespace CNNX_ISA_NS {

namespace {

using std::int64_t;
using D = simd::Vec<double>;
using dreg = D::reg;

constexpr int64_t kMinElementsPerThread = 16384;

// D::width values of T as doubles.
static inline dreg wide(const double* p) { return D::load(p); }
static inline dreg wide(const float* p) { return D::load_widen(p); }

int threads_for(int64_t units, int64_t elements) {
  const int64_t useful = std::max<int64_t>(1, elements / kMinElementsPerThread);
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>({get_num_threads(), units, useful})));
}

template <class F>
void split_units(int64_t units, int64_t elements, F&& body) {
  parallel::region(threads_for(units, elements), [&](int tid, int nt) {
    const parallel::Range r = parallel::split(units, tid, nt);
    for (int64_t u = r.begin; u < r.end; ++u) body(u);
  });
}

// Calls f(plane pointer offset) for the N planes of channel c.
template <class F>
static inline void planes_of(const BatchNormParams& p, int64_t c, F&& f) {
  for (int64_t n = 0; n < p.n; ++n) f((n * p.c + c) * p.hw);
}

// The sums over channel c: two register accumulators (in double) run through the N planes, each
// plane's last few values go to a scalar accumulator, and the lanes are added once at the end.
template <class T>
double channel_sum(const T* x, const BatchNormParams& p, int64_t c) {
  constexpr int W = D::width;
  dreg a0 = D::zero(), a1 = D::zero();
  double tail = 0;
  planes_of(p, c, [&](int64_t off) {
    const T* r = x + off;
    int64_t i = 0;
    for (; i + 2 * W <= p.hw; i += 2 * W) {
      a0 = D::add(a0, wide(r + i));
      a1 = D::add(a1, wide(r + i + W));
    }
    for (; i + W <= p.hw; i += W) a0 = D::add(a0, wide(r + i));
    for (; i < p.hw; ++i) tail += r[i];
  });
  return D::reduce_add(D::add(a0, a1)) + tail;
}

// sum over channel c of (x - mean)^2.
template <class T>
double channel_sq_dev(const T* x, const BatchNormParams& p, int64_t c, double mean) {
  constexpr int W = D::width;
  const dreg m = D::set1(mean);
  dreg a0 = D::zero(), a1 = D::zero();
  double tail = 0;
  planes_of(p, c, [&](int64_t off) {
    const T* r = x + off;
    int64_t i = 0;
    for (; i + 2 * W <= p.hw; i += 2 * W) {
      const dreg d0 = D::sub(wide(r + i), m), d1 = D::sub(wide(r + i + W), m);
      a0 = D::fmadd(d0, d0, a0);
      a1 = D::fmadd(d1, d1, a1);
    }
    for (; i + W <= p.hw; i += W) {
      const dreg d = D::sub(wide(r + i), m);
      a0 = D::fmadd(d, d, a0);
    }
    for (; i < p.hw; ++i) {
      const double d = r[i] - mean;
      tail += d * d;
    }
  });
  return D::reduce_add(D::add(a0, a1)) + tail;
}

// sum(grad_y) and sum(grad_y * (x - mean)) over channel c.
template <class T>
void channel_grad_sums(const T* gy, const T* x, const BatchNormParams& p, int64_t c, double mean, double* sum_g,
                       double* dot) {
  constexpr int W = D::width;
  const dreg m = D::set1(mean);
  dreg g0 = D::zero(), g1 = D::zero(), d0 = D::zero(), d1 = D::zero();
  double tg = 0, td = 0;
  planes_of(p, c, [&](int64_t off) {
    const T* gr = gy + off;
    const T* xr = x + off;
    int64_t i = 0;
    for (; i + 2 * W <= p.hw; i += 2 * W) {
      const dreg ga = wide(gr + i), gb = wide(gr + i + W);
      g0 = D::add(g0, ga);
      g1 = D::add(g1, gb);
      d0 = D::fmadd(ga, D::sub(wide(xr + i), m), d0);
      d1 = D::fmadd(gb, D::sub(wide(xr + i + W), m), d1);
    }
    for (; i + W <= p.hw; i += W) {
      const dreg ga = wide(gr + i);
      g0 = D::add(g0, ga);
      d0 = D::fmadd(ga, D::sub(wide(xr + i), m), d0);
    }
    for (; i < p.hw; ++i) {
      tg += gr[i];
      td += gr[i] * (xr[i] - mean);
    }
  });
  *sum_g = D::reduce_add(D::add(g0, g1)) + tg;
  *dot = D::reduce_add(D::add(d0, d1)) + td;
}

// out[i] = in[i] * a + b over one plane (the reference's expression, rounded the same way).
template <class T>
void affine(T* out, const T* in, int64_t n, T a, T b) {
  using V = simd::Vec<T>;
  const typename V::reg av = V::set1(a), bv = V::set1(b);
  int64_t i = 0;
  for (; i + V::width <= n; i += V::width) V::store(out + i, V::add(V::mul(V::load(in + i), av), bv));
  if (i < n) {  // the same operations on the last lanes, masked (7x7 planes: 3 Vecs and 1 lane)
    const int rest = static_cast<int>(n - i);
    V::store_partial(out + i, V::add(V::mul(V::load_partial(in + i, rest), av), bv), rest);
  }
}

// grad_x = ((grad_y - mean_g) - (x - mean) * proj) * scale over one plane (training backward).
template <class T>
void grad_input(T* gx, const T* gy, const T* x, int64_t n, T mean_g, T mean, T proj, T scale) {
  using V = simd::Vec<T>;
  const typename V::reg mg = V::set1(mean_g), m = V::set1(mean), pr = V::set1(proj), sc = V::set1(scale);
  int64_t i = 0;
  for (; i + V::width <= n; i += V::width) {
    const typename V::reg centred = V::sub(V::load(gy + i), mg);
    V::store(gx + i, V::mul(V::sub(centred, V::mul(V::sub(V::load(x + i), m), pr)), sc));
  }
  for (; i < n; ++i) gx[i] = ((gy[i] - mean_g) - (x[i] - mean) * proj) * scale;
}

template <class T>
void scale_plane(T* out, const T* in, int64_t n, T a) {
  using V = simd::Vec<T>;
  const typename V::reg av = V::set1(a);
  int64_t i = 0;
  for (; i + V::width <= n; i += V::width) V::store(out + i, V::mul(V::load(in + i), av));
  for (; i < n; ++i) out[i] = in[i] * a;
}

template <class T>
void forward(T* y, T* save_mean, T* save_invstd, T* running_mean, T* running_var, const T* x, const T* weight,
             const T* bias, const BatchNormParams& p) {
  const int64_t m = p.n * p.hw;
  auto coefficients = [&](int64_t c, double mean, double invstd, T* a, T* b) {
    const double ad = (weight != nullptr ? weight[c] : 1.0) * invstd;
    *a = static_cast<T>(ad);
    *b = static_cast<T>((bias != nullptr ? bias[c] : 0.0) - mean * ad);
  };
  if (!p.training) {
    for (int64_t c = 0; c < p.c; ++c) {
      save_mean[c] = running_mean[c];
      save_invstd[c] = static_cast<T>(1.0 / std::sqrt(static_cast<double>(running_var[c]) + p.eps));
    }
    // y = x * a[c] + b[c], the coefficients made once per channel, not once per plane (a square
    // root and a division for each of the 32,768 planes of a 64x512x4x4 batch).
    std::vector<T> ab(static_cast<size_t>(2 * p.c));
    for (int64_t c = 0; c < p.c; ++c)
      coefficients(c, running_mean[c], 1.0 / std::sqrt(static_cast<double>(running_var[c]) + p.eps), &ab[2 * c],
                   &ab[2 * c + 1]);
    split_units(p.n * p.c, p.n * p.c * p.hw, [&](int64_t q) {
      const int64_t c = q % p.c;
      affine(y + q * p.hw, x + q * p.hw, p.hw, ab[2 * c], ab[2 * c + 1]);
    });
    return;
  }
  if (m == 0) {
    std::fill(save_mean, save_mean + p.c, T(0));
    std::fill(save_invstd, save_invstd + p.c, T(0));
    return;
  }
  split_units(p.c, p.n * p.c * p.hw, [&](int64_t c) {
    const double mean = channel_sum(x, p, c) / static_cast<double>(m);
    const double dev = channel_sq_dev(x, p, c, mean);
    const double invstd = 1.0 / std::sqrt(dev / static_cast<double>(m) + p.eps);
    save_mean[c] = static_cast<T>(mean);
    save_invstd[c] = static_cast<T>(invstd);
    if (running_mean != nullptr) {
      const double unbiased = dev / static_cast<double>(m - 1);
      running_mean[c] = static_cast<T>((1.0 - p.momentum) * running_mean[c] + p.momentum * mean);
      running_var[c] = static_cast<T>((1.0 - p.momentum) * running_var[c] + p.momentum * unbiased);
    }
    T a, b;
    coefficients(c, mean, invstd, &a, &b);
    planes_of(p, c, [&](int64_t off) { affine(y + off, x + off, p.hw, a, b); });
  });
}

template <class T>
void backward(T* gx, T* grad_weight, T* grad_bias, const T* gy, const T* x, const T* weight, const T* save_mean,
              const T* save_invstd, const BatchNormParams& p) {
  const int64_t m = p.n * p.hw;
  split_units(p.c, p.n * p.c * p.hw, [&](int64_t c) {
    const double mean = save_mean[c], invstd = save_invstd[c];
    double sum_g, dot;
    channel_grad_sums(gy, x, p, c, mean, &sum_g, &dot);
    grad_bias[c] = static_cast<T>(sum_g);
    grad_weight[c] = static_cast<T>(dot * invstd);
    const T w_invstd = static_cast<T>((weight != nullptr ? weight[c] : 1.0) * invstd);
    if (p.training && m > 0) {
      const T mean_g = static_cast<T>(sum_g / static_cast<double>(m));
      const T proj = static_cast<T>(dot * invstd * invstd / static_cast<double>(m));
      const T mean_t = static_cast<T>(mean);
      planes_of(p, c, [&](int64_t off) { grad_input(gx + off, gy + off, x + off, p.hw, mean_g, mean_t, proj, w_invstd); });
    } else {
      planes_of(p, c, [&](int64_t off) { scale_plane(gx + off, gy + off, p.hw, w_invstd); });
    }
  });
}

}  // namespace

void batch_norm_forward_f32(float* y, float* sm, float* si, float* rm, float* rv, const float* x, const float* w,
                            const float* b, const BatchNormParams& p) {
  forward(y, sm, si, rm, rv, x, w, b, p);
}
void batch_norm_forward_f64(double* y, double* sm, double* si, double* rm, double* rv, const double* x,
                            const double* w, const double* b, const BatchNormParams& p) {
  forward(y, sm, si, rm, rv, x, w, b, p);
}
void batch_norm_backward_f32(float* gx, float* gw, float* gb, const float* gy, const float* x, const float* w,
                             const float* sm, const float* si, const BatchNormParams& p) {
  backward(gx, gw, gb, gy, x, w, sm, si, p);
}
void batch_norm_backward_f64(double* gx, double* gw, double* gb, const double* gy, const double* x, const double* w,
                             const double* sm, const double* si, const BatchNormParams& p) {
  backward(gx, gw, gb, gy, x, w, sm, si, p);
}

}  // namespace CNNX_ISA_NS
}  // namespace cnnx
