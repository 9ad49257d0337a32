#!/usr/bin/python3
"""Numerical extremes, end to end: the C library (through the drop-in) against
the independent PyTorch reference (tests/reference/yolox_reference.py) or an
exact value, forward and backward.

Run:  /usr/bin/python3 tests/python/test_extremes.py [-v]
The reference is run with the library's assignment (forced_matched) where
saturated costs tie, as tests/reference/check_reference.py does, so the loss
terms and gradients are compared on the same foreground set.
"""

import math
import unittest

import torch

import repo_paths  # noqa: F401  (puts python/ and tests/reference/ on sys.path)
import yoloxloss
from yolox_reference import yolox_loss_reference

STRIDES = (8, 16)
C = 3
GRIDS = ((6, 6), (3, 3))  # a 48 x 48 px image


def scene(seed=0, B=1):
    g = torch.Generator().manual_seed(seed)
    outs = []
    for (h, w) in GRIDS:
        t = torch.randn(B, 5 + C, h, w, generator=g) * 0.5
        t[:, 0:2] = torch.rand(B, 2, h, w, generator=g)
        outs.append(t)
    labels = torch.zeros(B, 4, 5)
    labels[:, 0] = torch.tensor([1.0, 20.0, 22.0, 14.0, 11.0])
    labels[:, 1] = torch.tensor([2.0, 36.0, 12.0, 20.0, 16.0])
    return outs, labels


def run_both(outs, labels, **kw):
    """(library terms, library grads, reference terms, reference grads)."""
    lib_in = [o.clone().requires_grad_(True) for o in outs]
    ref_in = [o.clone().double().requires_grad_(True) for o in outs]
    lib = yoloxloss.yolox_loss(lib_in, labels, strides=STRIDES, **kw)
    lib[0].backward()
    matched = yoloxloss.yolox_assign(outs, labels, strides=STRIDES, assigner=kw.get("assigner", "yolox"))
    ref = yolox_loss_reference(ref_in, labels, strides=STRIDES, forced_matched=matched,
                               assigner=kw.get("assigner", "yolox"), iou_loss=kw.get("iou_loss", "iou"),
                               use_l1=kw.get("use_l1", False))
    ref[0].backward()
    return ([float(t) for t in lib[:5]], [x.grad for x in lib_in],
            [float(t) for t in ref[:5]], [x.grad.float() for x in ref_in])


