// cnnx-bench: the compiled kernel benchmark (no Python in the loop).
//
//   cnnx-bench [gemm|elementwise] [--isa NAME] [--threads N] [--repeat R] [--peak GFLOPS] [--double]
//              [--case SUBSTR]
//
// gemm (the default): for every case it first validates the result (64 random output elements
// against float64 dot products), then times the kernel: 2 warm-up calls, then R timed calls, and
// prints the median, GFLOP/s and the share of the machine's peak: --peak GFLOPS, or by default the
// rate of register-only FMA chains measured at the start (cnnx::fma_peak, cnnx/peak.h), with the
// same ISA, threads and dtype.
// elementwise: ReLU (forward, in place, backward), the residual add, tanh and sigmoid (forward,
// backward) on ResNet-18's 64x64x32x32 activations; each result must equal the reference kernel's bit
// for bit (the tanh and sigmoid forwards, which approximate on their own: be within 4 ulp of it,
// each being within 2 of the exact value), then the median of R calls is printed with the bandwidth
// it implies (bytes the op must read and write / time).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include "cnnx/dispatch.h"
#include "cnnx/elementwise.h"
#include "cnnx/gemm.h"
#include "cnnx/peak.h"
#include "cnnx/runtime.h"

namespace {

struct GemmCase {
  const char* name;
  std::int64_t m, n, k;
  bool trans_a, trans_b;
};

// The square sizes and the im2col shapes of docs/PERFORMANCE (forward: weights @ columns), plus the
// two transposed products a convolution backward needs.
const GemmCase kGemmCases[] = {
    {"gemm_256", 256, 256, 256, false, false},
    {"gemm_512", 512, 512, 512, false, false},
    {"gemm_1024", 1024, 1024, 1024, false, false},
    {"gemm_2048", 2048, 2048, 2048, false, false},
    {"gemm_r50_conv1", 64, 12544, 147, false, false},
    {"gemm_r50_l1_3x3", 64, 3136, 576, false, false},
    {"gemm_r50_l4_3x3", 512, 49, 4608, false, false},
    {"gemm_r50_l1_3x3_dw (A@B^T)", 64, 576, 3136, false, true},
    {"gemm_r50_l1_3x3_dx (A^T@B)", 576, 3136, 64, true, false},
};

double now_s() {
  using clock = std::chrono::steady_clock;
  return std::chrono::duration<double>(clock::now().time_since_epoch()).count();
}

template <class T>
bool validate(const GemmCase& c, const std::vector<T>& a, const std::vector<T>& b, const std::vector<T>& out,
              double* worst) {
  std::mt19937_64 rng(7);
  *worst = 0;
  const std::int64_t lda = c.trans_a ? c.m : c.k, ldb = c.trans_b ? c.k : c.n;
  for (int s = 0; s < 64; ++s) {
    const std::int64_t i = rng() % c.m, j = rng() % c.n;
    double ref = 0, mag = 0;
    for (std::int64_t q = 0; q < c.k; ++q) {
      const double x = c.trans_a ? a[q * lda + i] : a[i * lda + q];
      const double y = c.trans_b ? b[j * ldb + q] : b[q * ldb + j];
      ref += x * y;
      mag += std::fabs(x * y);
    }
    // Error bound of a length-k dot product in T: k * eps * sum |x y|.
    const double bound = double(c.k) * std::numeric_limits<T>::epsilon() * mag + 1e-30;
    *worst = std::max(*worst, std::fabs(out[i * c.n + j] - ref) / bound);
  }
  return *worst <= 1.0;
}

template <class T>
int run_gemm(int repeat, double peak, const std::string& filter) {
  std::printf("%-28s %6s %6s %6s %10s %10s %8s %6s\n", "case", "m", "n", "k", "median ms", "GFLOP/s",
              "% peak", "check");
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> dist(-1.f, 1.f);
  int failures = 0;
  for (const GemmCase& c : kGemmCases) {
    if (!filter.empty() && std::string(c.name).find(filter) == std::string::npos) continue;
    std::vector<T> a(c.m * c.k), b(c.k * c.n), out(c.m * c.n);
    for (T& x : a) x = dist(rng);
    for (T& x : b) x = dist(rng);
    cnnx::GemmParams p;
    p.m = c.m, p.n = c.n, p.k = c.k, p.trans_a = c.trans_a, p.trans_b = c.trans_b;
    p.lda = c.trans_a ? c.m : c.k, p.ldb = c.trans_b ? c.k : c.n, p.ldc = c.n;
    for (int w = 0; w < 2; ++w) cnnx::gemm<T>(out.data(), a.data(), b.data(), p);
    double worst = 0;
    const bool ok = validate(c, a, b, out, &worst);
    failures += !ok;
    std::vector<double> times;
    for (int r = 0; r < repeat; ++r) {
      const double t0 = now_s();
      cnnx::gemm<T>(out.data(), a.data(), b.data(), p);
      times.push_back(now_s() - t0);
    }
    std::sort(times.begin(), times.end());
    const double t = times[times.size() / 2];
    const double gflops = 2.0 * c.m * c.n * c.k / t * 1e-9;
    std::printf("%-28s %6lld %6lld %6lld %10.4f %10.1f %7.1f%% %6s\n", c.name, (long long)c.m,
                (long long)c.n, (long long)c.k, t * 1e3, gflops, 100.0 * gflops / peak, ok ? "ok" : "FAIL");
  }
  return failures;
}

struct ElementwiseCase {
  const char* name;
  int arrays_moved;  // arrays of n values the op must read or write
};

const ElementwiseCase kElementwiseCases[] = {
    {"relu_fwd", 2},      // x -> y (new array)
    {"relu_inplace", 2},  // x -> x
    {"relu_bwd", 3},      // g, y -> grad
    {"residual_add", 3},  // a, b -> y
    {"tanh_fwd", 2},      // x -> y
    {"tanh_bwd", 3},      // g, y -> grad
    {"sigmoid_fwd", 2},   // x -> y
    {"sigmoid_bwd", 3},   // g, y -> grad
};

// Distance in ulps between two finite values of one sign convention (consecutive floats differ by 1).
template <class T>
long long ulp_distance(T a, T b) {
  using I = typename std::conditional<sizeof(T) == 4, std::int32_t, std::int64_t>::type;
  I ia, ib;
  std::memcpy(&ia, &a, sizeof a);
  std::memcpy(&ib, &b, sizeof b);
  const I mag = std::numeric_limits<I>::max();
  const long long oa = ia < 0 ? -(long long)(ia & mag) : (long long)ia;
  const long long ob = ib < 0 ? -(long long)(ib & mag) : (long long)ib;
  return oa > ob ? oa - ob : ob - oa;
}

template <class T>
void run_elementwise_case(const std::string& name, T* out, const T* x, const T* g, const T* y, T* buf,
                          std::int64_t n, bool ref) {
  if (name == "relu_fwd") {
    ref ? cnnx::ref::relu_forward<T>(out, x, n) : cnnx::relu_forward<T>(out, x, n);
  } else if (name == "relu_inplace") {
    ref ? cnnx::ref::relu_forward<T>(buf, buf, n) : cnnx::relu_forward<T>(buf, buf, n);
  } else if (name == "relu_bwd") {
    ref ? cnnx::ref::relu_backward<T>(out, g, y, n) : cnnx::relu_backward<T>(out, g, y, n);
  } else if (name == "tanh_fwd") {
    ref ? cnnx::ref::tanh_forward<T>(out, x, n) : cnnx::tanh_forward<T>(out, x, n);
  } else if (name == "tanh_bwd") {
    ref ? cnnx::ref::tanh_backward<T>(out, g, y, n) : cnnx::tanh_backward<T>(out, g, y, n);
  } else if (name == "sigmoid_fwd") {
    ref ? cnnx::ref::sigmoid_forward<T>(out, x, n) : cnnx::sigmoid_forward<T>(out, x, n);
  } else if (name == "sigmoid_bwd") {
    ref ? cnnx::ref::sigmoid_backward<T>(out, g, y, n) : cnnx::sigmoid_backward<T>(out, g, y, n);
  } else {
    ref ? cnnx::ref::add_forward<T>(out, x, g, n) : cnnx::add_forward<T>(out, x, g, n);
  }
}

template <class T>
int run_elementwise(int repeat, const std::string& filter) {
  const std::int64_t n = std::int64_t(64) * 64 * 32 * 32;
  std::printf("%-16s %12s %10s %8s %6s\n", "case (64x64x32x32)", "MB moved", "median ms", "GB/s", "check");
  std::mt19937 rng(3);
  std::normal_distribution<float> dist;
  std::vector<T> x(n), g(n), y(n), out(n), want(n), buf(n);
  for (std::int64_t i = 0; i < n; ++i) x[i] = dist(rng), g[i] = dist(rng);
  cnnx::ref::relu_forward<T>(y.data(), x.data(), n);
  int failures = 0;
  for (const ElementwiseCase& c : kElementwiseCases) {
    if (!filter.empty() && std::string(c.name).find(filter) == std::string::npos) continue;
    const std::string name = c.name;
    // Validate: one call of the active ISA against the reference (in place: both from x).
    buf = x;
    run_elementwise_case<T>(name, out.data(), x.data(), g.data(), y.data(), buf.data(), n, false);
    const std::vector<T> got = name == "relu_inplace" ? buf : out;
    buf = x;
    run_elementwise_case<T>(name, want.data(), x.data(), g.data(), y.data(), buf.data(), n, true);
    const std::vector<T>& expected = name == "relu_inplace" ? buf : want;
    bool ok;
    if (name == "tanh_fwd" || name == "sigmoid_fwd") {
      long long worst = 0;
      for (std::int64_t i = 0; i < n; ++i) worst = std::max(worst, ulp_distance(got[i], expected[i]));
      ok = worst <= 4;
    } else {
      ok = std::memcmp(got.data(), expected.data(), sizeof(T) * n) == 0;
    }
    failures += !ok;
    for (int w = 0; w < 2; ++w)
      run_elementwise_case<T>(name, out.data(), x.data(), g.data(), y.data(), buf.data(), n, false);
    std::vector<double> times;
    for (int r = 0; r < repeat; ++r) {
      const double t0 = now_s();
      run_elementwise_case<T>(name, out.data(), x.data(), g.data(), y.data(), buf.data(), n, false);
      times.push_back(now_s() - t0);
    }
    std::sort(times.begin(), times.end());
    const double t = times[times.size() / 2];
    const double mb = double(c.arrays_moved) * n * sizeof(T) * 1e-6;
    std::printf("%-18s %10.2f %10.4f %8.1f %6s\n", c.name, mb, t * 1e3, mb / t * 1e-3, ok ? "ok" : "FAIL");
  }
  return failures;
}

void usage() {
  std::fprintf(stderr,
               "usage: cnnx-bench [gemm|elementwise] [--isa avx512|avx2|generic|ref] [--threads N] [--repeat R]\n"
               "                  [--peak GFLOPS] [--double] [--case SUBSTRING]\n");
}

}  // namespace

