#!/usr/bin/env bash
# The whole test suite from a fresh machine: install what is missing,
# configure, build (warnings as errors), run every test through ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
build=${YOLOXLOSS_BUILD_DIR:-build}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DYOLOXLOSS_WERROR=ON
cmake --build "$build" -j"$(nproc)"
cd "$build"
ctest --output-on-failure --timeout 3000 "$@"
