#!/usr/bin/python3
"""The README's Python install, as a new user runs it (ctest python_pip_install):

  1. a clean copy of the repository's files (what git tracks, plus files
     not yet committed that git does not ignore; no build directories)
     into a temporary directory;
  2. python3 -m venv --system-site-packages (Debian's torch stays visible);
  3. python -m pip install --no-build-isolation --no-index <copy>/python,
     which builds the C library with CMake inside the package;
  4. from another directory, with no YOLOXLOSS_LIB and no PYTHONPATH: import
     yoloxloss, check that it loaded the library installed in the venv, run
     a forward and backward and import yoloxloss.yolox;
  5. YOLOXLOSS_LIB still overrides: set to the library given as argument,
     that one is loaded;
  6. an example as a user runs it after the install: the copy's
     examples/pytorch_train_step.py (one short step), from another
     directory, with no environment variable; it must import the installed
     package (the library it reports is the venv's), not the copy's python/,
     which has no library.

Everything lives in one temporary directory, removed at the end; each
step has a time limit. Prints the time of each step and of the whole.

usage: test_pip_install.py LIBRARY   (the build tree's libyoloxloss.so, for step 5)
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__))))
STEP_TIMEOUT = 600

CHECK = r"""
import os, sys, torch, yoloxloss, yoloxloss.yolox
site = os.path.realpath(sys.argv[1])
lib = os.path.realpath(yoloxloss.library_path())
pkg = os.path.realpath(os.path.dirname(yoloxloss.__file__))
assert pkg.startswith(site + os.sep), "yoloxloss imported from %s, not from the venv %s" % (pkg, site)
assert lib == os.path.join(pkg, "libyoloxloss.so"), "loaded %s, not the installed library" % lib
gen = torch.Generator().manual_seed(0)
outputs = [torch.randn(2, 8, 64 // s, 64 // s, generator=gen).requires_grad_() for s in (8, 16, 32)]
labels = torch.zeros(2, 4, 5)
labels[0, 0] = torch.tensor([1.0, 30.0, 28.0, 20.0, 24.0])
labels[1, :2] = torch.tensor([[2.0, 40.0, 20.0, 16.0, 30.0], [0.0, 12.0, 44.0, 22.0, 18.0]])
total = yoloxloss.yolox_loss(outputs, labels)[0]
total.backward()
assert torch.isfinite(total) and float(total) > 0, float(total)
assert all(torch.isfinite(o.grad).all() and o.grad.abs().sum() > 0 for o in outputs)
print("installed package OK: version %s, library %s, total loss %.6f" % (yoloxloss.version(), lib, float(total)))
"""

OVERRIDE = r"""
import os, sys, yoloxloss
assert os.path.realpath(yoloxloss.library_path()) == os.path.realpath(sys.argv[1]), yoloxloss.library_path()
print("YOLOXLOSS_LIB override OK: %s" % yoloxloss.library_path())
"""


# The example's short mode: one step of a small batch at a small size.
EXAMPLE = ("examples/pytorch_train_step.py", "--steps", "1", "--batch", "2", "--size", "128")


def fail(msg, log=None):
    if log:
        sys.stderr.write(log)
    sys.exit("pip install test FAILED: " + msg)


def run(cmd, what, env=None, cwd=None):
    """Runs cmd (bounded); its output is shown only when it fails."""
    try:
        proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=STEP_TIMEOUT)
    except subprocess.TimeoutExpired:
        fail("%s took more than %d s" % (what, STEP_TIMEOUT))
    if proc.returncode != 0:
        fail("%s exited with %d: %s" % (what, proc.returncode, " ".join(cmd)),
             "--- stdout ---\n%s\n--- stderr ---\n%s\n" % (proc.stdout, proc.stderr))
    return proc.stdout


def source_files():
    """Relative paths of the repository's files: git's tracked and untracked
    unignored files, or without git every file outside build trees."""
    try:
        out = subprocess.run(["git", "-C", ROOT, "ls-files", "-z", "--cached", "--others",
                              "--exclude-standard"], capture_output=True, check=True, timeout=60).stdout
        return [p for p in out.decode().split("\0") if p and os.path.lexists(os.path.join(ROOT, p))]
    except (OSError, subprocess.SubprocessError):
        files = []
        for d, dirs, names in os.walk(ROOT):
            dirs[:] = [x for x in dirs if not (x.startswith("build") or x in (".git", "__pycache__")
                                               or x.endswith(".egg-info"))]
            files += [os.path.relpath(os.path.join(d, n), ROOT) for n in names]
        return files


def copy_tree(dest):
    files = source_files()
    for rel in files:
        src, dst = os.path.join(ROOT, rel), os.path.join(dest, rel)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        if os.path.islink(src):
            os.symlink(os.readlink(src), dst)
        else:
            shutil.copy2(src, dst)
    return len(files)


def clean_env():
    """The environment of a new user: no library or package path set."""
    env = dict(os.environ)
    for name in ("YOLOXLOSS_LIB", "PYTHONPATH", "PYTHONHOME", "PYTHONSAFEPATH", "VIRTUAL_ENV",
                 "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL"):
        env.pop(name, None)
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    build_lib = os.path.abspath(sys.argv[1])
    if not os.path.isfile(build_lib):
        fail("no library at %s" % build_lib)
    t0 = time.perf_counter()
    times = []

    def lap(name, start):
        times.append((name, time.perf_counter() - start))

    with tempfile.TemporaryDirectory(prefix="yoloxloss-pip-") as tmp:
        src, venv, elsewhere = (os.path.join(tmp, d) for d in ("src", "venv", "elsewhere"))
        os.makedirs(elsewhere)
        start = time.perf_counter()
        count = copy_tree(src)
        lap("copy %d files" % count, start)

        env = clean_env()
        start = time.perf_counter()
        run([sys.executable, "-m", "venv", "--system-site-packages", venv],
            "python3 -m venv (Debian: apt install python3-venv)", env=env)
        lap("venv", start)
        python = os.path.join(venv, "bin", "python")
        site = run([python, "-c", "import sysconfig; print(sysconfig.get_path('platlib'))"],
                   "asking the venv for its site-packages", env=env).strip()

        start = time.perf_counter()
        run([python, "-m", "pip", "install", "--no-build-isolation", "--no-index", "--no-cache-dir",
             os.path.join(src, "python")], "pip install --no-build-isolation ./python", env=env, cwd=src)
        lap("pip install (CMake build included)", start)

        start = time.perf_counter()
        print(run([python, "-c", CHECK, site], "the installed package's forward and backward",
                  env=env, cwd=elsewhere).strip())
        override = dict(env, YOLOXLOSS_LIB=build_lib)
        print(run([python, "-c", OVERRIDE, build_lib], "YOLOXLOSS_LIB override", env=override,
                  cwd=elsewhere).strip())
        lap("checks", start)

        start = time.perf_counter()
        out = run([python, os.path.join(src, EXAMPLE[0])] + list(EXAMPLE[1:]),
                  "%s after the install, no environment variable" % EXAMPLE[0], env=env, cwd=elsewhere)
        installed_lib = os.path.join(os.path.realpath(site), "yoloxloss", "libyoloxloss.so")
        # Its first line: "yoloxloss VERSION (LIBRARY), torch ..."
        used = re.search(r"^yoloxloss \S+ \((.*)\), torch", out, re.M)
        if not used or os.path.realpath(used.group(1)) != installed_lib:
            fail("%s did not use the installed library %s" % (EXAMPLE[0], installed_lib), out)
        print("%s ran on the installed package: %s" % (EXAMPLE[0], out.strip().splitlines()[-1]))
        lap("example", start)

    total = time.perf_counter() - t0
    print("times: " + ", ".join("%s %.1f s" % (n, s) for n, s in times) + "; total %.1f s" % total)
    print("pip install test passed")


if __name__ == "__main__":
    main()
