#!/usr/bin/env bash
# Installs, from Debian's archive, whatever of the build and test
# dependencies is missing. Safe to run again: it installs nothing when all
# are present.
set -euo pipefail

packages=(build-essential cmake pkg-config libsleef-dev libcmocka-dev
          python3 python3-torch python3-numpy python3-matplotlib
          # robustness stages of scripts/test.sh: valgrind memcheck, clang 14
          # for libFuzzer (libclang_rt.fuzzer is in libclang-rt-14-dev) and
          # ThreadSanitizer with LLVM's OpenMP and its libarcher (libomp-14-dev)
          valgrind clang-14 libclang-rt-14-dev libomp-14-dev)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all dependencies present"
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: need root or sudo to install ${missing[*]}" >&2; exit 1; }
  sudo_cmd=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update
"${sudo_cmd[@]}" apt-get install -y --no-install-recommends "${missing[@]}"
