#!/usr/bin/env bash
# The main job: install what is missing, build, and time this library
# against the PyTorch reference on the benchmark scenarios (bench/README.md).
# Arguments go to bench/run_bench.py (e.g. --quick, --scenario coco16).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
build=${YOLOXLOSS_BUILD_DIR:-build}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release
cmake --build "$build" -j"$(nproc)" --target yoloxloss yoloxloss_bench
python=$(grep -E '^YOLOXLOSS_TORCH_PYTHON:' "$build/CMakeCache.txt" | cut -d= -f2- || true)
[ -n "$python" ] || python=/usr/bin/python3
export YOLOXLOSS_BENCH_COMMAND="bash scripts/bench.sh${*:+ $*}"
YOLOXLOSS_LIB="$PWD/$build/libyoloxloss.so" exec "$python" bench/run_bench.py \
  --bench-exe "$build/bench/yoloxloss_bench" "$@"
