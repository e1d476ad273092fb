// Elementwise kernels, compiled once per ISA. Contract: cnnx/elementwise.h.
//
// One pass over the values: full vectors (four per step, so several loads are in flight), then one
// masked vector for the last n % width values, so nothing outside the arrays is touched. Each
// output lane is a compare-and-select or one addition of the same lanes of the inputs, exactly the
// reference's expression, so every ISA and thread count gives the reference's bits.
//
// These kernels move memory and do almost no arithmetic: one thread runs near one core's bandwidth
// and a second pays off only when its share takes clearly longer than waking it (a few
// microseconds). Below kMinElementsPerThread values per thread the call stays on the caller.
// Threads take contiguous runs of kChunk values, so two threads never write into one cache line
// (the arrays come from the 4 KiB-aligned output allocator or numpy's 16-byte alignment: a shared
// line is then possible only at the chunk boundaries of a misaligned view, where it costs time,
// never correctness).
#include <algorithm>
#include <cstdint>

#include "cnnx/elementwise.h"
#include "cnnx/runtime.h"
#include "cpu/parallel.h"
#include "cpu/simd.h"

namespace cnnx {
namespace CNNX_ISA_NS {

namespace {

using std::int64_t;

// Measured on the 2-core box (float32, ReLU in place and add, back-to-back calls, 1 thread vs 2):
// at 32K values the second thread ties for ReLU (2.6 vs 2.7 us) and wins a little for add (5.2 vs
// 4.0 us); at 64K it wins for both (5.0 -> 3.9 us, 10.1 -> 6.8 us). Back-to-back calls find the
// worker spinning; one that has gone to sleep costs more to wake, hence the larger side: a
// thread per 32K values, i.e. two threads from 64K values on.
constexpr int64_t kMinElementsPerThread = int64_t(1) << 15;
constexpr int64_t kChunk = 4096;  // values per scheduling unit: a whole number of cache lines

// Runs body(begin, end) over [0, n), split across threads when n is large enough to pay for them.
template <class F>
void split_range(int64_t n, F&& body) {
  const int64_t useful = n / kMinElementsPerThread;
  const int threads = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(get_num_threads(), useful)));
  if (threads == 1) {
    body(int64_t(0), n);
    return;
  }
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  parallel::region(threads, [&](int tid, int nt) {
    const parallel::Range r = parallel::split(chunks, tid, nt);
    body(std::min(n, r.begin * kChunk), std::min(n, r.end * kChunk));
  });
}

// y[i] = op(x[i]) for i in [begin, end), in registers of V. y may be x (each step loads its lanes
// before it stores them).
template <class T, class Op>
static inline void map1(T* y, const T* x, int64_t begin, int64_t end, Op op) {
  using V = simd::Vec<T>;
  constexpr int W = V::width;
  int64_t i = begin;
  for (; i + 4 * W <= end; i += 4 * W) {
    const typename V::reg v0 = V::load(x + i), v1 = V::load(x + i + W);
    const typename V::reg v2 = V::load(x + i + 2 * W), v3 = V::load(x + i + 3 * W);
    V::store(y + i, op(v0));
    V::store(y + i + W, op(v1));
    V::store(y + i + 2 * W, op(v2));
    V::store(y + i + 3 * W, op(v3));
  }
  for (; i + W <= end; i += W) V::store(y + i, op(V::load(x + i)));
  if (i < end) {
    const int rest = static_cast<int>(end - i);
    V::store_partial(y + i, op(V::load_partial(x + i, rest)), rest);
  }
}

// y[i] = op(a[i], b[i]) for i in [begin, end); y may be a or b.
template <class T, class Op>
static inline void map2(T* y, const T* a, const T* b, int64_t begin, int64_t end, Op op) {
  using V = simd::Vec<T>;
  constexpr int W = V::width;
  int64_t i = begin;
  for (; i + 4 * W <= end; i += 4 * W) {
    const typename V::reg a0 = V::load(a + i), a1 = V::load(a + i + W);
    const typename V::reg a2 = V::load(a + i + 2 * W), a3 = V::load(a + i + 3 * W);
    const typename V::reg b0 = V::load(b + i), b1 = V::load(b + i + W);
    const typename V::reg b2 = V::load(b + i + 2 * W), b3 = V::load(b + i + 3 * W);
    V::store(y + i, op(a0, b0));
    V::store(y + i + W, op(a1, b1));
    V::store(y + i + 2 * W, op(a2, b2));
    V::store(y + i + 3 * W, op(a3, b3));
  }
  for (; i + W <= end; i += W) V::store(y + i, op(V::load(a + i), V::load(b + i)));
  if (i < end) {
    const int rest = static_cast<int>(end - i);
    V::store_partial(y + i, op(V::load_partial(a + i, rest), V::load_partial(b + i, rest)), rest);
  }
}

template <class T>
void relu_fwd(T* y, const T* x, int64_t n) {
  using V = simd::Vec<T>;
  const typename V::reg zero = V::zero();
  // Zero where 0 > x, else x: the reference's x < 0 ? 0 : x. NaN fails the comparison and is kept;
  // so is -0.0. (A max instruction would not do: _mm512_max_ps(x, 0) returns its second operand,
  // 0, when x is NaN, and max(-0.0, 0) is either zero depending on the operand order.)
  split_range(n, [&](int64_t begin, int64_t end) {
    map1(y, x, begin, end, [zero](typename V::reg v) { return V::select(V::gt_or_nan(zero, v), zero, v); });
  });
}

template <class T>
void relu_bwd(T* gx, const T* gy, const T* y, int64_t n) {
  using V = simd::Vec<T>;
  const typename V::reg zero = V::zero();
  // grad where y > 0 or y is NaN, else 0: the reference's y <= 0 ? 0 : grad. Selecting (not
  // multiplying by a 0/1 mask) keeps an infinite or NaN gradient out of the y <= 0 lanes.
  split_range(n, [&](int64_t begin, int64_t end) {
    map2(gx, gy, y, begin, end,
         [zero](typename V::reg g, typename V::reg v) { return V::select(V::gt_or_nan(v, zero), g, zero); });
  });
}

template <class T>
void add(T* y, const T* a, const T* b, int64_t n) {
  using V = simd::Vec<T>;
  split_range(n, [&](int64_t begin, int64_t end) {
    map2(y, a, b, begin, end, [](typename V::reg u, typename V::reg v) { return V::add(u, v); });
  });
}

}  // namespace

void relu_forward_f32(float* y, const float* x, int64_t n) { relu_fwd(y, x, n); }
void relu_forward_f64(double* y, const double* x, int64_t n) { relu_fwd(y, x, n); }
void relu_backward_f32(float* gx, const float* gy, const float* y, int64_t n) { relu_bwd(gx, gy, y, n); }
void relu_backward_f64(double* gx, const double* gy, const double* y, int64_t n) { relu_bwd(gx, gy, y, n); }
void add_forward_f32(float* y, const float* a, const float* b, int64_t n) { add(y, a, b, n); }
void add_forward_f64(double* y, const double* a, const double* b, int64_t n) { add(y, a, b, n); }

}  // namespace CNNX_ISA_NS
}  // namespace cnnx
