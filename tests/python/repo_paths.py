"""Makes this repository's Python code importable by the Python tests.

Importing this module puts two directories of the repository at the front of
sys.path, so that what the tests import is this checkout's code and not an
installed copy:

  python/            the yoloxloss package (the drop-in)
  tests/reference/   the PyTorch reference (yolox_reference, tie_analysis)

It does not choose the shared library: yoloxloss itself reads
$YOLOXLOSS_LIB (ctest sets it to the library it just built) and otherwise
looks next to the package and in build/.

How a test finds this module: Python puts the directory of the script it
runs first on sys.path, whether ctest runs it or a developer types
``/usr/bin/python3 tests/python/test_binding.py`` from any directory.  So
the module must sit beside the tests that import it.  The tests live in two
directories (tests/python and tests/reference), so this file is in
tests/python and tests/reference/repo_paths.py is a symbolic link to it: one
text, a plain ``import repo_paths`` in every test, no environment variable
to set, and no path arithmetic left in any test.  The alternatives do worse:
a PYTHONPATH set by ctest leaves a test run by hand unable to import
anything, loading this file by its path takes the same few lines of path
code in every test that this module exists to remove, and two copies would
drift apart.  (git keeps the link on the Linux machines this project builds
and tests on; a checkout made with core.symlinks=false would turn it into a
one-line text file.  A developer who sets PYTHONSAFEPATH, which stops Python
from adding the script's directory, must put that directory on PYTHONPATH.)

Both directories are two levels below the repository root, and the link is
resolved before the root is computed, so the paths are the same whichever
directory the module was imported from.
"""

import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__))))
PYTHON_DIR = os.path.join(REPO, "python")
REFERENCE_DIR = os.path.join(REPO, "tests", "reference")

for _directory in (REFERENCE_DIR, PYTHON_DIR):
    if _directory in sys.path:
        sys.path.remove(_directory)
    sys.path.insert(0, _directory)


def child_env(env, package_parent=PYTHON_DIR):
    """A copy of the environment dict `env` in which a child Python process
    (``python -c "import yoloxloss"``) imports yoloxloss from the directory
    package_parent (the one holding the package's folder; this repository's
    python/ by default) before any other copy.

    The directory goes first on PYTHONPATH.  PYTHONSAFEPATH=1 (Python 3.11
    and later) keeps the child from putting its working directory ahead of
    it, where a yoloxloss folder would otherwise shadow it."""
    child = dict(env)
    old = child.get("PYTHONPATH")
    child["PYTHONPATH"] = package_parent + (os.pathsep + old if old else "")
    child["PYTHONSAFEPATH"] = "1"
    return child
