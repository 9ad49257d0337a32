# Cross-compiles for aarch64 Linux on a Debian x86-64 host with
# gcc-aarch64-linux-gnu, linking the arm64 multiarch packages
# (libsleef-dev:arm64, libcmocka-dev:arm64), and runs the built programs
# (try_run, ctest) under qemu-user. scripts/install-deps.sh installs all of it.
#
#   cmake -S . -B build-aarch64 -DCMAKE_TOOLCHAIN_FILE=cmake/toolchain-aarch64-linux-gnu.cmake \
#         -DYOLOXLOSS_PYTHON_TESTS=OFF
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)

# The cross C library lives in /usr/aarch64-linux-gnu, the arm64 packages in
# the multiarch directories of the host's /usr. With this architecture set,
# CMake searches /usr/lib/aarch64-linux-gnu and /usr/include/aarch64-linux-gnu
# and never the host's x86_64-linux-gnu directories; programs (pkg-config,
# qemu) are host programs.
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu)
list(APPEND CMAKE_LIBRARY_PATH /usr/lib/aarch64-linux-gnu)
list(APPEND CMAKE_INCLUDE_PATH /usr/include/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)

# pkg-config must read the arm64 .pc files only, not the host's.
set(ENV{PKG_CONFIG_LIBDIR} /usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig)
set(ENV{PKG_CONFIG_PATH} "")

# -L makes qemu resolve the dynamic loader and the cross libraries (libc,
# libgomp) under /usr/aarch64-linux-gnu; the arm64 multiarch libraries are
# found at their host paths.
find_program(YOLOXLOSS_QEMU_AARCH64 qemu-aarch64 NO_CMAKE_FIND_ROOT_PATH)
if(NOT YOLOXLOSS_QEMU_AARCH64)
  message(FATAL_ERROR "qemu-aarch64 not found: install qemu-user (scripts/install-deps.sh does)")
endif()
set(CMAKE_CROSSCOMPILING_EMULATOR ${YOLOXLOSS_QEMU_AARCH64} -L /usr/aarch64-linux-gnu)
