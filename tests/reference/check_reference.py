#!/usr/bin/python3
"""Compare the yoloxloss PyTorch drop-in (C library) with the independent
PyTorch reference (yolox_reference.py) on random YOLOX training steps.

    /usr/bin/python3 tests/reference/check_reference.py --cases 200 --seed 1
    /usr/bin/python3 tests/reference/check_reference.py --quick
    /usr/bin/python3 tests/reference/check_reference.py --seed 1 --case 17 -v
    /usr/bin/python3 tests/reference/check_reference.py --isa scalar
    /usr/bin/python3 tests/reference/check_reference.py --preset mmdet --cases 60 --seed 5
    /usr/bin/python3 tests/reference/check_reference.py --cases 20 --lib-threads 1 \
        --runner "qemu-aarch64 -L /usr/aarch64-linux-gnu build-aarch64/tests/run_case"

The drop-in is imported from this repository (../../python); the shared
library it loads can be named with $YOLOXLOSS_LIB (default: ../../build).
--isa NAME sets $YOLOXLOSS_ISA=NAME, which makes the library use the kernels
of that instruction set. --runner CMD checks a build that Python cannot load:
instead of the drop-in, each case goes through `CMD CASE_FILE OUT_FILE`
(tests/reference/run_case.c, the files described there; runner_io.py) and
is compared exactly as the drop-in's results are. --preset mmdet checks the
library's mmdet preset against MMDetection's computation
(mmdet_reference.py) instead of YOLOX's: the same cases, with box corners
moved onto a 1/64 px lattice (so corners and centre-size agree exactly) and
MMDetection's IoULoss (the case's iou-linear stays linear, every other loss
becomes the square form).

Pass criteria per case:
  (a) assignment (matched gt per anchor) and dynamic_k identical, except
      anchors whose difference is explained by an exact tie, or a tie within
      float32 rounding, in the reference's own costs (checked per image with
      explain_assignment_difference); then the losses/gradients are compared
      against the reference re-run with the library's assignment;
  (b) each loss term within 1e-5 relative: |lib - ref| <= 1e-5 * max(|ref|, 0.1);
  (c) each gradient element within 1e-5 * (largest |gradient| of the case);
      most cases call total.backward(), a quarter backpropagate a random
      combination of the five terms;
  (d) mixed precision: in about 30% of the cases the head outputs of every
      level (or of some levels) are float16 or bfloat16. The reference runs on
      the values up-converted to float32 and its gradients are rounded with
      torch's `.to(dtype)`; a gradient element then may also differ by one
      step of its dtype at that value (float32 gradients a rounding apart
      can round to neighbouring values). The library's 16-bit run must equal
      its own float32 run on the up-converted values exactly: the same
      losses, and gradients that are the float32 ones `.to(dtype)` (NaN as
      NaN).
  If (b) or (c) fail against the float32 reference, the float64 evaluation
  of the same assignment is tried; a case that is within tolerance of it is
  counted as passing ("closer to exact than the float32 reference") and
  reported separately.
Exit code 0 iff every case passes; the last line is "N passed, M failed".

This file is the command line; the work is in check_cases.py (the random
cases, from --seed and the case id alone), check_runs.py (one case through
the reference and through the library: drop-in or runner), check_compare.py
(the tolerances and the verdict of one case, criteria (a) to (d) above) and
check_report.py (each case's line, the coverage and the summary).
"""

import argparse
import os
import sys
import time

import torch

