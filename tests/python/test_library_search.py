#!/usr/bin/python3
"""How yoloxloss finds its C library, and what it says when it cannot.

Each case imports a copy of the package in a child process, from a
temporary directory, with an environment written here (no PYTHONPATH or
YOLOXLOSS_LIB inherited):

  * $YOLOXLOSS_LIB naming a missing file: the error names the variable,
    the path and the way back (unset it; is there a library next to the
    package);
  * no library anywhere: the error says the variable is not set, lists the
    place next to the package (where pip install puts it) and a checkout's
    build/, and gives the three fixes (pip install, cmake --build, the
    variable);
  * a copy without its library imported before an installed one with it
    (what the examples used to do: the checkout's python/ first on
    sys.path): the error names the installed copy's library and how to use it;
  * the examples' import rule: the installed package when there is one,
    else the checkout's python/ (an example copied into a fake checkout).

The pip install test (tests/install/test_pip_install.py) runs an example
against a real installed package.

Run from anywhere:  /usr/bin/python3 tests/python/test_library_search.py [-v]
"""

import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import repo_paths  # noqa: F401  (puts python/ on sys.path)
import yoloxloss

REPO = repo_paths.REPO
PIP_HINT = "python3 -m pip install --no-build-isolation ./python"


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items()
           if k not in ("YOLOXLOSS_LIB", "PYTHONPATH", "PYTHONSAFEPATH", "PYTHONHOME")}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["PYTHONNOUSERSITE"] = "1"  # a yoloxloss in ~/.local would be "installed" too
    env.update(extra)
    return env


def copy_package(parent, with_library):
    """A copy of the package in parent/yoloxloss, with or without the library."""
    dst = os.path.join(parent, "yoloxloss")
    shutil.copytree(os.path.join(repo_paths.PYTHON_DIR, "yoloxloss"), dst,
                    ignore=shutil.ignore_patterns("__pycache__", "*.so*"))
    if with_library:
        shutil.copy(yoloxloss.library_path(), os.path.join(dst, "libyoloxloss.so"))
    return dst


def run_python(args, env, cwd):
    return subprocess.run([sys.executable] + args, env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=300)


class TestLibrarySearch(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="yoloxloss-search-")
        self.cwd = os.path.join(self.tmp, "elsewhere")
        os.makedirs(self.cwd)

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def import_error(self, env):
        p = run_python(["-c", "import yoloxloss"], env, self.cwd)
        self.assertNotEqual(p.returncode, 0, "import succeeded: " + p.stdout)
        self.assertIn("ImportError", p.stderr)
        return p.stderr

    def test_env_var_naming_a_missing_file(self):
        parent = os.path.join(self.tmp, "site")
        pkg = copy_package(parent, with_library=True)
        missing = os.path.join(self.tmp, "nowhere", "libyoloxloss.so")
        err = self.import_error(clean_env(PYTHONPATH=parent, YOLOXLOSS_LIB=missing))
        for fragment in ("$YOLOXLOSS_LIB=%r" % missing, "unset it",
                         "%s: present" % os.path.join(pkg, "libyoloxloss.so")):
            self.assertIn(fragment, err)

    def test_no_library_anywhere(self):
        parent = os.path.join(self.tmp, "checkout", "python")
        pkg = copy_package(parent, with_library=False)
        err = self.import_error(clean_env(PYTHONPATH=parent))
        for fragment in ("$YOLOXLOSS_LIB: not set",
                         "next to the package (where pip install puts it): %s (not found)"
                         % os.path.join(pkg, "libyoloxloss.so"),
                         "build directory: %s (not found)" % os.path.join(self.tmp, "checkout", "build",
                                                                         "libyoloxloss.so"),
                         PIP_HINT, "cmake --build build", "set YOLOXLOSS_LIB to the full path"):
            self.assertIn(fragment, err)
        self.assertNotIn("another yoloxloss", err)

    def test_installed_copy_shadowed_by_one_without_library(self):
        shadow = os.path.join(self.tmp, "checkout", "python")
        copy_package(shadow, with_library=False)
        site = os.path.join(self.tmp, "site")
        installed = os.path.join(copy_package(site, with_library=True), "libyoloxloss.so")
        err = self.import_error(clean_env(PYTHONPATH=os.pathsep.join([shadow, site])))
        self.assertIn("another yoloxloss on sys.path: %s" % installed, err)
        self.assertIn("take %s off sys.path" % shadow, err)
        self.assertIn("YOLOXLOSS_LIB=%s" % installed, err)
        # Alone on the path, the installed copy loads its own library.
        p = run_python(["-c", "import yoloxloss; print(yoloxloss.library_path())"],
                       clean_env(PYTHONPATH=site), self.cwd)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout.strip(), installed)

    def test_examples_prefer_the_installed_package(self):
        # A fake checkout: the example, and python/ holding a package without
        # its library (a checkout not built); the example must not touch it
        # when a package is installed.
        checkout = os.path.join(self.tmp, "checkout")
        os.makedirs(os.path.join(checkout, "examples"))
        script = os.path.join(checkout, "examples", "pytorch_ddp.py")
        shutil.copy(os.path.join(REPO, "examples", "pytorch_ddp.py"), script)
        checkout_pkg = copy_package(os.path.join(checkout, "python"), with_library=False)
        site = os.path.join(self.tmp, "site")
        copy_package(site, with_library=True)
        p = run_python([script, "--help"], clean_env(PYTHONPATH=site), self.cwd)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("usage", p.stdout)
        # Nothing installed: the checkout's python/ is used (and, unbuilt, says so).
        probe = run_python(["-c", "import importlib.util as u; print(u.find_spec('yoloxloss') is None)"],
                           clean_env(), self.cwd)
        if probe.stdout.strip() != "True":
            self.skipTest("this Python has a yoloxloss installed: cannot test the fallback to python/")
        p = run_python([script, "--help"], clean_env(), self.cwd)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("imported from %s" % checkout_pkg, p.stderr)


if __name__ == "__main__":
    unittest.main()
