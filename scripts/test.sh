#!/usr/bin/env bash
# The whole test suite from a fresh machine: install what is missing,
# configure, build (warnings as errors), run every test through ctest; then
# the robustness stages (docs/reliability.md) and the aarch64 build:
#   1. the Release build: unit tests, Python binding, PyTorch reference check
#      (every instruction set this CPU has), fuzz corpus replay, and every C
#      test program under valgrind memcheck;
#   2. the same C tests built with AddressSanitizer + UBSan (preset asan);
#   3. the same C tests built with ThreadSanitizer, clang and LLVM's OpenMP
#      with libarcher (preset tsan);
#   4. a bounded libFuzzer run with ASan + UBSan (preset fuzz);
#   5. the library and C tests cross-built for aarch64 (NEON) and run under
#      qemu-user, and PyTorch reference cases through that build.
# Arguments go to the first ctest. YOLOXLOSS_FUZZ_SECONDS (default 60; 0
# skips the fuzz run) bounds stage 4, YOLOXLOSS_FUZZ_SEED (default 1; 0 lets
# libFuzzer pick one) seeds it; YOLOXLOSS_QUICK=1 runs stage 1 only;
# YOLOXLOSS_SKIP_AARCH64=1 leaves out stage 5 (and says so).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
bash scripts/install-deps.sh
jobs=$(nproc)
# ctest prints no output for a skipped test: print its reason (the
# SKIPPED/Skipped/NOT TESTED line the test wrote), so a log shows why.
skip_reasons() {
  awk -v stage="$1" '/^[0-9]+\/[0-9]+ Testing: /{name=$3}
       /^(SKIPPED|Skipped|NOT TESTED)/{print "skipped in " stage ": " name ": " $0}' \
      "$2/Testing/Temporary/LastTest.log" 2>/dev/null || true
}
build=${YOLOXLOSS_BUILD_DIR:-build}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DYOLOXLOSS_WERROR=ON
cmake --build "$build" -j"$jobs"
# --timeout bounds every test without its own TIMEOUT property (those are
# the long ones: reference shards 900 s, scalar and mmdet 1800 s, ...).
(cd "$build" && ctest --output-on-failure --timeout 600 -j"$jobs" "$@")
skip_reasons "the Release build" "$build"
[ "${YOLOXLOSS_QUICK:-0}" = 1 ] && exit 0

echo "== ASan + UBSan"
cmake --preset asan
cmake --build build-asan -j"$jobs"
(cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
   ctest --output-on-failure --timeout 600 -j"$jobs")

echo "== ThreadSanitizer (libarcher gives TSan OpenMP's synchronisation)"
cmake --preset tsan
cmake --build build-tsan -j"$jobs"
(cd build-tsan && OMP_TOOL_LIBRARIES=/usr/lib/llvm-14/lib/libarcher.so \
   TSAN_OPTIONS="halt_on_error=1 ignore_noninstrumented_modules=1" ctest --output-on-failure --timeout 600 -j"$jobs")