class Extremes(unittest.TestCase):
    def assert_matches_reference(self, outs, labels, rtol=1e-5, **kw):
        lt, lg, rt, rg = run_both(outs, labels, **kw)
        for name, a, b in zip(("total", "iou", "obj", "cls", "l1"), lt, rt):
            self.assertTrue(math.isfinite(a), "%s = %r" % (name, a))
            self.assertLessEqual(abs(a - b), rtol * max(abs(b), 0.1), "%s: lib %r ref %r" % (name, a, b))
        scale = max(float(g.abs().max()) for g in rg)
        for lvl, (a, b) in enumerate(zip(lg, rg)):
            self.assertTrue(bool(torch.isfinite(a).all()), "level %d gradient not finite" % lvl)
            self.assertLessEqual(float((a - b).abs().max()), rtol * max(scale, 1e-12), "level %d" % lvl)
        return lt, lg

    def test_logits_far_beyond_100(self):
        # obj/cls logits of +-100, +-1000 and +-1e4: BCE stays exact (no log(0),
        # no exp overflow), the cost saturates without NaN.
        for mag in (100.0, 1000.0, 1e4):
            outs, labels = scene(1)
            g = torch.Generator().manual_seed(int(mag))
            for o in outs:
                sign = torch.randint(0, 2, o[:, 4:].shape, generator=g).float() * 2 - 1
                o[:, 4:] = sign * mag
            for iou_loss in ("iou", "giou"):
                with self.subTest(mag=mag, iou_loss=iou_loss):
                    lt, _ = self.assert_matches_reference(outs, labels, iou_loss=iou_loss, use_l1=True)
                    # each wrong-signed logit costs exactly mag in the obj/cls BCE
                    self.assertGreater(lt[2] + lt[3], mag / 10)

    def test_predicted_boxes_of_size_zero(self):
        # exp(-200) underflows to 0: a zero-size box has IoU 0 with every gt.
        outs, labels = scene(2)
        for o in outs:
            o[:, 2:4] = -200.0
        lt, lg = self.assert_matches_reference(outs, labels)
        fg = yoloxloss.yolox_assign(outs, labels, strides=STRIDES).ge(0).sum().item()
        n = max(fg, 1)
        self.assertEqual(lt[1], 5.0 * fg / n)  # 1 - IoU^2 = 1 for every fg anchor
        for g in lg:
            self.assertTrue(bool((g[:, 0:4] == 0).all()))  # IoU 0: no box gradient

    def test_predicted_boxes_of_a_million_pixels(self):
        outs, labels = scene(3)
        for o, s in zip(outs, STRIDES):
            o[:, 2:4] = math.log(1e6 / s)
        for iou_loss in ("iou", "giou"):
            with self.subTest(iou_loss=iou_loss):
                self.assert_matches_reference(outs, labels, iou_loss=iou_loss, use_l1=True)

    def test_exp_overflow_of_tw_th(self):
        # tw = 100 (and th = -100): exp overflows to inf, as in PyTorch. The
        # forward equals the reference (IoU 0, so 1 - IoU^2 = 1). PyTorch's
        # gradient of tw is 0 * inf = NaN at every anchor (YOLOX decodes all
        # of them), and that of th too where w is infinite; the library's is
        # 0 there, the limit (an infinite box has IoU 0 for any tw), and
        # equal to the reference's everywhere else.
        self.check_exp_overflow("iou")

    def test_exp_overflow_giou(self):
        # GIoU of an infinite box is inf - inf = NaN in PyTorch, loss and
        # gradient. The library's clamp(GIoU) reads NaN as -1 (loss 2) and
        # gives that anchor no box gradient: finite, documented, not PyTorch.
        lt, lg = self.check_exp_overflow("giou", compare_forward=False)
        self.assertTrue(all(math.isfinite(v) for v in lt))

    def check_exp_overflow(self, iou_loss, compare_forward=True):
        outs, labels = scene(4)
        for o in outs:
            o[:, 2] = 100.0
        outs[0][:, 3, :3] = -100.0
        lib_in = [o.clone().requires_grad_(True) for o in outs]
        ref_in = [o.clone().requires_grad_(True) for o in outs]
        lib = yoloxloss.yolox_loss(lib_in, labels, strides=STRIDES, check_finite=True, iou_loss=iou_loss)
        matched = yoloxloss.yolox_assign(outs, labels, strides=STRIDES)
        self.assertGreater(int(matched.ge(0).sum()), 0)
        ref = yolox_loss_reference(ref_in, labels, strides=STRIDES, forced_matched=matched,
                                   iou_loss=iou_loss)
        for a, b in zip(lib[:5], ref[:5]):
            self.assertTrue(math.isfinite(float(a)))
            if compare_forward:
                self.assertLessEqual(abs(float(a) - float(b)), 1e-5 * max(abs(float(b)), 0.1))
        lib[0].backward()
        ref[0].backward()
        for a, b in zip(lib_in, ref_in):
            self.assertTrue(bool(torch.isfinite(a.grad).all()))
            ref_nan = torch.isnan(b.grad)
            self.assertTrue(bool(ref_nan[:, 2].all()))
            self.assertTrue(bool((a.grad[ref_nan] == 0).all()))
            ok = ~ref_nan
            self.assertLessEqual(float((a.grad[ok] - b.grad[ok]).abs().max()), 1e-6)
        return [float(t) for t in lib[:5]], [x.grad for x in lib_in]

    def test_iou_exactly_one(self):
        # Every anchor predicts the 8 x 8 box on its own cell; the gt is the
        # cell (1, 1) of level 0 exactly, so its one match has IoU 1.
        outs, labels = scene(5)
        for o, s in zip(outs, STRIDES):
            o[:, 0:2] = 0.5
            o[:, 2:4] = math.log(8.0 / s)  # 0 on level 0: exp(0) = 1 exactly
        labels.zero_()
        labels[0, 0] = torch.tensor([1.0, 12.0, 12.0, 8.0, 8.0])
        lt, lg = self.assert_matches_reference(outs, labels)
        self.assertEqual(lt[1], 0.0)  # 1 - 1^2
        _, details = None, yoloxloss.yolox_assign_details(outs, labels, strides=STRIDES)
        self.assertEqual(float(details.pred_iou[0, 1 * 6 + 1]), 1.0)
        self.assertTrue(bool((lg[0][0, 0:4, 1, 1] == 0).all()))

    def test_iou_exactly_zero(self):
        # Predictions pushed 100 cells away: IoU 0 with every gt. IoU loss: 1 per
        # fg anchor, box gradient exactly 0; GIoU: finite, equal to the reference.
        outs, labels = scene(6)
        for o in outs:
            o[:, 0:2] = 100.0
        lt, lg = self.assert_matches_reference(outs, labels)
        fg = yoloxloss.yolox_assign(outs, labels, strides=STRIDES).ge(0).sum().item()
        self.assertGreater(fg, 0)
        self.assertEqual(lt[1], 5.0 * fg / max(fg, 1))
        for g in lg:
            self.assertTrue(bool((g[:, 0:4] == 0).all()))
        self.assert_matches_reference(outs, labels, iou_loss="giou")

    def test_gt_smaller_than_a_pixel(self):
        outs, labels = scene(7)
        labels[0, 0] = torch.tensor([0.0, 13.3, 17.7, 0.01, 0.02])
        labels[0, 1] = torch.tensor([2.0, 30.0, 30.0, 1e-4, 1e-4])
        for assigner in ("yolox", "yolox-legacy"):
            for iou_loss in ("iou", "giou"):
                with self.subTest(assigner=assigner, iou_loss=iou_loss):
                    self.assert_matches_reference(outs, labels, assigner=assigner, iou_loss=iou_loss,
                                                  use_l1=True)


