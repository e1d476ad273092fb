#!/usr/bin/env bash
# Builds cnnx._C with AddressSanitizer + UndefinedBehaviorSanitizer (-DCNNX_SANITIZE=ON, its own
# build dir) and runs the kernel and autograd tests against it. Any report fails the run
# (UBSan: -fno-sanitize-recover plus halt_on_error; ASan halts on its first error by default).
#
#   scripts/sanitize.sh              # build (incremental) + the default test selection
#   scripts/sanitize.sh tests/test_pool.py -k nan   # other pytest arguments
#
# The sanitized module is loaded from a private copy of the package (build/asan/pkg), so the
# regular in-tree build is untouched. CPython is not instrumented: the ASan runtime comes in by
# LD_PRELOAD, PYTHONMALLOC=malloc routes Python's allocations through it, and detect_leaks=0
# because CPython keeps its own allocations until exit.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
build=${CNNX_SANITIZE_BUILD:-build/asan}
jobs=${CNNX_SANITIZE_JOBS:-2}
start=$(date +%s)

cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCNNX_SANITIZE=ON -DCNNX_BUILD_BENCHMARKS=OFF \
      -Dpybind11_DIR="$(python -m pybind11 --cmakedir)" >/dev/null
cmake --build "$build" -j"$jobs" >/dev/null
built=$(date +%s)

pkg=$build/pkg
rm -rf "$pkg" && mkdir -p "$pkg"
cp -r cnnx "$pkg/cnnx"
rm -f "$pkg"/cnnx/_C*.so
cp "$build"/_C*.so "$pkg/cnnx/"

cxx=$(grep -m1 '^CMAKE_CXX_COMPILER:' "$build/CMakeCache.txt" | cut -d= -f2)
asan=$("$cxx" -print-file-name=libasan.so)
ubsan=$("$cxx" -print-file-name=libubsan.so)
[[ -f $asan ]] || { echo "sanitize.sh: libasan.so not found next to $cxx" >&2; exit 1; }
preload=$asan
[[ -f $ubsan ]] && preload="$preload:$ubsan"

if [[ $# -eq 0 ]]; then
  set -- tests/test_gemm.py tests/test_conv.py tests/test_pool.py tests/test_lrn.py tests/test_batch_norm.py \
         tests/test_autograd.py tests/test_gradcheck.py tests/test_functional.py tests/test_nn.py \
         tests/test_tensor.py tests/test_properties.py tests/test_threads.py tests/test_elementwise.py tests/test_elementwise_activations.py tests/test_optim_kernels.py
fi

log=$build/sanitizer.log
rm -f "$log".*
# The tests run from a copy of tests/ beside the sanitized package, so `import cnnx` finds it.
rm -rf "$build/tests" && cp -r tests "$build/tests"
status=0
(
  cd "$build"
  LD_PRELOAD=$preload PYTHONMALLOC=malloc PYTHONPATH=$PWD/pkg \
  ASAN_OPTIONS=detect_leaks=0:halt_on_error=1:abort_on_error=0:allocator_may_return_null=1:log_path=$PWD/sanitizer.log \
  UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:log_path=$PWD/sanitizer.log \
  CNNX_SANITIZED=1 python -m pytest -q -p no:cacheprovider -x "$@"
) || status=$?
end=$(date +%s)

reports=$(cat "$log".* 2>/dev/null | grep -c -E 'ERROR: AddressSanitizer|runtime error:' || true)
echo "sanitize.sh: build $((built - start)) s, tests $((end - built)) s, sanitizer reports: $reports"
if [[ $reports -gt 0 ]]; then
  cat "$log".* | head -100
  exit 1
fi
exit $status