seconds=${YOLOXLOSS_FUZZ_SECONDS:-60}
if [ "$seconds" -gt 0 ]; then
  echo "== libFuzzer, ${seconds} s"
  cmake --preset fuzz
  cmake --build build-fuzz -j"$jobs" --target fuzz_yoloxloss
  # New inputs go to a scratch corpus; the seeds and regressions stay as committed.
  work=build-fuzz/corpus-run
  mkdir -p "$work"
  cp tests/fuzz/corpus/* "$work"/
  # LeakSanitizer: libomp's own per-thread blocks of large teams are not
  # ours (tests/sanitize/lsan.supp). A suppression matches any frame of the
  # allocation's stack, and our allocations inside a parallel region have
  # libomp frames below them, so the stacks are kept to malloc and its
  # direct caller: only blocks that libomp itself asked for are suppressed.
  if ! (cd build-fuzz && OMP_NUM_THREADS=2 ASAN_OPTIONS=malloc_context_size=2 \
          LSAN_OPTIONS="suppressions=$root/tests/sanitize/lsan.supp" \
          ./tests/fuzz_yoloxloss -max_total_time="$seconds" -max_len=4096 \
          -seed="${YOLOXLOSS_FUZZ_SEED:-1}" \
          -timeout=20 -print_final_stats=1 -artifact_prefix="$root/build-fuzz/" \
          "$root/$work" "$root/tests/fuzz/regressions" 2>&1 | tee fuzz.log | grep -E "^(stat::|Done|==)" ); then
    :
  fi
  if grep -qE "ERROR: libFuzzer|SUMMARY: (Address|UndefinedBehavior)Sanitizer|fuzz_yoloxloss: " build-fuzz/fuzz.log; then
    # The report and the input itself go to the log, so a crash found on a
    # CI machine can be replayed elsewhere (base64 -d > file; fuzz_replay file).
    grep -E -A25 "runtime error|ERROR: |fuzz_yoloxloss: " build-fuzz/fuzz.log | head -80 >&2
    for f in build-fuzz/crash-* build-fuzz/timeout-* build-fuzz/oom-*; do
      [ -f "$f" ] || continue
      echo "== $f (base64)" >&2
      base64 -w 0 "$f" >&2
      echo >&2
    done
    echo "fuzz run found a crash: the input is build-fuzz/crash-*; add it to tests/fuzz/regressions/" >&2
    exit 1
  fi
fi

echo "== aarch64 (NEON) under qemu-user"
if [ "${YOLOXLOSS_SKIP_AARCH64:-0}" = 1 ]; then
  echo "test.sh: aarch64 cross build and qemu-user tests SKIPPED (YOLOXLOSS_SKIP_AARCH64=1)"
  exit 0
fi
# One OpenMP thread under qemu-user: libgomp hangs there as soon as a
# parallel region has two (tests/CMakeLists.txt sets the same for ctest).
export OMP_NUM_THREADS=1
start=$SECONDS
abuild=${YOLOXLOSS_AARCH64_BUILD_DIR:-build-aarch64}
cmake -S . -B "$abuild" -DCMAKE_TOOLCHAIN_FILE=cmake/toolchain-aarch64-linux-gnu.cmake \
      -DCMAKE_BUILD_TYPE=Release -DYOLOXLOSS_WERROR=ON -DYOLOXLOSS_PYTHON_TESTS=OFF \
      -DYOLOXLOSS_DOCS_TEST=OFF
cmake --build "$abuild" -j"$jobs"
built=$SECONDS
status=0
(cd "$abuild" && ctest --output-on-failure --timeout 900) || status=1
skip_reasons "the aarch64 build" "$abuild"
tested=$SECONDS
python=$(sed -n 's/^YOLOXLOSS_TORCH_PYTHON:FILEPATH=//p' "$build/CMakeCache.txt")
timeout 900 "${python:-/usr/bin/python3}" tests/reference/check_reference.py --quick --cases 60 --seed 1 --lib-threads 1 \
  --runner "qemu-aarch64 -L /usr/aarch64-linux-gnu $abuild/tests/run_case" || status=1
# and the mmdet preset against MMDetection's computation
timeout 600 "${python:-/usr/bin/python3}" tests/reference/check_reference.py --quick --cases 20 --seed 5 \
  --preset mmdet --lib-threads 1 --runner "qemu-aarch64 -L /usr/aarch64-linux-gnu $abuild/tests/run_case" || status=1
echo "test.sh: aarch64 under qemu-user took $((SECONDS - start)) s (build $((built - start)) s," \
     "ctest $((tested - built)) s, 60 + 20 reference cases $((SECONDS - tested)) s)$([ $status = 0 ] || echo ': FAILED')"
[ $status = 0 ] || exit 1
echo "== all test stages passed"
