#!/usr/bin/python3
"""Tests of the Python binding's pool of C contexts: steps reuse them, graphs
waiting for their backward hold their own, every spelling of one
configuration shares a pool, and Python threads calling at once get the
results of one thread.

Run from anywhere:  /usr/bin/python3 tests/python/test_binding_contexts.py [-v]
"""

import threading
import unittest

import torch

import repo_paths  # noqa: F401 (puts python/ (yoloxloss) and tests/reference/ on sys.path)
import yoloxloss
from binding_cases import case, clone_outputs, loss_and_grads


class TestContexts(unittest.TestCase):
    def test_contexts_are_reused(self):
        outputs, labels = case(17)
        loss_and_grads(outputs, labels)
        before = yoloxloss._pool.Context.created
        for _ in range(10):
            res, _ = loss_and_grads(outputs, labels)
            del res
        with torch.no_grad():
            for _ in range(5):
                yoloxloss.yolox_loss(outputs, labels)
                yoloxloss.yolox_assign(outputs, labels)
        self.assertLessEqual(yoloxloss._pool.Context.created - before, 1)

    def test_outstanding_graphs_use_own_contexts(self):
        # Several forwards before any backward: each graph keeps its own
        # assignment, so gradients match those of one forward+backward each.
        cases = [case(20 + i) for i in range(3)]
        expect = [loss_and_grads(o, l)[1] for o, l in cases]
        xs = [clone_outputs(o) for o, _ in cases]
        results = [yoloxloss.yolox_loss(x, l) for x, (_, l) in zip(xs, cases)]
        for k in (2, 0, 1):
            results[k][0].backward()
            for g, t in zip(expect[k], xs[k]):
                self.assertTrue(torch.equal(g, t.grad))
        # A graph dropped without backward gives its context back.
        before = yoloxloss._pool.Context.created
        for _ in range(5):
            res = yoloxloss.yolox_loss(clone_outputs(cases[0][0]), cases[0][1])
            del res
        self.assertLessEqual(yoloxloss._pool.Context.created - before, 1)

    def test_spellings_of_one_configuration_share_a_pool(self):
        from dataclasses import FrozenInstanceError
        LossOptions = yoloxloss._options.LossOptions
        a = LossOptions(num_classes=3, strides=[8, 16, 32], assigner="YOLOX_legacy",
                        iou_loss="GIoU", use_l1=1, reg_weight=5, num_threads=1)
        b = LossOptions(num_classes=3, strides=(8.0, 16.0, 32.0), assigner="yolox-legacy",
                        iou_loss="giou", use_l1=True, reg_weight=5.0, num_threads=1)
        self.assertEqual(a, b)
        self.assertEqual(hash(a), hash(b))
        self.assertNotEqual(a, LossOptions(num_classes=3, strides=(8, 16, 32), num_threads=1))
        with self.assertRaises(FrozenInstanceError):
            a.num_threads = 2
        self.assertIs(yoloxloss._pool.pool_for(a), yoloxloss._pool.pool_for(b))
        outputs, labels = case(18)
        yoloxloss.yolox_loss(outputs, labels, assigner="yolox_legacy", num_threads=1)
        before = yoloxloss._pool.Context.created
        for spelling in ("yolox-legacy", "YOLOX_LEGACY", "Yolox-Legacy"):
            yoloxloss.yolox_loss(outputs, labels, assigner=spelling, num_threads=1)
        self.assertEqual(yoloxloss._pool.Context.created - before, 0)

    def test_threads(self):
        cases = [case(30 + i, num_boxes=(2, 1)) for i in range(4)]
        expect = [loss_and_grads(o, l, num_threads=1) for o, l in cases]
        errors = []

        def worker(k):
            try:
                for it in range(6):
                    o, l = cases[(k + it) % 4]
                    res, grads = loss_and_grads(o, l, num_threads=1)
                    e_res, e_grads = expect[(k + it) % 4]
                    ok = all(torch.equal(a, b) for a, b in zip(res, e_res))
                    ok = ok and all(torch.equal(a, b) for a, b in zip(grads, e_grads))
                    if not ok:
                        errors.append("thread %d iteration %d differs" % (k, it))
            except Exception as exc:  # pragma: no cover
                errors.append("thread %d: %r" % (k, exc))

        threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(errors, [])

if __name__ == "__main__":
    unittest.main()
