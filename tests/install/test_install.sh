#!/usr/bin/env bash
# Installs the built library into a scratch prefix inside the build tree and
# builds an outside program against it twice over: through the CMake package
# (shared and static targets) and through pkg-config (shared, and static with
# Libs.private). Each program is run.
# Usage: test_install.sh BUILD_DIR C_COMPILER [CMAKE]
set -euo pipefail
build=$(cd "$1" && pwd)
cc=$2
cmake=${3:-cmake}
here=$(cd "$(dirname "$0")" && pwd)
work=$build/install-test
prefix=$work/prefix
rm -rf "$work"
mkdir -p "$work"

# Runs a command with its output in a log that is shown only if it fails.
logged() {
  local log=$work/$1.log
  shift
  "$@" >"$log" 2>&1 || { cat "$log" >&2; echo "failed: $*" >&2; exit 1; }
}

logged install "$cmake" --install "$build" --prefix "$prefix"
libdir=$(dirname "$(find "$prefix" -name 'libyoloxloss.so' | head -n1)")
[ -f "$prefix/include/yoloxloss.h" ] || { echo "header not installed" >&2; exit 1; }
[ -f "$libdir/libyoloxloss.a" ] || { echo "static library not installed" >&2; exit 1; }

soname=$(objdump -p "$libdir/libyoloxloss.so" | awk '$1 == "SONAME" {print $2}')
echo "SONAME: $soname"
[[ $soname =~ ^libyoloxloss\.so\.[0-9]+$ ]] || { echo "unexpected SONAME '$soname'" >&2; exit 1; }
[ -e "$libdir/$soname" ] || { echo "$soname not installed" >&2; exit 1; }

echo "== CMake package"
logged consumer-configure "$cmake" -S "$here/consumer" -B "$work/cmake-build" \
       -DCMAKE_C_COMPILER="$cc" -DCMAKE_PREFIX_PATH="$prefix"
logged consumer-build "$cmake" --build "$work/cmake-build"
"$work/cmake-build/consumer_shared"
"$work/cmake-build/consumer_static"
if readelf -d "$work/cmake-build/consumer_static" | grep -q 'libyoloxloss'; then
  echo "consumer_static depends on the shared library" >&2; exit 1
fi

echo "== pkg-config"
export PKG_CONFIG_PATH=$libdir/pkgconfig
echo "cflags/libs: $(pkg-config --cflags --libs yoloxloss)"
echo "static libs: $(pkg-config --static --libs yoloxloss)"
# shellcheck disable=SC2046  # word splitting of pkg-config's flags is wanted
"$cc" -o "$work/pc_shared" "$here/consumer/main.c" $(pkg-config --cflags --libs yoloxloss)
LD_LIBRARY_PATH=$libdir "$work/pc_shared"
# Static: the archive by name, then every flag Libs.private/Requires.private
# add; --as-needed drops the shared library that -lyoloxloss also names.
# shellcheck disable=SC2046
"$cc" -o "$work/pc_static" "$here/consumer/main.c" $(pkg-config --cflags yoloxloss) \
      -Wl,--as-needed "$libdir/libyoloxloss.a" $(pkg-config --static --libs yoloxloss)
if readelf -d "$work/pc_static" | grep -q 'libyoloxloss'; then
  echo "pc_static depends on the shared library" >&2; exit 1
fi
"$work/pc_static"
echo "install test passed"