int main(int argc, char** argv) {
  int repeat = 21;
  double peak = 0;  // measured unless given
  bool use_double = false;
  std::string filter, suite = "gemm";
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&](const char* flag) -> const char* {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", flag);
        std::exit(2);
      }
      return argv[++i];
    };
    if (arg == "gemm" || arg == "elementwise") {
      suite = arg;
    } else if (arg == "--isa") {
      const char* isa = value("--isa");
      if (!cnnx::set_isa(isa)) {
        std::fprintf(stderr, "isa '%s' is not available here\n", isa);
        return 2;
      }
    } else if (arg == "--threads") {
      const int n = std::atoi(value("--threads"));
      if (n < 1) {
        std::fprintf(stderr, "--threads must be >= 1\n");
        return 2;
      }
      cnnx::set_num_threads(n);
    } else if (arg == "--repeat") {
      repeat = std::max(1, std::atoi(value("--repeat")));
    } else if (arg == "--peak") {
      peak = std::atof(value("--peak"));
      if (!(peak > 0)) {
        std::fprintf(stderr, "--peak must be > 0 GFLOP/s\n");
        return 2;
      }
    } else if (arg == "--case") {
      filter = value("--case");
    } else if (arg == "--double") {
      use_double = true;
    } else {
      usage();
      return arg == "-h" || arg == "--help" ? 0 : 2;
    }
  }
  std::printf("cnnx %s  isa %s  threads %d  %s", cnnx::version(), cnnx::active_isa(), cnnx::get_num_threads(),
              use_double ? "float64" : "float32");
  if (suite == "gemm") {
    const bool measure = peak == 0;
    if (measure)
      peak = use_double ? cnnx::fma_peak<double>(cnnx::get_num_threads(), 0.3)
                        : cnnx::fma_peak<float>(cnnx::get_num_threads(), 0.3);
    std::printf("  peak %.0f GFLOP/s%s", peak, measure ? " (measured)" : "");
  }
  std::printf("\n");
  int failures;
  if (suite == "elementwise")
    failures = use_double ? run_elementwise<double>(repeat, filter) : run_elementwise<float>(repeat, filter);
  else
    failures = use_double ? run_gemm<double>(repeat, peak, filter) : run_gemm<float>(repeat, peak, filter);
  return failures ? 1 : 0;
}
