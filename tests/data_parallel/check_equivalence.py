#!/usr/bin/env python3
"""Data-parallel training equals one process: the test of the two examples.

Runs a data-parallel example three times on the same global batches and
compares what each run writes (its results file: "loss STEP TOTAL IOU OBJ
CLS L1" rows, optionally "num_fg STEP N", then "param NAME INDEX VALUE"):

  1. one process on the whole batch (the reference);
  2. R ranks, each on its B/R images, with the global normaliser: every
     loss term of every step, every num_fg, and every parameter after the
     last step must agree with the reference within the tolerances below;
  3. R ranks with each rank's own normaliser: must NOT agree (shows that
     the comparison can fail, and why the normaliser matters).

  mpi:    examples/train_data_parallel_mpi through mpiexec (Open MPI), shared
          memory only (--mca btl self,vader), --oversubscribe.
  torch:  examples/pytorch_ddp.py through ``python -m torch.distributed.run``,
          gloo over loopback (127.0.0.1, GLOO_SOCKET_IFNAME=lo) on a free port.

Every run has a time limit, starts in a process group of its own, and the
whole group (launcher and ranks) is killed when the run ends, whether it
passed, failed or timed out, so no rank outlives it. Uses the standard
library only. Exits 0 when all agree, 1 otherwise, 77 (Skipped) when the
torch mode's PyTorch has no torch.distributed or no gloo; prints the
measured differences and the wall time of each run.

Tolerances. The runs differ only in the grouping of float32 sums: the
parameter gradient is summed per rank, then across ranks, instead of over
all images at once (and, in PyTorch, the convolutions may block a batch of
B/R images differently from one of B). On the first step that is float32
rounding: 4e-8 in the losses of the MPI example, up to 2e-6 of the largest
gradient component (where many terms cancel). Training amplifies it: Adam's
first steps are close to sign steps, so a gradient component near zero
moves its parameter by the learning rate either way, and SimOTA's
assignment is discrete, so a cost that crosses a tie moves an anchor.
Measured on the MPI example, largest loss difference: 4e-8 at step 1,
9e-7 at step 10, 7e-6 at step 12, 2e-4 at step 15, and num_fg first
differs at step 19 (after which the two runs are two different, equally
valid trainings). So each comparison is 10 steps long (--steps), and its
tolerances (--loss-tol, --param-tol, defaults 1e-5) sit 6x (MPI parameters,
1.6e-6) to 100x (PyTorch losses, 9e-8) above the differences measured
there, while the run without the global normaliser differs by 1e-3 to 1e-2
from the first step. Longer runs are checked inside each example, step by
step, against one process from the same parameters.
"""

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

LOSS_TERMS = ("total", "iou", "obj", "cls", "l1")


class RunFailed(Exception):
    pass


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def kill_group(pgid):
    """SIGTERM, then SIGKILL, to every process left in the group."""
    for sig, grace in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 0.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)


def run(name, cmd, env, timeout):
    """Runs cmd in a new process group; -> (exit status, output, seconds).
    Whatever of the group is still alive afterwards is killed."""
    print("$ " + " ".join(cmd), flush=True)
    start = time.monotonic()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True, text=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc.pid)
        out, _ = proc.communicate()
        print(out)
        raise RunFailed("%s: no result after %d s; killed it and its ranks" % (name, timeout))
    finally:
        kill_group(proc.pid)
    seconds = time.monotonic() - start
    print(out, end="" if out.endswith("\n") or not out else "\n")
    return proc.returncode, out, seconds


def read_results(path):
    """{"loss": {step: [5 floats]}, "num_fg": {step: int}, "param": {(name, index): float}}"""
    results = {"loss": {}, "num_fg": {}, "param": {}}
    try:
        f = open(path)
    except OSError as e:
        raise RunFailed("no results from the run: %s" % e) from None
    with f:
        for number, line in enumerate(f, 1):
            fields = line.split()
            try:
                if fields[0] == "loss" and len(fields) == 2 + len(LOSS_TERMS):
                    results["loss"][int(fields[1])] = [float(v) for v in fields[2:]]
                elif fields[0] == "num_fg" and len(fields) == 3:
                    results["num_fg"][int(fields[1])] = int(fields[2])
                elif fields[0] == "param" and len(fields) == 4:
                    results["param"][(fields[1], int(fields[2]))] = float(fields[3])
                else:
                    raise ValueError
            except (ValueError, IndexError):
                raise RunFailed("%s:%d: not a results line: %r" % (path, number, line)) from None
    if not results["loss"] or not results["param"]:
        raise RunFailed("%s has no losses or no parameters" % path)
    return results


