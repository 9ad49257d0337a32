#!/usr/bin/python3
"""Tests of the Python binding's numbers on small cases: its gradient against
central differences of its own float32 loss (element by element for the
objectness and class channels, along random directions for the box
channels, wherever the perturbation leaves the assignment as it was), and
what yolox_assign and yolox_assign_details report (shapes, ranges, dynamic
k, consistency with the loss's fg ratio, the level-major anchor order).

Run from anywhere:  /usr/bin/python3 tests/python/test_binding_math.py [-v]
"""

import unittest

import torch

import repo_paths  # noqa: F401 (puts python/ (yoloxloss) and tests/reference/ on sys.path)
import yoloxloss
from binding_cases import case, clone_outputs, make_labels, make_outputs, split


class TestFiniteDifferences(unittest.TestCase):
    """Gradient vs central differences of the float32 loss on a tiny case."""

    def setUp(self):
        gen = torch.Generator().manual_seed(12)
        self.strides = (8, 16)
        self.labels = make_labels(gen, [2], 3, img=32)
        self.outputs = [x.detach() for x in make_outputs(gen, 1, 3, strides=self.strides, img=32)]

    def loss(self, outs, parts=(0,), **kw):
        res = yoloxloss.yolox_loss(outs, self.labels, strides=self.strides, **kw)
        return sum(float(res[i]) for i in parts)

    def assign(self, outs):
        return yoloxloss.yolox_assign(outs, self.labels, strides=self.strides)

    def grads(self, parts=(0,), **kw):
        x = clone_outputs(self.outputs)
        res = yoloxloss.yolox_loss(x, self.labels, strides=self.strides, **kw)
        sum(res[i] for i in parts).backward()
        return [t.grad for t in x]

    def test_obj_cls_elementwise(self):
        for kw in ({}, {"use_l1": True, "iou_loss": "giou", "cls_weight": 2.0}):
            grads = self.grads(**kw)
            base_assign = self.assign(self.outputs)
            fg = (base_assign[0] >= 0).nonzero().flatten().tolist()
            self.assertTrue(fg)
            checked = 0
            # Anchor index -> (level, i, j) with level 0 = 4x4, level 1 = 2x2.
            anchors = [(0, a // 4, a % 4) for a in range(16)] + [(1, a // 2, a % 2) for a in range(4)]
            picks = [(anchors[a], ch) for a in fg[:4] for ch in (4, 5, 6, 7)]
            picks += [(anchors[a], 4) for a in (0, 5, 17)]
            for (lvl, i, j), ch in picks:
                eps = 1e-2
                plus = [x.clone() for x in self.outputs]
                minus = [x.clone() for x in self.outputs]
                plus[lvl][0, ch, i, j] += eps
                minus[lvl][0, ch, i, j] -= eps
                if not (torch.equal(self.assign(plus), base_assign)
                        and torch.equal(self.assign(minus), base_assign)):
                    continue  # the perturbation moved the assignment
                h = float(plus[lvl][0, ch, i, j]) - float(minus[lvl][0, ch, i, j])
                fd = (self.loss(plus, **kw) - self.loss(minus, **kw)) / h
                g = float(grads[lvl][0, ch, i, j])
                self.assertLess(abs(fd - g), 2e-3 + 2e-2 * abs(g),
                                "kw=%s level %d ch %d (%d,%d): fd %g grad %g"
                                % (kw, lvl, ch, i, j, fd, g))
                checked += 1
            self.assertGreaterEqual(checked, len(picks) // 2)

    def test_reg_directional(self):
        # Only the iou and l1 terms: the cls target pred_iou depends on the
        # boxes but is a constant of the gradient (as in YOLOX), so a finite
        # difference of total would see a term the gradient rightly lacks.
        parts = (1, 4)
        for kw in ({}, {"use_l1": True}, {"iou_loss": "giou"}):
            grads = self.grads(parts, **kw)
            base_assign = self.assign(self.outputs)
            gen = torch.Generator().manual_seed(13)
            done = 0
            for trial in range(6):
                d = [torch.zeros_like(x) for x in self.outputs]
                for x, dx in zip(self.outputs, d):
                    dx[:, :4] = torch.randn(dx[:, :4].shape, generator=gen)
                deriv = sum(float((g * dx).sum()) for g, dx in zip(grads, d))
                for eps in (1e-3, 3e-4):
                    plus = [x + eps * dx for x, dx in zip(self.outputs, d)]
                    minus = [x - eps * dx for x, dx in zip(self.outputs, d)]
                    if (torch.equal(self.assign(plus), base_assign)
                            and torch.equal(self.assign(minus), base_assign)):
                        break
                else:
                    continue
                fd = (self.loss(plus, parts, **kw) - self.loss(minus, parts, **kw)) / (2 * eps)
                self.assertLess(abs(fd - deriv), 5e-3 + 3e-2 * abs(deriv),
                                "kw=%s trial %d: fd %g grad.d %g" % (kw, trial, fd, deriv))
                done += 1
            self.assertGreaterEqual(done, 3)


class TestAssign(unittest.TestCase):
    def test_assign_shapes_and_consistency(self):
        outputs, labels = case(14, num_boxes=(3, 0, 2))
        m = yoloxloss.yolox_assign(outputs, labels)
        self.assertEqual(m.dtype, torch.int64)
        self.assertEqual(tuple(m.shape), (3, 84))
        n = (labels.sum(dim=2) > 0).sum(dim=1)
        for b in range(3):
            self.assertTrue(bool(((m[b] >= -1) & (m[b] < n[b])).all()))
        self.assertTrue(bool((m[1] == -1).all()))
        det = yoloxloss.yolox_assign_details(outputs, labels)
        matched, pred_iou, dyn_k = det
        self.assertTrue(torch.equal(matched, m))
        self.assertEqual(pred_iou.dtype, torch.float32)
        self.assertEqual(pred_iou.shape, m.shape)
        self.assertTrue(bool((pred_iou[m < 0] == 0).all()))
        self.assertTrue(bool(((pred_iou[m >= 0] >= 0) & (pred_iou[m >= 0] <= 1)).all()))
        self.assertEqual(len(dyn_k), 3)
        for b in range(3):
            self.assertEqual(dyn_k[b].dtype, torch.int64)
            self.assertEqual(tuple(dyn_k[b].shape), (int(n[b]),))
            for g in range(int(n[b])):
                taken = int((m[b] == g).sum())
                self.assertLessEqual(taken, int(dyn_k[b][g]))
        # Consistency with the loss: fg_ratio = max(num_fg, 1) / max(num_gt, 1).
        res = yoloxloss.yolox_loss(outputs, labels)
        num_fg = int((m >= 0).sum())
        num_gt = int(n.sum())
        self.assertAlmostEqual(float(res[5]), max(num_fg, 1) / max(num_gt, 1), delta=1e-6)
        self.assertGreater(num_fg, 0)
        # The assignment does not depend on loss options, and matches the legacy one's shape.
        legacy = yoloxloss.yolox_assign(outputs, labels, assigner="yolox-legacy")
        self.assertEqual(legacy.shape, m.shape)
        # Split layout: same assignment.
        self.assertTrue(torch.equal(yoloxloss.yolox_assign(split(outputs), labels), m))

    def test_anchor_order(self):
        # A lone gt whose centre box covers only anchors of level 0 near
        # (row 5, col 2): every fg anchor must lie in level 0's range and close
        # to that cell, which pins the level-major, i * W + j order.
        gen = torch.Generator().manual_seed(15)
        outputs = make_outputs(gen, 1, 2)
        labels = torch.zeros(1, 1, 5)
        labels[0, 0] = torch.tensor([1, 2.5 * 8, 5.5 * 8, 9.0, 9.0])  # centre on cell (5, 2)
        m = yoloxloss.yolox_assign(outputs, labels)
        fg = (m[0] >= 0).nonzero().flatten().tolist()
        self.assertTrue(fg)
        # Candidates of level 0: |xc - cx| < 1.5 * 8 -> columns 1..3, rows 4..6;
        # level 1 (stride 16): radius 24 -> cells whose centres are within 24 px.
        for a in fg:
            if a < 64:
                i, j = divmod(a, 8)
                self.assertTrue(4 <= i <= 6 and 1 <= j <= 3, (a, i, j))
            elif a < 80:
                i, j = divmod(a - 64, 4)
                self.assertTrue(abs((j + 0.5) * 16 - 20) < 24 and abs((i + 0.5) * 16 - 44) < 24,
                                (a, i, j))
            else:
                i, j = divmod(a - 80, 2)
                self.assertTrue(abs((j + 0.5) * 32 - 20) < 48 and abs((i + 0.5) * 32 - 44) < 48,
                                (a, i, j))

if __name__ == "__main__":
    unittest.main()
