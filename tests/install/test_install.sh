#!/usr/bin/env bash
# Installs the built library into a scratch prefix inside the build tree and
# builds outside programs against it: through the CMake package from a C
# project, a C++-only project and a C+C++ project (shared and static targets
# each), and through pkg-config (shared, and static with Libs.private). Each
# program is run. Checks that the valgrind suppressions are installed, that
# the package and the .pc file name them, and, given valgrind, that they
# make a consumer's valgrind run clean. With YOLOXLOSS_TEST_PYTHON (a Python
# that can import torch), imports the installed Python package and runs it.
# Usage: test_install.sh BUILD_DIR C_COMPILER [CMAKE [CXX_COMPILER [VALGRIND]]]
set -euo pipefail
build=$(cd "$1" && pwd)
cc=$2
cmake=${3:-cmake}
cxx=${4:-c++}
valgrind=${5:-}
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
# major.minor while the major version is 0 (a minor release may change the
# ABI then), major alone after that
[[ $soname =~ ^libyoloxloss\.so\.(0\.[0-9]+|[1-9][0-9]*)$ ]] || { echo "unexpected SONAME '$soname'" >&2; exit 1; }
[ -e "$libdir/$soname" ] || { echo "$soname not installed" >&2; exit 1; }
supp=$prefix/share/yoloxloss/valgrind/yoloxloss.supp
cmp "$here/../sanitize/valgrind.supp" "$supp" || { echo "valgrind suppressions not installed as $supp" >&2; exit 1; }

echo "== CMake package"
logged consumer-configure "$cmake" -S "$here/consumer" -B "$work/cmake-build" \
       -DCMAKE_C_COMPILER="$cc" -DCMAKE_PREFIX_PATH="$prefix"
logged consumer-build "$cmake" --build "$work/cmake-build"
"$work/cmake-build/consumer_shared"
"$work/cmake-build/consumer_static"
if readelf -d "$work/cmake-build/consumer_static" | grep -q 'libyoloxloss'; then
  echo "consumer_static depends on the shared library" >&2; exit 1
fi

# project(... CXX) alone, then with C enabled after CXX: the package must
# find OpenMP for whichever language there is.
for langs in cxx cxx-and-c; do
  echo "== CMake package, $langs project"
  dir=$work/cmake-build-$langs
  logged "consumer-$langs-configure" "$cmake" -S "$here/consumer_cxx" -B "$dir" \
         -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_C_COMPILER="$cc" -DCMAKE_PREFIX_PATH="$prefix" \
         -DCONSUMER_ALSO_C="$([ "$langs" = cxx ] && echo OFF || echo ON)"
  logged "consumer-$langs-build" "$cmake" --build "$dir"
  "$dir/consumer_cxx_shared"
  "$dir/consumer_cxx_static"
  if readelf -d "$dir/consumer_cxx_static" | grep -q 'libyoloxloss'; then
    echo "consumer_cxx_static ($langs) depends on the shared library" >&2; exit 1
  fi
done

echo "== pkg-config"
export PKG_CONFIG_PATH=$libdir/pkgconfig
echo "cflags/libs: $(pkg-config --cflags --libs yoloxloss)"
echo "static libs: $(pkg-config --static --libs yoloxloss)"
pc_supp=$(pkg-config --variable=valgrind_suppressions yoloxloss)
[ "$pc_supp" -ef "$supp" ] || { echo "pkg-config names '$pc_supp', not $supp" >&2; exit 1; }
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

if [ -n "$valgrind" ]; then
  # Without the file libgomp's worker threads show as "possibly lost" (where
  # OpenMP starts any); with it nothing may be reported.
  echo "== valgrind with the installed suppressions"
  for prog in "$work/pc_shared" "$work/cmake-build-cxx/consumer_cxx_static"; do
    LD_LIBRARY_PATH=$libdir "$valgrind" -q --error-exitcode=99 --leak-check=full \
      --errors-for-leak-kinds=definite,indirect,possible --suppressions="$supp" "$prog"
  done
else
  echo "(no valgrind given: the suppressions were checked to be installed, not run)"
fi
if [ -n "${YOLOXLOSS_TEST_PYTHON:-}" ]; then
  # The Python package installed beside the library: with its directory on
  # PYTHONPATH and no YOLOXLOSS_LIB it loads the installed library.
  echo "== Python package"
  pkg=$(find "$prefix" -path '*-packages/yoloxloss/__init__.py' | head -n1)
  [ -n "$pkg" ] || { echo "the Python package was not installed" >&2; exit 1; }
  pydir=$(dirname "$(dirname "$pkg")")
  (cd "$work" && env -u YOLOXLOSS_LIB PYTHONPATH="$pydir" PYTHONDONTWRITEBYTECODE=1 "$YOLOXLOSS_TEST_PYTHON" -c '
import os, sys, torch, yoloxloss
lib = os.path.realpath(yoloxloss.library_path())
assert lib == os.path.realpath(sys.argv[1]), "loaded %s, not the installed %s" % (lib, sys.argv[1])
outputs = [torch.randn(1, 6, 32 // s, 32 // s, requires_grad=True) for s in (8, 16, 32)]
total = yoloxloss.yolox_loss(outputs, torch.tensor([[[0.0, 16.0, 16.0, 12.0, 10.0]]]))[0]
total.backward()
assert all(torch.isfinite(o.grad).all() for o in outputs)
print("import yoloxloss from %s: library %s, loss %.5f" % (os.path.dirname(yoloxloss.__file__), lib, float(total)))
' "$libdir/libyoloxloss.so")
else
  echo "(YOLOXLOSS_TEST_PYTHON not set: the installed Python package was not imported)"
fi
echo "install test passed"