def relative(a, b):
    """|a - b| relative to |a| (absolute when a is 0)."""
    return abs(a - b) / abs(a) if a != 0 else abs(b)


def differences(ref, other):
    """The largest differences of other from ref: (loss relative difference,
    its step, its term), the steps whose num_fg differ as (step, ref, other),
    and (parameter difference relative to the largest |value| of its tensor
    in ref, the tensor's name)."""
    if sorted(ref["loss"]) != sorted(other["loss"]) or sorted(ref["param"]) != sorted(other["param"]):
        raise RunFailed("the runs wrote different steps or parameters")
    loss = max(((relative(a, b), step, term) for step, want in sorted(ref["loss"].items())
                for term, a, b in zip(LOSS_TERMS, want, other["loss"][step])), key=lambda x: x[0])
    fg = [(step, n, other["num_fg"].get(step)) for step, n in sorted(ref["num_fg"].items())
          if other["num_fg"].get(step) != n]
    scale = {}
    for (name, _), v in ref["param"].items():
        scale[name] = max(scale.get(name, 0.0), abs(v))
    param = max(((abs(v - other["param"][key]) / (scale[key[0]] or 1.0), key[0])
                 for key, v in sorted(ref["param"].items())), key=lambda x: x[0])
    return loss, fg, param


def per_step(ref, other):
    """The largest relative loss difference of each step, as text."""
    return " ".join("%d:%.1g" % (step, max(relative(a, b) for a, b in zip(want, other["loss"][step])))
                    for step, want in sorted(ref["loss"].items()))


def describe(loss, fg, param, steps, recorded_fg):
    if not recorded_fg:
        fg_text = "num_fg not recorded"
    elif not fg:
        fg_text = "num_fg equal at every step"
    else:
        fg_text = "num_fg differs from step %d (%d against %d) on, %d steps in all" % (fg[0] + (len(fg),))
    return ("losses: largest relative difference %.2g (step %s, %s); %s\n"
            "parameters after step %d: largest difference %.2g of the largest |value| of its tensor (%s)"
            % (loss[0], loss[1], loss[2], fg_text, steps, param[0], param[1]))


