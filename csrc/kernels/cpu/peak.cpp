// The FMA-throughput probe (cnnx/peak.h), compiled once per ISA: Vec<T>-wide chains, so the figure
// is this ISA's ceiling (AVX-512's is twice AVX2's).
//
// Chains<T>() independent accumulators, each a chain of FMAs: the FMA latency (4 cycles here) times
// the FMA ports (2) needs 8 to keep a core busy. 16 where registers are 64 bytes wide (AVX-512 has 32
// of them; 12 chains reached 0.98x of 16 there), 12 elsewhere, where with the two constants they
// still fit AVX2's 16 registers (16 chains spilled: 0.82x). acc = acc * a + b with a = 1 - 2^-20 and
// b = 2^-20 converges to 1, so it never overflows or goes subnormal, however long it runs.
#include <chrono>
#include <vector>

#include "cnnx/peak.h"
#include "cpu/parallel.h"
#include "cpu/simd.h"

namespace cnnx {
namespace CNNX_ISA_NS {

namespace {

constexpr long kStepsPerCheck = 1 << 14;  // rounds between clock reads (~0.1 ms)

template <class T>
constexpr int Chains() { return sizeof(typename simd::Vec<T>::reg) >= 64 ? 16 : 12; }

// Rounds of Chains<T>() FMAs until `seconds` have passed: the rounds run and the time they took.
template <class T>
void run_chains(double seconds, long* rounds, double* elapsed) {
  using V = simd::Vec<T>;
  using clock = std::chrono::steady_clock;
  constexpr int kChains = Chains<T>();
  typename V::reg acc[kChains];
  for (int i = 0; i < kChains; ++i) acc[i] = V::set1(T(i) / kChains);
  const typename V::reg a = V::set1(T(1) - T(1) / T(1 << 20)), b = V::set1(T(1) / T(1 << 20));
  const auto start = clock::now();
  long done = 0;
  double spent = 0;
  do {
    for (long s = 0; s < kStepsPerCheck; ++s)
#pragma GCC unroll 16
      for (int i = 0; i < kChains; ++i) acc[i] = V::fmadd(acc[i], a, b);
    done += kStepsPerCheck;
    spent = std::chrono::duration<double>(clock::now() - start).count();
  } while (spent < seconds);
  typename V::reg sum = acc[0];
  for (int i = 1; i < kChains; ++i) sum = V::add(sum, acc[i]);
  volatile T keep = V::reduce_add(sum);  // a side effect that needs the chains: they cannot be dropped
  (void)keep;
  *rounds = done;
  *elapsed = spent;
}

}  // namespace

template <class T>
double fma_peak(int threads, double seconds) {
  std::vector<long> rounds(threads, 0);
  std::vector<double> elapsed(threads, 0.0);
  int team = 1;
  parallel::region(threads, [&](int tid, int nt) {
    if (tid == 0) team = nt;
    run_chains<T>(seconds, &rounds[tid], &elapsed[tid]);
  });
  // Every thread's own rate, added: each ran alone on its clock, and the team started together.
  double gflops = 0;
  for (int t = 0; t < team; ++t)
    gflops += double(rounds[t]) * Chains<T>() * simd::Vec<T>::width * 2 / elapsed[t] * 1e-9;
  return gflops;
}

template double fma_peak<float>(int, double);
template double fma_peak<double>(int, double);

}  // namespace CNNX_ISA_NS
}  // namespace cnnx