class LabelContract(unittest.TestCase):
    """YOLOX's padded labels: the binding names the image and row of a bad one."""

    def test_hole_in_padded_labels(self):
        outs, labels = scene(8, B=2)
        labels[1, 0] = 0.0  # a padding row before the last label of image 1
        with self.assertRaisesRegex(ValueError, r"image 1, row 1: .*padding"):
            yoloxloss.yolox_loss(outs, labels, strides=STRIDES)

    def test_uncounted_row_follows_yolox(self):
        # A real label whose row sum is <= 0 (a box left of and above the
        # image) is not a padding row: YOLOX counts n_b = 1 row with a
        # positive sum and uses the first n_b rows, so the uncounted row is
        # used and the label after it dropped. The binding follows YOLOX.
        outs, labels = scene(10)
        labels[0, 2] = labels[0, 1]
        labels[0, 1] = torch.tensor([0.0, -40.0, -30.0, 6.0, 5.0])
        _, info = yolox_loss_reference(outs, labels, strides=STRIDES, return_info=True)
        details = yoloxloss.yolox_assign_details(outs, labels, strides=STRIDES)
        self.assertEqual(info["num_gt"], 2)
        self.assertEqual(len(details.dynamic_k[0]), 2)

    def test_more_boxes_than_anchors(self):
        # 13 anchors, 20 boxes: every box gets k >= 1 of the few candidates,
        # conflicts resolved by cost; finite and equal to the reference.
        outs = [torch.randn(1, 5 + C, 3, 3), torch.randn(1, 5 + C, 2, 2)]
        g = torch.Generator().manual_seed(9)
        labels = torch.zeros(1, 20, 5)
        labels[0, :, 0] = torch.randint(0, C, (20,), generator=g).float()
        labels[0, :, 1:3] = 4 + torch.rand(20, 2, generator=g) * 16
        labels[0, :, 3:5] = 2 + torch.rand(20, 2, generator=g) * 10
        lib = yoloxloss.yolox_loss(outs, labels, strides=STRIDES)
        matched = yoloxloss.yolox_assign(outs, labels, strides=STRIDES)
        ref = yolox_loss_reference(outs, labels, strides=STRIDES, forced_matched=matched)
        self.assertLessEqual(int(matched.ge(0).sum()), 13)
        for a, b in zip(lib[:5], ref[:5]):
            self.assertTrue(math.isfinite(float(a)))
            self.assertLessEqual(abs(float(a) - float(b)), 1e-5 * max(abs(float(b)), 0.1))


if __name__ == "__main__":
    unittest.main()
