"""The official YOLOX code, for the tests that compare with it: the
checkout the environment variable YOLOX_SRC names (Megvii-BaseDetection/
YOLOX). Without it such a test exits with 77, which ctest shows as
"Skipped", saying why; with it set, a directory that is not a checkout, or
one whose modules cannot be imported, is a failure."""

import os
import sys

SKIP = 77


def checkout(purpose):
    """$YOLOX_SRC, put first on sys.path; exits 77 without it (purpose:
    what the test would do with it, for the message)."""
    src = os.environ.get("YOLOX_SRC")
    if not src:
        print("SKIPPED: YOLOX_SRC is not set; set it to a checkout of "
              "https://github.com/Megvii-BaseDetection/YOLOX to %s" % purpose)
        sys.exit(SKIP)
    if not os.path.isfile(os.path.join(src, "yolox", "models", "yolo_head.py")):
        sys.exit("YOLOX_SRC=%r is not a YOLOX checkout (no yolox/models/yolo_head.py)" % src)
    sys.path.insert(0, os.path.abspath(src))
    return src


def import_failed(src, exc):
    """Ends the test: YOLOX's modules could not be imported from src."""
    sys.exit("cannot import YOLOX from YOLOX_SRC=%r: %s (on Debian its imports need "
             "python3-opencv python3-loguru python3-torchvision)" % (src, exc))