import repo_paths  # puts python/ (yoloxloss) on sys.path
import check_runs
from check_cases import make_case, to_mmdet_case
from check_compare import check_case
from check_report import Tally
from check_runs import isa_supported, preflight_error
from runner_io import Runner


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="20 smaller cases")
    ap.add_argument("--case", type=int, action="append", help="run only these case ids")
    ap.add_argument("--shard", metavar="K/N",
                    help="run only the case ids i with i %% N == K (ctest runs the 200 cases as 4 shards, "
                         "each bounded in time)")
    ap.add_argument("-v", "--verbose", action="store_true")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: all cores)")
    ap.add_argument("--isa", metavar="NAME",
                    help="kernels the library uses (sets $YOLOXLOSS_ISA: scalar, avx2, avx512, neon)")
    ap.add_argument("--runner", metavar="CMD",
                    help="run each case with `CMD CASE_FILE OUT_FILE` (run_case) instead of the drop-in")
    ap.add_argument("--preset", choices=("yolox", "mmdet"), default="yolox",
                    help="mmdet: the library's mmdet preset against MMDetection's computation "
                         "(mmdet_reference.py) on the same cases, box corners on a 1/64 px lattice")
    ap.add_argument("--lib-threads", type=int, metavar="N",
                    help="the library's num_threads for every case, instead of the case's own "
                         "(1 under qemu-user, where libgomp hangs with more)")
    args = ap.parse_args(argv)
    if args.isa:
        os.environ["YOLOXLOSS_ISA"] = args.isa  # read by the library when it creates a context
    if args.lib_threads is not None and args.lib_threads < 0:
        ap.error("--lib-threads must be >= 0")
    torch.set_num_threads(args.threads or os.cpu_count() or 1)
    ncases = 20 if args.quick and args.cases == 200 else args.cases
    ids = args.case if args.case else list(range(ncases))
    if args.shard:
        try:
            k, n = (int(x) for x in args.shard.split("/"))
        except ValueError:
            ap.error("--shard takes K/N, e.g. 0/4")
        if not 0 <= k < n:
            ap.error("--shard K/N needs 0 <= K < N")
        ids = [i for i in ids if i % n == k]

    runner = dropin = None
    if args.runner:
        runner = Runner(args.runner)
        print("library: through the runner %s" % args.runner)
    else:
        import yoloxloss as dropin
        pkg_dir = os.path.dirname(os.path.abspath(dropin.__file__))
        repo_python = repo_paths.PYTHON_DIR
        print("yoloxloss from %s" % pkg_dir)
        if not pkg_dir.startswith(repo_python + os.sep):
            print("error: yoloxloss was not imported from this repository (%s)" % repo_python)
            return 2
        if hasattr(dropin, "library_path"):
            print("library %s" % dropin.library_path())
    check_runs.use_library(dropin, runner)
    if args.isa:
        if not runner and not isa_supported(dropin.library_path(), args.isa):
            # ctest's SKIP_RETURN_CODE: reported as "Skipped", never as passed
            print("NOT TESTED: this build or this CPU has no %s kernels" % args.isa)
            return 77
        print("instruction set: %s ($YOLOXLOSS_ISA)" % args.isa)
    if args.lib_threads is not None:
        print("library threads: %d for every case" % args.lib_threads)
    preflight = preflight_error()
    if preflight:
        print("error: the library cannot run a trivial case: %s" % preflight)
        return 2
    print("torch %s, %d threads; seed %d, %d cases%s" % (torch.__version__, torch.get_num_threads(),
                                                         args.seed, len(ids), " (quick)" if args.quick else ""))
    tally = Tally()
    ref_name = "MMDetection" if args.preset == "mmdet" else "YOLOX"
    t_start = time.perf_counter()
    for i in ids:
        case = make_case(args.seed, i, args.quick)
        if args.preset == "mmdet":
            case = to_mmdet_case(case)
        if args.lib_threads is not None:
            case["num_threads"] = args.lib_threads
        tally.add_case(case)
        try:
            res = check_case(case, tally.stats, args.verbose)
        except Exception as exc:  # a crash of either side is a failure of the case
            import traceback
            traceback.print_exc()
            res = dict(ok=False, notes=["exception: %r" % (exc,)], lerr=float("nan"),
                       gerr=float("nan"), maxg=float("nan"), secs=0.0)
        tally.add_result(i, case, res)
    elapsed = time.perf_counter() - t_start
    tally.print_summary(len(ids), elapsed, ref_name)
    if runner is not None:
        runner.close()
    print("%d passed, %d failed" % (tally.n_pass, tally.n_fail))
    return 0 if tally.n_fail == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
