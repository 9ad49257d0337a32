#!/usr/bin/python3
"""The drop-in's label forms and per-image losses.

Labels: ``num_gt=`` (each image's count) and a list of per-image ``[n_b, 5]``
tensors (MMDetection's form) give what the padded tensor gives with the
right rows; a real box of class 0 with a negative centre, which YOLOX's rule
(rows whose sum is > 0) drops, is counted when num_gt says so and then
agrees with the PyTorch reference given the same count; wrong lengths,
counts and shapes are refused naming what is wrong. Per-image losses
(``image_losses=True``): each row is the image's forward alone with the
batch's normaliser, the rows add up to the batch's terms, and each row
agrees with the reference run on that image alone. ``use_library`` passes a
per-image list through.

Run from anywhere:  /usr/bin/python3 tests/python/test_labels.py [-v]
"""

import contextlib
import ctypes
import math
import unittest

import torch

import repo_paths  # noqa: F401  (puts python/ and tests/reference/ on sys.path)
import yoloxloss
import yoloxloss.yolox as yolox_switch
import yolox_reference
from yolox_reference import yolox_loss_reference

STRIDES = (8, 16, 32)
IMG = 64
C = 4


def head_outputs(seed, B, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    outs = []
    for s in STRIDES:
        n = IMG // s
        t = torch.randn(B, 5 + C, n, n, generator=g) * 0.5
        t[:, 0:2] = torch.rand(B, 2, n, n, generator=g)
        t[:, 2:4] += 0.6
        outs.append(t.to(dtype))
    return outs


def random_labels(seed, counts, M=6):
    """Padded [B, M, 5] labels with counts[b] boxes in image b, zeros after."""
    g = torch.Generator().manual_seed(seed + 77)
    lab = torch.zeros(len(counts), M, 5)
    for b, n in enumerate(counts):
        for r in range(n):
            cx, cy = (float(v) for v in 8 + (IMG - 16) * torch.rand(2, generator=g))
            w, h = (float(v) for v in 8 + 30 * torch.rand(2, generator=g))
            lab[b, r] = torch.tensor([float((b + 2 * r) % C), cx, cy, w, h])
    return lab


def values(result):
    return [float(t) for t in result[:6]]


@contextlib.contextmanager
def reference_counts(counts):
    """The reference uses the given per-image counts instead of YOLOX's rule."""
    saved = yolox_reference.count_labels
    yolox_reference.count_labels = lambda labels: torch.as_tensor(counts, dtype=torch.int64)
    try:
        yield
    finally:
        yolox_reference.count_labels = saved


class LabelForms(unittest.TestCase):
    def test_num_gt_and_lists_equal_the_padded_tensor(self):
        for dtype in (torch.float32, torch.float16, torch.bfloat16):
            for seed in range(3):
                counts = [2, 0, 3]
                outs = head_outputs(seed, 3, dtype)
                lab = random_labels(seed, counts)
                want = values(yoloxloss.yolox_loss(outs, lab, use_l1=True))
                # padded with garbage past the counts: not read
                noisy = lab.clone()
                for b, n in enumerate(counts):
                    noisy[b, n:] = float("nan")
                for form, kw in (("num_gt list", dict(labels=noisy, num_gt=counts)),
                                 ("num_gt tensor", dict(labels=noisy, num_gt=torch.tensor(counts, dtype=torch.int32))),
                                 ("per-image list", dict(labels=[lab[b, :n] for b, n in enumerate(counts)])),
                                 ("per-image int/float mix",
                                  dict(labels=[lab[0, :2].double(), lab[1, :0].long(), lab[2, :3]]))):
                    got = values(yoloxloss.yolox_loss(outs, use_l1=True, **kw))
                    self.assertEqual(got, want, "%s %s seed %d" % (form, dtype, seed))
                    details = yoloxloss.yolox_assign_details(outs, **kw)
                    self.assertEqual([len(k) for k in details.dynamic_k], counts)
                    self.assertTrue(torch.equal(details.matched, yoloxloss.yolox_assign(outs, lab)))
                    self.assertTrue(torch.equal(yoloxloss.yolox_assign(outs, **kw), details.matched))

    def test_gradients_equal_across_forms(self):
        counts = [3, 1]
        outs = head_outputs(5, 2)
        lab = random_labels(5, counts)
        grads = []
        for kw in (dict(labels=lab), dict(labels=lab, num_gt=counts),
                   dict(labels=[lab[0, :3], lab[1, :1]])):
            x = [o.clone().requires_grad_(True) for o in outs]
            yoloxloss.yolox_loss(x, **kw)[0].backward()
            grads.append([t.grad for t in x])
        for other in grads[1:]:
            for a, b in zip(grads[0], other):
                self.assertTrue(torch.equal(a, b))

    def test_negative_centre_class_0_counted_with_num_gt(self):
        """A crop left a real box of class 0 centred above and left of the
        image: its row sums to <= 0, so YOLOX's rule counts one row of two
        and uses the first, and the label after it is dropped silently;
        num_gt keeps both."""
        outs = head_outputs(11, 2)
        lab = random_labels(11, [1, 2])
        lab[1, 0] = torch.tensor([0.0, -3.0, -30.0, 20.0, 12.0])  # sum -1: YOLOX counts 1 row of 2
        lab[1, 1] = torch.tensor([2.0, 50.0, 50.0, 12.0, 12.0])
        self.assertLessEqual(float(lab[1, 0].sum()), 0.0)
        yolox_rule = yoloxloss.yolox_assign_details(outs, lab)
        self.assertEqual([len(k) for k in yolox_rule.dynamic_k], [1, 1])
        self.assertNotIn(1, yolox_rule.matched[1].tolist())
        counted = yoloxloss.yolox_assign_details(outs, lab, num_gt=[1, 2])
        self.assertEqual([len(k) for k in counted.dynamic_k], [1, 2])
        self.assertIn(0, counted.matched[1].tolist())  # the box outside the image gets its anchor
        self.assertIn(1, counted.matched[1].tolist())
        as_list = yoloxloss.yolox_assign_details(outs, [lab[0, :1], lab[1, :2]])
        self.assertTrue(torch.equal(counted.matched, as_list.matched))
        loss = yoloxloss.yolox_loss(outs, lab, num_gt=[1, 2], image_losses=True)
        self.assertEqual(loss[6].num_gt.tolist(), [1, 2])
        self.assertEqual(values(loss), values(yoloxloss.yolox_loss(outs, [lab[0, :1], lab[1, :2]])))
        # against the reference given the same counts (the library's
        # assignment forced, as the reference check does at cost ties)
        with reference_counts([1, 2]):
            ref = yolox_loss_reference([o.double() for o in outs], lab, strides=STRIDES,
                                       forced_matched=counted.matched)
            ref_assign = yolox_loss_reference(outs, lab, strides=STRIDES, return_info=True)[1]["matched"]
        self.assertTrue(torch.equal(ref_assign, counted.matched))
        for name, a, b in zip(("total", "iou", "obj", "cls"), values(loss), (float(t) for t in ref)):
            self.assertLessEqual(abs(a - b), 1e-5 * max(1.0, abs(b)), "%s: %r vs %r" % (name, a, b))

    def test_refusals(self):
        outs = head_outputs(3, 2)
        lab = random_labels(3, [1, 2], M=3)
        cases = [
            (dict(labels=lab, num_gt=[1]), ValueError, "one count per image, 2"),
            (dict(labels=lab, num_gt=[1, 2, 0]), ValueError, "one count per image, 2"),
            (dict(labels=lab, num_gt=[[1, 2]]), ValueError, "one count per image"),
            (dict(labels=lab, num_gt=[1, -1]), ValueError, "num_gt[1] is -1; it must be in [0, 3]"),
            (dict(labels=lab, num_gt=[4, 0]), ValueError, "num_gt[0] is 4"),
            (dict(labels=lab, num_gt=[1.0, 2.0]), TypeError, "integers"),
            (dict(labels=lab, num_gt=torch.tensor([True, False])), TypeError, "integers"),
            (dict(labels=lab, num_gt=["a", "b"]), TypeError, "num_gt must be B integers"),
            (dict(labels=lab, num_gt=[1, 3]), ValueError, "image 1, row 2: box"),  # a zero row counted
            (dict(labels=[lab[0, :1]]), ValueError, "1 per-image tensors but the outputs have 2"),
            (dict(labels=[lab[0, :1], lab[1, :2], lab[1, :0]]), ValueError, "3 per-image tensors"),
            (dict(labels=[lab[0, :1], lab[1, :2, :4]]), ValueError, "labels[1] must be [n, 5]"),
            (dict(labels=[lab[0, :1], lab[1]]), ValueError, "image 1, row 2: box"),
            (dict(labels=[lab[0, :1], lab[1, :2] > 0]), ValueError, "labels[1] must be a real numeric"),
            (dict(labels=[lab[0, :1], lab[1, :2]], num_gt=[1, 2]), ValueError, "num_gt is for a padded"),
        ]
        bad_class = lab.clone()
        bad_class[1, 1, 0] = 2.5
        cases.append((dict(labels=[bad_class[0, :1], bad_class[1, :2]]), ValueError,
                      "image 1, row 1: class 2.5 is not an integer"))
        cases.append((dict(labels=bad_class, num_gt=[1, 2]), ValueError, "image 1, row 1: class 2.5"))
        nan_used = lab.clone()
        nan_used[0, 0, 3] = float("nan")
        cases.append((dict(labels=nan_used, num_gt=[1, 2]), ValueError, "image 0, row 0 holds a non-finite"))
        for kw, exc, text in cases:
            with self.assertRaises(exc, msg=str(kw)) as cm:
                yoloxloss.yolox_loss(outs, **kw)
            self.assertIn(text, str(cm.exception))
            with self.assertRaises(exc):
                yoloxloss.yolox_assign(outs, **kw)


class ImageLossesTest(unittest.TestCase):
    def test_rows_are_each_image_alone_with_the_batch_normaliser(self):
        for dtype in (torch.float32, torch.bfloat16):
            counts = [2, 0, 3, 1]
            outs = head_outputs(21, 4, dtype)
            lab = random_labels(21, counts)
            for normalizer in (None, 7.25):
                res = yoloxloss.yolox_loss(outs, lab, use_l1=True, normalizer=normalizer, image_losses=True)
                self.assertEqual(len(res), 7)
                rows = res[6]
                self.assertIsInstance(rows, yoloxloss.ImageLosses)
                self.assertEqual(rows.num_gt.tolist(), counts)
                self.assertEqual(rows.num_fg.dtype, torch.int64)
                self.assertEqual(rows.total.dtype, torch.float32)
                self.assertFalse(rows.total.requires_grad)
                total, n_batch = float(res[0]), None
                for k, name in enumerate(("total", "iou", "obj", "cls", "l1")):
                    col = getattr(rows, name).double()
                    tol = 8 * 2.0 ** -23 * float(col.abs().sum() + abs(float(res[k])))
                    self.assertLessEqual(abs(float(col.sum()) - float(res[k])), tol, name)
                # the batch's normaliser: N = max(num_fg, 1), or the one given
                n_batch = normalizer if normalizer else max(int(rows.num_fg.sum()), 1)
                for b in range(4):
                    alone = yoloxloss.yolox_loss([o[b:b + 1] for o in outs], lab[b:b + 1], use_l1=True,
                                                 normalizer=float(n_batch))
                    for k, name in enumerate(("total", "iou", "obj", "cls", "l1")):
                        self.assertEqual(float(getattr(rows, name)[b]), float(alone[k]), (dtype, b, name))
                    self.assertEqual(float(rows.fg_ratio[b]),
                                     float(torch.tensor(max(int(rows.num_fg[b]), 1) / max(counts[b], 1),
                                                        dtype=torch.float32)))
                self.assertTrue(math.isfinite(total))

    def test_backward_unchanged(self):
        outs = head_outputs(4, 2)
        lab = random_labels(4, [2, 1])
        grads = []
        for image_losses in (False, True):
            x = [o.clone().requires_grad_(True) for o in outs]
            res = yoloxloss.yolox_loss(x, lab, image_losses=image_losses)
            res[0].backward()
            grads.append([t.grad for t in x])
        for a, b in zip(*grads):
            self.assertTrue(torch.equal(a, b))

    def test_rows_against_the_reference_image_by_image(self):
        """Each image through the reference alone gives its terms divided by
        its own N_b = max(num_fg_b, 1); times N_b / N they are the rows."""
        cases = [dict(), dict(assigner="yolox-legacy", use_l1=True), dict(iou_loss="giou"),
                 dict(iou_loss="ciou", use_l1=True)]
        for seed, kw in enumerate(cases):
            counts = [3, 1, 0, 2]
            outs = head_outputs(40 + seed, 4)
            lab = random_labels(40 + seed, counts)
            res = yoloxloss.yolox_loss(outs, lab, image_losses=True, **kw)
            rows = res[6]
            matched = yoloxloss.yolox_assign(outs, lab, assigner=kw.get("assigner"))
            n_batch = max(int(rows.num_fg.sum()), 1)
            for b in range(4):
                ref, info = yolox_loss_reference([o[b:b + 1].double() for o in outs], lab[b:b + 1],
                                                 strides=STRIDES, forced_matched=matched[b:b + 1],
                                                 return_info=True, assigner=kw.get("assigner", "yolox"),
                                                 iou_loss=kw.get("iou_loss", "iou"),
                                                 use_l1=kw.get("use_l1", False))
                self.assertEqual(info["num_fg"], int(rows.num_fg[b]))
                scale = info["N"] / n_batch
                for k, name in enumerate(("total", "iou", "obj", "cls", "l1")):
                    want, got = float(ref[k]) * scale, float(getattr(rows, name)[b])
                    self.assertLessEqual(abs(got - want), 2e-5 * max(1.0, abs(want)),
                                         "case %d image %d %s: %r vs reference %r" % (seed, b, name, got, want))


class CMirror(unittest.TestCase):
    def test_struct_layout(self):
        """The ctypes mirror of yoloxloss_padded_labels and of the batch's
        appended field, on the LP64 ABIs the library is built for."""
        from yoloxloss import _capi
        ptr, i32 = ctypes.sizeof(ctypes.c_void_p), ctypes.sizeof(ctypes.c_int)
        self.assertEqual(_capi.PaddedLabels.max_rows.offset, ptr)
        self.assertEqual(_capi.PaddedLabels.image_height.offset, ptr + 5 * i32)
        self.assertEqual(_capi.PaddedLabels.counts.offset, ptr + 6 * i32)
        self.assertEqual(ctypes.sizeof(_capi.PaddedLabels), 2 * ptr + 6 * i32)
        self.assertEqual(_capi.Batch.padded.offset, 5 * ptr)
        self.assertEqual(ctypes.sizeof(_capi.Batch), 6 * ptr)


class UseLibraryTest(unittest.TestCase):
    def test_per_image_list_passes_through(self):
        from yolox_standin import StandInHead
        torch.manual_seed(0)
        head = StandInHead(C, (8, 16, 32), strides=STRIDES).train()
        g = torch.Generator().manual_seed(3)
        xin = [torch.randn(2, c, IMG // s, IMG // s, generator=g) for c, s in zip((8, 16, 32), STRIDES)]
        lab = random_labels(3, [2, 1])
        yolox_switch.use_library(head)
        padded = head(xin, lab, None)
        listed = head(xin, [lab[0, :2], lab[1, :1]], None)
        for a, b in zip(padded[:5], listed[:5]):
            self.assertEqual(float(a), float(b))


if __name__ == "__main__":
    unittest.main()
