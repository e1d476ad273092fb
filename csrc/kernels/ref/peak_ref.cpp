// The arithmetic probe of the ref table (cnnx/peak.h): scalar multiply-add chains, the ceiling of
// code that does not vectorise. A multiply and an add (2 FLOPs) per step, not std::fma: the ref
// build targets the baseline ISA, where std::fma is a library call (1 GFLOP/s).
#include <chrono>
#include <vector>

#include "cnnx/peak.h"

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace cnnx {
namespace ref {

namespace {

constexpr int kChains = 16;  // a multiply then an add: twice an FMA's latency per step to cover
constexpr long kStepsPerCheck = 1 << 14;

template <class T>
double chains_gflops(double seconds) {
  using clock = std::chrono::steady_clock;
  T acc[kChains];
  for (int i = 0; i < kChains; ++i) acc[i] = T(i) / kChains;
  const T a = T(1) - T(1) / T(1 << 20), b = T(1) / T(1 << 20);  // converges to 1: no overflow
  const auto start = clock::now();
  long done = 0;
  double spent = 0;
  do {
    for (long s = 0; s < kStepsPerCheck; ++s)
      for (int i = 0; i < kChains; ++i) acc[i] = acc[i] * a + b;
    done += kStepsPerCheck;
    spent = std::chrono::duration<double>(clock::now() - start).count();
  } while (spent < seconds);
  T sum = 0;
  for (int i = 0; i < kChains; ++i) sum += acc[i];
  volatile T keep = sum;  // a side effect that needs the chains: they cannot be dropped
  (void)keep;
  return double(done) * kChains * 2 / spent * 1e-9;
}

}  // namespace

template <class T>
double fma_peak(int threads, double seconds) {
  std::vector<double> rate(threads, 0.0);
#if defined(_OPENMP)
#pragma omp parallel num_threads(threads)
  rate[omp_get_thread_num()] = chains_gflops<T>(seconds);
#else
  rate[0] = chains_gflops<T>(seconds);
#endif
  double total = 0;
  for (double r : rate) total += r;
  return total;
}

template double fma_peak<float>(int, double);
template double fma_peak<double>(int, double);

}  // namespace ref
}  // namespace cnnx
