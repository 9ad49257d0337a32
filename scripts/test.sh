#!/usr/bin/env bash
# The whole test suite from a fresh machine: install what is missing,
# configure, build (warnings as errors), run every test through ctest; then
# the same library and C tests cross-built for aarch64 and run under
# qemu-user, and a few PyTorch reference cases through that build.
# Arguments go to the native ctest. YOLOXLOSS_SKIP_AARCH64=1 leaves out the
# aarch64 part (and says so).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
build=${YOLOXLOSS_BUILD_DIR:-build}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DYOLOXLOSS_WERROR=ON
cmake --build "$build" -j"$(nproc)"
(cd "$build" && ctest --output-on-failure --timeout 3000 "$@")

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
cmake --build "$abuild" -j"$(nproc)"
built=$SECONDS
status=0
(cd "$abuild" && ctest --output-on-failure --timeout 900) || status=1
tested=$SECONDS
python=$(sed -n 's/^YOLOXLOSS_TORCH_PYTHON:FILEPATH=//p' "$build/CMakeCache.txt")
timeout 900 "${python:-/usr/bin/python3}" tests/reference/check_reference.py --quick --cases 60 --seed 1 --lib-threads 1 \
  --runner "qemu-aarch64 -L /usr/aarch64-linux-gnu $abuild/tests/run_case" || status=1
echo "test.sh: aarch64 under qemu-user took $((SECONDS - start)) s (build $((built - start)) s," \
     "ctest $((tested - built)) s, 60 reference cases $((SECONDS - tested)) s)$([ $status = 0 ] || echo ': FAILED')"
exit $status
