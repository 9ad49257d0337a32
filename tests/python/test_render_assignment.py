#!/usr/bin/python3
"""Smoke test of tools/render_assignment.py: it runs for both assigners and
both formats, and each file it writes is a real, non-trivial picture."""

import os
import subprocess
import sys
import tempfile

REPO = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
TOOL = os.path.join(REPO, "tools", "render_assignment.py")


def main():
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        for assigner, ext, magic, min_bytes in (("yolox", "png", b"\x89PNG\r\n\x1a\n", 20000),
                                                ("yolox-legacy", "svg", b"<?xml", 50000)):
            out = os.path.join(tmp, "assignment-%s.%s" % (assigner, ext))
            run = subprocess.run([sys.executable, TOOL, "--assigner", assigner, "--out", out],
                                 capture_output=True, text=True)
            print(run.stdout.strip() or run.stderr.strip())
            if run.returncode != 0 or not os.path.exists(out):
                failures.append("%s: exit %d, %s" % (out, run.returncode, run.stderr.strip()))
                continue
            with open(out, "rb") as f:
                data = f.read()
            if not data.startswith(magic) or len(data) < min_bytes:
                failures.append("%s: %d bytes, starts %r" % (out, len(data), data[:8]))
            if "dynamic k per gt" not in run.stdout:
                failures.append("%s: no dynamic k reported" % out)
    for f in failures:
        print("FAIL:", f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
