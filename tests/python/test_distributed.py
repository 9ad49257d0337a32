#!/usr/bin/python3
"""Tests of yolox_loss(normalizer="mean_over_ranks", process_group=...).

In this process: the errors that need no process group (torch.distributed
missing or not initialised, a misspelt normaliser, a process_group without
it). Then this script starts itself as the workers of a gloo group over
loopback (127.0.0.1, GLOO_SOCKET_IFNAME=lo), of 1 and of 2 processes, and
each worker checks on its own data (a different num_fg on each rank) that
the loss and gradients equal those of the explicit normaliser
max(mean num_fg, 1), that the all-reduce runs once per forward (not again
for a second backward), and the errors that need a group (a group without
this rank, a process_group that is not a group). Workers are bounded in
time and killed when the test ends.

Run: /usr/bin/python3 tests/python/test_distributed.py [-v]
(the library as for test_binding.py; Skipped, exit 77, where this PyTorch
has no torch.distributed or no gloo).
"""

import argparse
import datetime
import gc
import os
import signal
import socket
import subprocess
import sys
import time
import unittest
from unittest import mock

import torch

import repo_paths  # puts python/ (yoloxloss) and tests/reference/ on sys.path
import yoloxloss
from binding_cases import case, clone_outputs, leaves

WORKER_TIMEOUT = 120  # seconds for a group's workers to finish


def loss_and_grads(outputs, labels, **kw):
    outputs = clone_outputs(outputs)
    res = yoloxloss.yolox_loss(outputs, labels, **kw)
    res[0].backward()
    return [float(t) for t in res], [t.grad for t in leaves(outputs)]


def num_fg(outputs, labels):
    return int((yoloxloss.yolox_assign([o.detach() for o in outputs], labels) >= 0).sum())