def mpi_runs(args, _log_dir):
    mpiexec = [args.mpiexec, "--oversubscribe", "--mca", "btl", "self,vader",
               "--mca", "btl_vader_single_copy_mechanism", "none", "--mca", "oob_tcp_if_include", "lo"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    if os.geteuid() == 0:  # CI runs as root; Open MPI refuses that unless told
        env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")

    def command(ranks, out, variant):
        return (mpiexec + ["-np", str(ranks), args.exe, str(args.steps), "--out", out]
                + (["--local-normalizer"] if variant else []))
    return command, env


def torch_runs(args, log_dir):
    env = dict(os.environ, OMP_NUM_THREADS="1", GLOO_SOCKET_IFNAME="lo", MASTER_ADDR="127.0.0.1",
               PYTHONDONTWRITEBYTECODE="1")

    def command(ranks, out, variant):
        # --redirects/--tee 9:0: PyTorch 1.13's launcher cannot parse its own
        # default "0" under Python 3.11 (Debian 12); a mapping that names no
        # local rank means the same (nothing redirected). Its log directory
        # goes with the run's other files.
        return ([args.python, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", str(ranks),
                 "--master_addr", "127.0.0.1", "--master_port", str(free_port()),
                 "--redirects", "9:0", "--tee", "9:0", "--log_dir", log_dir, args.script,
                 "--steps", str(args.steps), "--batch", str(args.batch), "--out", out]
                + (["--normalizer", "local"] if variant else []))
    return command, env


def torch_missing(python):
    """Why the torch mode cannot run with this interpreter, or None."""
    probe = ("import torch.distributed as d\n"
             "print('' if d.is_available() and d.is_gloo_available() else\n"
             "      'this PyTorch has no gloo backend' if d.is_available() else\n"
             "      'this PyTorch has no torch.distributed')")
    done = subprocess.run([python, "-c", probe], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          text=True, timeout=30, check=True)
    return done.stdout.strip() or None


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    mpi = sub.add_parser("mpi", help="examples/train_data_parallel_mpi.c through mpiexec")
    mpi.add_argument("--mpiexec", required=True)
    mpi.add_argument("--exe", required=True, help="the built train_data_parallel_mpi")
    mpi.add_argument("--steps", type=int, default=10)
    tch = sub.add_parser("torch", help="examples/pytorch_ddp.py through torch.distributed.run")
    tch.add_argument("--python", default=sys.executable)
    tch.add_argument("--script", required=True, help="examples/pytorch_ddp.py")
    tch.add_argument("--steps", type=int, default=10)
    tch.add_argument("--batch", type=int, default=8, help="global batch, divisible by --ranks")
    for p in (mpi, tch):
        p.add_argument("--ranks", type=int, default=2)
        p.add_argument("--loss-tol", type=float, default=1e-5)
        p.add_argument("--param-tol", type=float, default=1e-5)
        p.add_argument("--timeout", type=int, default=120, help="seconds per run")
    args = parser.parse_args()
    if args.mode == "torch":
        reason = torch_missing(args.python)
        if reason:
            print("Skipped: " + reason)
            return 77
    failures = []
    with tempfile.TemporaryDirectory(prefix="yoloxloss-dp-") as tmp:
        command, env = (mpi_runs if args.mode == "mpi" else torch_runs)(args, os.path.join(tmp, "logs"))
        paths = {k: os.path.join(tmp, k + ".txt") for k in ("reference", "parallel", "local")}
        runs = (("reference", 1, False, "1 process, whole batch"),
                ("parallel", args.ranks, False, "%d ranks, global normaliser" % args.ranks),
                ("local", args.ranks, True, "%d ranks, each rank's own normaliser" % args.ranks))
        seconds = {}
        try:
            for key, ranks, variant, _ in runs:
                if variant:
                    print("(this run must fail its own check)", flush=True)
                status, _, seconds[key] = run(key, command(ranks, paths[key], variant), env, args.timeout)
                if variant:
                    # the example's own check against one process must catch it too
                    if status == 0:
                        failures.append("the run without the global normaliser passed its own check")
                elif status != 0:
                    raise RunFailed("%s run failed with status %d" % (key, status))
            ref, parallel = read_results(paths["reference"]), read_results(paths["parallel"])
            steps, recorded_fg = max(ref["loss"]), bool(ref["num_fg"])
            loss, fg, param = differences(ref, parallel)
            print("\n%d ranks against 1 process, %d steps:\n%s\nlargest loss difference by step: %s"
                  % (args.ranks, steps, describe(loss, fg, param, steps, recorded_fg), per_step(ref, parallel)))
            if loss[0] > args.loss_tol or param[0] > args.param_tol or fg:
                failures.append("%d ranks do not reproduce one process (tolerances: loss %.0e, "
                                "parameters %.0e, num_fg exact)" % (args.ranks, args.loss_tol, args.param_tol))
            local = read_results(paths["local"])
            bad_loss, bad_fg, bad_param = differences(ref, local)
            print("without the global normaliser:\n%s\nlargest loss difference by step: %s"
                  % (describe(bad_loss, bad_fg, bad_param, steps, recorded_fg), per_step(ref, local)))
            if bad_loss[0] <= args.loss_tol and bad_param[0] <= args.param_tol:
                failures.append("the run without the global normaliser agrees with one process: "
                                "the comparison cannot tell")
        except RunFailed as e:
            failures.append(str(e))
        print("wall time: " + ", ".join("%s %.1f s" % (label, seconds[key])
                                        for key, _, _, label in runs if key in seconds))
    for f in failures:
        print("FAILED: " + f, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
