#!/usr/bin/env bash
# Installs, from Debian's archive, whatever of the build and test
# dependencies is missing. Safe to run again: it installs nothing when all
# are present.
set -euo pipefail

packages=(build-essential cmake pkg-config libsleef-dev libcmocka-dev doxygen
          python3 python3-torch python3-numpy python3-matplotlib
          # torchvision's nms / batched_nms, which YOLOX's postprocess calls
          # (tests/reference/check_decode.py compares detect with them)
          python3-torchvision
          # robustness stages of scripts/test.sh: valgrind memcheck, clang 14
          # for libFuzzer (libclang_rt.fuzzer is in libclang-rt-14-dev) and
          # ThreadSanitizer with LLVM's OpenMP and its libarcher (libomp-14-dev)
          valgrind clang-14 libclang-rt-14-dev libomp-14-dev)
# The aarch64 cross build that the tests run under qemu-user: the cross
# compiler and C library, qemu, and arm64 builds of the libraries it links
# (libgomp comes with the cross gcc).
packages+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross libsleef-dev:arm64 libcmocka-dev:arm64)
command -v qemu-aarch64 >/dev/null || packages+=(qemu-user)
# The Python package's install test: a venv, pip and setuptools' wheel build
# (pip install --no-build-isolation ./python).
packages+=(python3-venv python3-pip python3-setuptools python3-wheel)
# Open MPI for the data-parallel example and its test (examples/train_data_parallel_mpi.c).
packages+=(libopenmpi-dev openmpi-bin)

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
if [[ " ${missing[*]}" == *:arm64* ]] && ! dpkg --print-foreign-architectures | grep -qx arm64; then
  "${sudo_cmd[@]}" dpkg --add-architecture arm64
fi
"${sudo_cmd[@]}" apt-get update
"${sudo_cmd[@]}" apt-get install -y --no-install-recommends "${missing[@]}"