class SingleProcess(unittest.TestCase):
    def setUp(self):
        self.outputs, self.labels = case(3)

    def test_not_initialised(self):
        with self.assertRaisesRegex(RuntimeError, "init_process_group"):
            yoloxloss.yolox_loss(self.outputs, self.labels, normalizer="mean_over_ranks")

    def test_distributed_missing(self):
        import torch.distributed as dist
        with mock.patch.object(dist, "is_available", return_value=False):
            with self.assertRaisesRegex(RuntimeError, "needs torch.distributed"):
                yoloxloss.yolox_loss(self.outputs, self.labels, normalizer="mean_over_ranks")

    def test_spelling(self):
        with self.assertRaisesRegex(ValueError, "mean_over_ranks"):
            yoloxloss.yolox_loss(self.outputs, self.labels, normalizer="mean")
        # the spelling rules of the other names: case and '-' for '_'
        with self.assertRaisesRegex(RuntimeError, "init_process_group"):
            yoloxloss.yolox_loss(self.outputs, self.labels, normalizer="Mean-Over-Ranks")

    def test_process_group_needs_the_normaliser(self):
        for normalizer in (None, 2.0):
            with self.assertRaisesRegex(ValueError, "process_group is used only"):
                yoloxloss.yolox_loss(self.outputs, self.labels, normalizer=normalizer,
                                     process_group=object())

    def test_group_of_one(self):
        run_workers(1)

    def test_group_of_two(self):
        run_workers(2)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_workers(size):
    """Starts `size` workers of one gloo group; fails unless all exit 0."""
    port = free_port()
    env = dict(os.environ, GLOO_SOCKET_IFNAME="lo", OMP_NUM_THREADS="1")
    procs = [subprocess.Popen([sys.executable, os.path.abspath(__file__), "--worker", str(rank), str(size),
                               str(port)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL, text=True, start_new_session=True)
             for rank in range(size)]
    deadline = time.monotonic() + WORKER_TIMEOUT
    outputs, failed = [], []
    try:
        for rank, p in enumerate(procs):
            try:
                out, _ = p.communicate(timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                out = "(no result after %d s)" % WORKER_TIMEOUT
            outputs.append(out)
            if p.returncode != 0:
                failed.append(rank)
    finally:
        for p in procs:  # a worker left waiting in a collective, and anything it started
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait()
    if failed:
        raise AssertionError("group of %d: worker(s) %s failed:\n%s" % (
            size, failed, "\n".join("--- rank %d\n%s" % (r, o) for r, o in enumerate(outputs))))


def worker(rank, size, port):
    """One rank's checks; raises AssertionError on a failure."""
    import torch.distributed as dist
    dist.init_process_group("gloo", init_method="tcp://127.0.0.1:%d" % port, rank=rank, world_size=size,
                            timeout=datetime.timedelta(seconds=60))
    try:
        check_rank(dist, rank, size)
    finally:
        gc.collect()
        dist.destroy_process_group()
    print("rank %d of %d: ok" % (rank, size))


def expect_equal(got, want, what):
    (g_loss, g_grads), (w_loss, w_grads) = got, want
    assert g_loss == w_loss, "%s: losses %s, expected %s" % (what, g_loss, w_loss)
    for a, b in zip(g_grads, w_grads):
        assert torch.equal(a, b), "%s: gradients differ by %g" % (what, float((a - b).abs().max()))


def check_rank(dist, rank, size):
    # Each rank its own images: rank 1 has none with boxes, so num_fg differs.
    outputs, labels = case(20 + rank, num_boxes=(3, 1, 2) if rank == 0 else (0, 0))
    mine = torch.tensor([float(num_fg(outputs, labels))])
    total = mine.clone()
    dist.all_reduce(total)
    expected_n = max(float(total) / size, 1.0)
    assert (float(mine) > 0) == (rank == 0), "the cases should give rank 0 alone foreground anchors"

    want = loss_and_grads(outputs, labels, normalizer=expected_n)
    expect_equal(loss_and_grads(outputs, labels, normalizer="mean_over_ranks"), want, "default group")
    everyone = dist.new_group(list(range(size)))
    expect_equal(loss_and_grads(outputs, labels, normalizer="mean_over_ranks", process_group=everyone),
                 want, "explicit group")
    with torch.no_grad():
        values = [float(t) for t in yoloxloss.yolox_loss(outputs, labels, normalizer="mean_over_ranks")]
    assert values == want[0], "without a graph: %s, expected %s" % (values, want[0])

    # One all-reduce per forward, none for a second backward (retain_graph
    # redoes the C forward with the value already known).
    calls = []
    real_all_reduce = dist.all_reduce

    def counting_all_reduce(*args, **kwargs):
        calls.append(1)
        return real_all_reduce(*args, **kwargs)
    x = clone_outputs(outputs)
    with mock.patch.object(dist, "all_reduce", counting_all_reduce):
        res = yoloxloss.yolox_loss(x, labels, normalizer="mean_over_ranks")
        res[0].backward(retain_graph=True)
        first = [t.grad.clone() for t in leaves(x)]
        for t in leaves(x):
            t.grad = None
        res[0].backward()
    assert len(calls) == 1, "%d all-reduces for one forward and two backwards" % len(calls)
    for a, b in zip(first, [t.grad for t in leaves(x)]):
        assert torch.equal(a, b), "the second backward differs from the first"

    # A group this rank is not in (new_group is itself a collective: every
    # rank makes it); rank 0 alone averages over itself.
    first_only = dist.new_group([0])
    if rank == 0:
        expect_equal(loss_and_grads(outputs, labels, normalizer="mean_over_ranks", process_group=first_only),
                     loss_and_grads(outputs, labels), "group of rank 0 alone")
    else:
        try:
            yoloxloss.yolox_loss(outputs, labels, normalizer="mean_over_ranks", process_group=first_only)
        except ValueError as e:
            assert "does not contain this process" in str(e), e
        else:
            raise AssertionError("no error for a group without this rank")
    try:
        yoloxloss.yolox_loss(outputs, labels, normalizer="mean_over_ranks", process_group=[0, 1])
    except TypeError as e:
        assert "new_group" in str(e), e
    else:
        raise AssertionError("no error for a list as process_group")

    # No foreground anchor on any rank: N = 1, YOLOX's max(num_fg, 1).
    empty_out, empty_labels = case(40 + rank, num_boxes=(0, 0))
    expect_equal(loss_and_grads(empty_out, empty_labels, normalizer="mean_over_ranks"),
                 loss_and_grads(empty_out, empty_labels), "no foreground anywhere")


def distributed_missing():
    """Why the group tests cannot run here, or None."""
    import torch.distributed as dist
    if not dist.is_available():
        return "this PyTorch has no torch.distributed"
    if not dist.is_gloo_available():
        return "this PyTorch has no gloo backend"
    return None


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        ap = argparse.ArgumentParser()
        ap.add_argument("--worker", nargs=3, type=int, metavar=("RANK", "SIZE", "PORT"))
        worker(*ap.parse_args().worker)
        sys.exit(0)
    reason = distributed_missing()
    if reason:
        print("Skipped: " + reason)
        sys.exit(77)
    unittest.main()
