#!/usr/bin/python3
"""Tests of the Python binding's answer to bad input: labels (class ids,
boxes, shapes), head outputs (channels, batch, levels, strides, device,
dtype, non-finite values with check_finite) and options each raise a
ValueError (or TypeError) whose message names the image, row, level or
option; and after any of them the next call works.

Run from anywhere:  /usr/bin/python3 tests/python/test_binding_errors.py [-v]
"""

import unittest

import torch

import repo_paths  # noqa: F401 (puts python/ (yoloxloss) and tests/reference/ on sys.path)
import yoloxloss
from binding_cases import case, split


class TestErrors(unittest.TestCase):
    def setUp(self):
        self.outputs, self.labels = case(16, num_boxes=(2, 3), num_classes=3)

    def assertValueError(self, *fragments, outputs=None, labels=None, **kw):
        with self.assertRaises(ValueError) as cm:
            yoloxloss.yolox_loss(self.outputs if outputs is None else outputs,
                                 self.labels if labels is None else labels, **kw)
        for f in fragments:
            self.assertIn(f, str(cm.exception))
        return cm.exception

    def test_class_out_of_range(self):
        lab = self.labels.clone()
        lab[1, 2, 0] = 3  # C = 3
        self.assertValueError("image 1", "row 2", "class id 3 outside [0, 3)", labels=lab)
        lab[1, 2, 0] = -1
        lab[1, 2, 1:] += 1000  # keep the row's sum > 0
        self.assertValueError("image 1", "row 2", labels=lab)
        with self.assertRaises(ValueError):
            yoloxloss.yolox_assign(self.outputs, lab)

    def test_non_integer_class(self):
        lab = self.labels.clone()
        lab[0, 1, 0] = 1.5
        self.assertValueError("image 0", "row 1", "integer", labels=lab)

    def test_bad_boxes(self):
        lab = self.labels.clone()
        lab[1, 0, 3] = float("nan")
        self.assertValueError("image 1", "row 0", labels=lab)
        lab = self.labels.clone()
        lab[0, 1, 2] = float("inf")
        self.assertValueError("image 0", "row 1", labels=lab)
        lab = self.labels.clone()
        lab[1, 1, 4] = 0.0  # h = 0 in a used row
        self.assertValueError("image 1", "row 1", labels=lab)
        lab = self.labels.clone()
        lab[0, 0, 3] = -5.0
        self.assertValueError("image 0", "row 0", labels=lab)

    def test_bad_label_shapes(self):
        self.assertValueError("labels", labels=self.labels[:, :, :4])
        self.assertValueError("labels", labels=self.labels[:1])
        self.assertValueError("labels", labels=self.labels[0])

    def test_wrong_channel_counts(self):
        o = list(self.outputs)
        o[1] = o[1][:, :5]
        self.assertValueError("outputs[1]", outputs=o)
        o = list(self.outputs)
        o[2] = o[2][:, :7]  # 2 classes where the others have 3
        self.assertValueError("outputs[2]", outputs=o)
        sp = split(self.outputs)
        sp[0] = (sp[0][0][:, :3], sp[0][1], sp[0][2])
        self.assertValueError("outputs[0][0]", outputs=sp)
        sp = split(self.outputs)
        sp[1] = (sp[1][0], torch.cat([sp[1][1], sp[1][1]], 1), sp[1][2])
        self.assertValueError("outputs[1][1]", outputs=sp)
        sp = split(self.outputs)
        sp[1] = (sp[1][0], sp[1][1], sp[1][2][:, :, :3])
        self.assertValueError("outputs[1][2]", outputs=sp)

    def test_batch_mismatch(self):
        o = list(self.outputs)
        o[2] = torch.cat([o[2], o[2]], 0)
        self.assertValueError("batch", outputs=o)
        sp = split(self.outputs)
        sp[0] = (sp[0][0], sp[0][1][:1], sp[0][2])
        self.assertValueError("batch", outputs=sp)

    def test_levels_and_strides(self):
        self.assertValueError("strides", strides=(8, 16))
        self.assertValueError(strides=(8, 16, 0))
        self.assertValueError(strides=(8, 16, float("nan")))
        # any number of levels is accepted: nine, strides 4 to 1024 over one image
        B, ch = self.outputs[0].shape[:2]
        img = 8 * self.outputs[0].shape[-1]
        strides = tuple(4 << k for k in range(9))
        o = [torch.randn(B, ch, -(-img // s), -(-img // s)) for s in strides]
        m = yoloxloss.yolox_assign(o, self.labels, strides=strides)
        self.assertEqual(tuple(m.shape), (B, sum(x.shape[-1] * x.shape[-2] for x in o)))
        # but the strides must increase, and the levels describe one image
        self.assertValueError("increase", outputs=[self.outputs[0]] * 3, strides=(8, 8, 8))
        self.assertValueError("level 1", outputs=[self.outputs[0]] * 3)
        self.assertValueError(outputs=[], strides=())
        self.assertValueError(outputs=[self.outputs[0][:, :, :, :0]], strides=(8,))
        self.assertValueError(outputs=[self.outputs[0][0]], strides=(8,))

    def test_bad_options(self):
        self.assertValueError("assigner", assigner="ota")
        self.assertValueError("iou_loss", iou_loss="wiou")  # (diou is a box loss now)
        self.assertValueError(reg_weight=float("nan"))

    def test_non_cpu_and_non_float(self):
        meta = [torch.empty(x.shape, device="meta") for x in self.outputs]
        self.assertValueError("cpu", outputs=meta)
        ints = [x.detach().to(torch.int32) for x in self.outputs]
        self.assertValueError("floating", outputs=ints)
        with self.assertRaises(TypeError):
            yoloxloss.yolox_loss(self.outputs[0], self.labels)

    def test_check_finite(self):
        o = [x.detach().clone() for x in self.outputs]
        o[1][1, 6, 2, 3] = float("nan")
        self.assertValueError("NONFINITE", outputs=o, check_finite=True)
        # a 16-bit level is scanned as well, and named with its dtype
        h = [x.detach().to(torch.float16) for x in self.outputs]
        h[2][0, 5, 1, 0] = float("inf")
        self.assertValueError("value is inf in float16", outputs=h, check_finite=True)

    def test_errors_leave_pool_usable(self):
        lab = self.labels.clone()
        lab[0, 0, 3] = float("nan")
        for _ in range(3):
            with self.assertRaises(ValueError):
                yoloxloss.yolox_loss(self.outputs, lab)
        o = [x.detach().clone() for x in self.outputs]
        o[0][0, 0, 0, 0] = float("inf")
        with self.assertRaises(ValueError):
            yoloxloss.yolox_loss(o, self.labels, check_finite=True)
        res = yoloxloss.yolox_loss(self.outputs, self.labels)
        res[0].backward()
        self.assertTrue(torch.isfinite(self.outputs[0].grad).all())

if __name__ == "__main__":
    unittest.main()
