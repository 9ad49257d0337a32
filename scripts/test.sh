#!/usr/bin/env bash
# The whole test suite from a fresh machine: install what is missing,
# configure, build (warnings as errors), run every test through ctest; then
# the robustness stages (docs/reliability.md):
#   1. the Release build: unit tests, Python binding, PyTorch reference check,
#      fuzz corpus replay, and every C test program under valgrind memcheck;
#   2. the same C tests built with AddressSanitizer + UBSan (preset asan);
#   3. the same C tests built with ThreadSanitizer, clang and LLVM's OpenMP
#      with libarcher (preset tsan);
#   4. a bounded libFuzzer run with ASan + UBSan (preset fuzz).
# Arguments go to the first ctest. YOLOXLOSS_FUZZ_SECONDS (default 60; 0
# skips the fuzz run) bounds stage 4; YOLOXLOSS_QUICK=1 runs stage 1 only.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
bash scripts/install-deps.sh
jobs=$(nproc)
build=${YOLOXLOSS_BUILD_DIR:-build}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DYOLOXLOSS_WERROR=ON
cmake --build "$build" -j"$jobs"
(cd "$build" && ctest --output-on-failure --timeout 3000 -j"$jobs" "$@")
[ "${YOLOXLOSS_QUICK:-0}" = 1 ] && exit 0

echo "== ASan + UBSan"
cmake --preset asan
cmake --build build-asan -j"$jobs"
(cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
   ctest --output-on-failure -j"$jobs")

echo "== ThreadSanitizer (libarcher gives TSan OpenMP's synchronisation)"
cmake --preset tsan
cmake --build build-tsan -j"$jobs"
(cd build-tsan && OMP_TOOL_LIBRARIES=/usr/lib/llvm-14/lib/libarcher.so \
   TSAN_OPTIONS="halt_on_error=1 ignore_noninstrumented_modules=1" ctest --output-on-failure -j"$jobs")

seconds=${YOLOXLOSS_FUZZ_SECONDS:-60}
if [ "$seconds" -gt 0 ]; then
  echo "== libFuzzer, ${seconds} s"
  cmake --preset fuzz
  cmake --build build-fuzz -j"$jobs" --target fuzz_yoloxloss
  # New inputs go to a scratch corpus; the seeds and regressions stay as committed.
  work=build-fuzz/corpus-run
  mkdir -p "$work"
  cp tests/fuzz/corpus/* "$work"/
  if ! (cd build-fuzz && OMP_NUM_THREADS=2 ./tests/fuzz_yoloxloss -max_total_time="$seconds" -max_len=4096 \
          -timeout=20 -print_final_stats=1 -artifact_prefix="$root/build-fuzz/" \
          "$root/$work" "$root/tests/fuzz/regressions" 2>&1 | tee fuzz.log | grep -E "^(stat::|Done|==)" ); then
    :
  fi
  if grep -qE "ERROR: libFuzzer|SUMMARY: (Address|UndefinedBehavior)Sanitizer|fuzz_yoloxloss: " build-fuzz/fuzz.log; then
    echo "fuzz run found a crash: the input is build-fuzz/crash-*; add it to tests/fuzz/regressions/" >&2
    exit 1
  fi
fi
echo "== all test stages passed"
