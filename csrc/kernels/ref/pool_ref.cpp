// Reference pooling: the definitions of cnnx/pool.h written as plain loops over each window, one
// plane at a time. The oracle for the fast paths and the CNNX_ISA=ref fallback.
#include <algorithm>
#include <cmath>
#include <limits>

#include "cnnx/pool.h"

namespace cnnx {
namespace ref {

using std::int64_t;

template <class T>
void max_pool2d_forward(T* y, int64_t* indices, const T* x, const Pool2dParams& p) {
  const int64_t planes = p.n * p.c, in_plane = p.h * p.w, out_plane = p.oh * p.ow;
  for (int64_t q = 0; q < planes; ++q) {
    const T* xp = x + q * in_plane;
    for (int64_t oh = 0; oh < p.oh; ++oh) {
      const int64_t hs = oh * p.sh - p.ph;
      const TapRange rows = pool_taps(hs, p.kh, p.dh, p.h);
      for (int64_t ow = 0; ow < p.ow; ++ow) {
        const int64_t ws = ow * p.sw - p.pw;
        const TapRange cols = pool_taps(ws, p.kw, p.dw, p.w);
        T best = -std::numeric_limits<T>::infinity();
        int64_t best_index = -1;
        for (int64_t i = rows.first; i < rows.last; ++i) {
          for (int64_t j = cols.first; j < cols.last; ++j) {
            const int64_t at = (hs + i * p.dh) * p.w + ws + j * p.dw;
            const T v = xp[at];
            // The first tap is always taken (so an all -inf window points at its first tap);
            // later ones when greater or NaN.
            if (best_index < 0 || v > best || std::isnan(v)) {
              best = v;
              best_index = at;
            }
          }
        }
        y[q * out_plane + oh * p.ow + ow] = best;
        indices[q * out_plane + oh * p.ow + ow] = best_index;
      }
    }
  }
}

template <class T>
bool max_pool2d_backward(T* grad_x, const T* grad_y, const int64_t* indices, const Pool2dParams& p) {
  const int64_t planes = p.n * p.c, in_plane = p.h * p.w, out_plane = p.oh * p.ow;
  bool ok = true;
  std::fill(grad_x, grad_x + planes * in_plane, T(0));
  for (int64_t q = 0; q < planes; ++q) {
    for (int64_t o = 0; o < out_plane; ++o) {
      const int64_t at = indices[q * out_plane + o];
      if (at < 0 || at >= in_plane) {
        ok = ok && at == -1;
        continue;
      }
      grad_x[q * in_plane + at] += grad_y[q * out_plane + o];
    }
  }
  return ok;
}

template <class T>
void avg_pool2d_forward(T* y, const T* x, const Pool2dParams& p) {
  const int64_t planes = p.n * p.c, in_plane = p.h * p.w, out_plane = p.oh * p.ow;
  for (int64_t q = 0; q < planes; ++q) {
    const T* xp = x + q * in_plane;
    for (int64_t oh = 0; oh < p.oh; ++oh) {
      const AvgWindow r = avg_window(oh, p.kh, p.sh, p.ph, p.h);
      for (int64_t ow = 0; ow < p.ow; ++ow) {
        const AvgWindow c = avg_window(ow, p.kw, p.sw, p.pw, p.w);
        T sum = 0;
        for (int64_t i = r.begin; i < r.end; ++i)
          for (int64_t j = c.begin; j < c.end; ++j) sum += xp[i * p.w + j];
        y[q * out_plane + oh * p.ow + ow] = sum / static_cast<T>(avg_divisor(p, r, c));
      }
    }
  }
}

template <class T>
void avg_pool2d_backward(T* grad_x, const T* grad_y, const Pool2dParams& p) {
  const int64_t planes = p.n * p.c, in_plane = p.h * p.w, out_plane = p.oh * p.ow;
  std::fill(grad_x, grad_x + planes * in_plane, T(0));
  for (int64_t q = 0; q < planes; ++q) {
    T* gp = grad_x + q * in_plane;
    for (int64_t oh = 0; oh < p.oh; ++oh) {
      const AvgWindow r = avg_window(oh, p.kh, p.sh, p.ph, p.h);
      for (int64_t ow = 0; ow < p.ow; ++ow) {
        const AvgWindow c = avg_window(ow, p.kw, p.sw, p.pw, p.w);
        const T g = grad_y[q * out_plane + oh * p.ow + ow] / static_cast<T>(avg_divisor(p, r, c));
        for (int64_t i = r.begin; i < r.end; ++i)
          for (int64_t j = c.begin; j < c.end; ++j) gp[i * p.w + j] += g;
      }
    }
  }
}

template <class T>
void adaptive_avg_pool2d_forward(T* y, const T* x, const AdaptivePool2dParams& p) {
  const int64_t planes = p.n * p.c, in_plane = p.h * p.w, out_plane = p.oh * p.ow;
  for (int64_t q = 0; q < planes; ++q) {
    const T* xp = x + q * in_plane;
    for (int64_t oh = 0; oh < p.oh; ++oh) {
      const AdaptiveWindow r = adaptive_window(oh, p.h, p.oh);
      for (int64_t ow = 0; ow < p.ow; ++ow) {
        const AdaptiveWindow c = adaptive_window(ow, p.w, p.ow);
        T sum = 0;
        for (int64_t i = r.begin; i < r.end; ++i)
          for (int64_t j = c.begin; j < c.end; ++j) sum += xp[i * p.w + j];
        y[q * out_plane + oh * p.ow + ow] = sum / static_cast<T>((r.end - r.begin) * (c.end - c.begin));
      }
    }
  }
}

template <class T>
void adaptive_avg_pool2d_backward(T* grad_x, const T* grad_y, const AdaptivePool2dParams& p) {
  const int64_t planes = p.n * p.c, in_plane = p.h * p.w, out_plane = p.oh * p.ow;
  std::fill(grad_x, grad_x + planes * in_plane, T(0));
  for (int64_t q = 0; q < planes; ++q) {
    T* gp = grad_x + q * in_plane;
    for (int64_t oh = 0; oh < p.oh; ++oh) {
      const AdaptiveWindow r = adaptive_window(oh, p.h, p.oh);
      for (int64_t ow = 0; ow < p.ow; ++ow) {
        const AdaptiveWindow c = adaptive_window(ow, p.w, p.ow);
        const T g = grad_y[q * out_plane + oh * p.ow + ow] /
                    static_cast<T>((r.end - r.begin) * (c.end - c.begin));
        for (int64_t i = r.begin; i < r.end; ++i)
          for (int64_t j = c.begin; j < c.end; ++j) gp[i * p.w + j] += g;
      }
    }
  }
}

#define CNNX_POOL_REF(T)                                                                         \
  template void max_pool2d_forward<T>(T*, int64_t*, const T*, const Pool2dParams&);              \
  template bool max_pool2d_backward<T>(T*, const T*, const int64_t*, const Pool2dParams&);       \
  template void avg_pool2d_forward<T>(T*, const T*, const Pool2dParams&);                        \
  template void avg_pool2d_backward<T>(T*, const T*, const Pool2dParams&);                       \
  template void adaptive_avg_pool2d_forward<T>(T*, const T*, const AdaptivePool2dParams&);       \
  template void adaptive_avg_pool2d_backward<T>(T*, const T*, const AdaptivePool2dParams&);
CNNX_POOL_REF(float)
CNNX_POOL_REF(double)
#undef CNNX_POOL_REF

}  // namespace ref
}  // namespace cnnx
