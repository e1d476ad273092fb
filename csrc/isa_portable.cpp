// Non-x86 builds carry one portable table (GCC/Clang vector extensions: NEON on aarch64, etc.).
#include "cnnx/dispatch.h"

namespace cnnx {
namespace generic { const KernelTable& kernel_table(); }

std::vector<IsaEntry> isa_candidates() { return {{&generic::kernel_table(), true}}; }

}  // namespace cnnx
