"""Builds the yoloxloss package with its C library inside it.

    python3 -m pip install --no-build-isolation ./python     (from the repository root)

pip builds in this directory (in-tree), so the C sources are the
repository around it; YOLOXLOSS_SOURCE_DIR names another checkout. The
library is configured and built with CMake (Release, without tests,
benchmark or examples) in setuptools' temporary build directory and copied
into the package as libyoloxloss.so, where the binding looks first after
$YOLOXLOSS_LIB. YOLOXLOSS_CMAKE_ARGS adds arguments to the configure step
(e.g. "-DCMAKE_C_COMPILER=clang-14"); CMAKE_BUILD_PARALLEL_LEVEL sets the
build jobs (default: all cores).
"""

import os
import re
import shlex
import shutil
import subprocess

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.dist import Distribution

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.abspath(os.environ.get("YOLOXLOSS_SOURCE_DIR") or os.path.dirname(HERE))
LIB_NAME = "libyoloxloss.so"


def project_version():
    """The version in CMakeLists.txt's project(), the library's own."""
    path = os.path.join(SOURCE, "CMakeLists.txt")
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        raise SystemExit("yoloxloss: no C sources at %s (no CMakeLists.txt): build from a checkout of "
                         "the repository (pip install ./python from its root), or set "
                         "YOLOXLOSS_SOURCE_DIR to one" % SOURCE) from None
    match = re.search(r"project\(\s*yoloxloss\s+VERSION\s+([0-9.]+)", text)
    if not match:
        raise SystemExit("yoloxloss: %s has no project(yoloxloss VERSION x.y.z)" % path)
    return match.group(1)


class BuildPyWithLibrary(build_py):
    """build_py, then the C library with CMake, copied into the package."""

    def run(self):
        super().run()
        cmake = shutil.which("cmake")
        if cmake is None:
            raise SystemExit("yoloxloss: cmake not found; it builds the C library (Debian: apt install cmake)")
        build_dir = os.path.join(os.path.abspath(self.get_finalized_command("build").build_temp),
                                 "yoloxloss-cmake")
        configure = [cmake, "-S", SOURCE, "-B", build_dir, "-DCMAKE_BUILD_TYPE=Release",
                     "-DYOLOXLOSS_BUILD_TESTS=OFF", "-DYOLOXLOSS_BUILD_BENCH=OFF"]
        configure += shlex.split(os.environ.get("YOLOXLOSS_CMAKE_ARGS", ""))
        jobs = os.environ.get("CMAKE_BUILD_PARALLEL_LEVEL") or str(os.cpu_count() or 1)
        self.announce("yoloxloss: building the C library in %s" % build_dir, level=2)
        subprocess.run(configure, check=True)
        subprocess.run([cmake, "--build", build_dir, "--target", "yoloxloss", "-j", jobs], check=True)
        target = os.path.join(self.build_lib, "yoloxloss", LIB_NAME)
        # copyfile follows the libyoloxloss.so -> .so.0 -> .so.0.1.0 links
        shutil.copyfile(os.path.join(build_dir, LIB_NAME), target)
        os.chmod(target, 0o755)


class BinaryDistribution(Distribution):
    """Holds a compiled library: a wheel for this platform, not "any"."""

    def has_ext_modules(self):
        return True


setup(version=project_version(), cmdclass={"build_py": BuildPyWithLibrary},
      distclass=BinaryDistribution)
