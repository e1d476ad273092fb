// The ISA tables an x86-64 build carries, best first, and whether this CPU can run each.
// __builtin_cpu_supports also checks that the OS saves the AVX / AVX-512 register state.
#include "cnnx/dispatch.h"

namespace cnnx {
namespace avx512 { const KernelTable& kernel_table(); }
namespace avx2 { const KernelTable& kernel_table(); }
namespace generic { const KernelTable& kernel_table(); }

std::vector<IsaEntry> isa_candidates() {
  __builtin_cpu_init();
  const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
                      __builtin_cpu_supports("fma") && __builtin_cpu_supports("bmi2");
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                    __builtin_cpu_supports("bmi2");
  return {
      {&avx512::kernel_table(), avx512},
      {&avx2::kernel_table(), avx2},
      {&generic::kernel_table(), true},
  };
}

}  // namespace cnnx
