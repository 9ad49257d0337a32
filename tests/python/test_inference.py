#!/usr/bin/python3
"""Tests of the binding's inference calls, yoloxloss.yolox_decode and
yolox_detect (python/yoloxloss/_inference.py): shapes and dtypes of what
they return, split and fused levels, float16 and bfloat16 read in place,
the cap, None for an image without detections, and each refusal as a
ValueError naming what is wrong. Their values are checked against YOLOX's
semantics by tests/reference/check_decode.py.

Run from anywhere:  /usr/bin/python3 tests/python/test_inference.py [-v]
"""

import math
import unittest

import torch

import repo_paths  # noqa: F401 (puts python/ and tests/reference/ on sys.path)
import yoloxloss

STRIDES = (8, 16, 32)


def head(seed, images=2, classes=5, size=64, dtype=torch.float32):
    """Raw fused outputs of 3 levels whose scores spread over (0, 1)."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for s in STRIDES:
        n = size // s
        t = torch.randn(images, 5 + classes, n, n, generator=g)
        t[:, 4:] = 2 * t[:, 4:]
        out.append(t.to(dtype))
    return out


def split(outputs):
    return [(o[:, :4], o[:, 4:5], o[:, 5:]) for o in outputs]


class TestDecode(unittest.TestCase):
    def test_shapes_and_values(self):
        outs = head(1)
        boxes, scores = yoloxloss.yolox_decode(outs, STRIDES, num_threads=1)
        A = sum((64 // s) ** 2 for s in STRIDES)
        self.assertEqual(boxes.shape, (2, A, 4))
        self.assertEqual(scores.shape, (2, A, 5))
        self.assertEqual((boxes.dtype, scores.dtype), (torch.float32, torch.float32))
        # the first anchor of level 0: cell (0, 0) at stride 8
        t = outs[0][1, :, 0, 0]
        self.assertEqual(float(boxes[1, 0, 0]), float(t[0] * 8))
        self.assertAlmostEqual(float(boxes[1, 0, 2]), math.exp(float(t[2])) * 8, delta=1e-5 * float(boxes[1, 0, 2]))
        want = torch.sigmoid(t[4]) * torch.sigmoid(t[5:])
        self.assertTrue(torch.allclose(scores[1, 0], want, rtol=1e-6, atol=0))

    def test_split_and_16_bit_levels(self):
        outs = head(2)
        fused = yoloxloss.yolox_decode(outs, STRIDES)
        for got in (yoloxloss.yolox_decode(split(outs), STRIDES),
                    yoloxloss.yolox_decode([outs[0], split(outs)[1], outs[2]], STRIDES, num_threads=2)):
            self.assertTrue(torch.equal(got[0], fused[0]) and torch.equal(got[1], fused[1]))
        for dt in (torch.float16, torch.bfloat16):
            typed = [o.to(dt) for o in outs]
            want = yoloxloss.yolox_decode([o.float() for o in typed], STRIDES)
            got = yoloxloss.yolox_decode(typed, STRIDES)
            self.assertTrue(torch.equal(got[0], want[0]) and torch.equal(got[1], want[1]), dt)

    def test_mmdet_arithmetic(self):
        outs = head(3)
        yolox = yoloxloss.yolox_decode(outs, STRIDES)[0]
        mmdet = yoloxloss.yolox_decode(outs, STRIDES, preset="mmdet")[0]
        t = outs[2][0, :, 1, 1]
        self.assertEqual(float(mmdet[0, -4 + 1 * 2 + 1, 0]), float(t[0] * 32 + 32))
        self.assertTrue(torch.allclose(mmdet, yolox, rtol=1e-5, atol=1e-4))

    def test_refusals(self):
        outs = head(4)
        with self.assertRaisesRegex(ValueError, "strides"):
            yoloxloss.yolox_decode(outs, (8, 16))
        bad = list(outs)
        bad[1] = bad[1][:, :, :, :3]  # a grid that disagrees with the other levels
        with self.assertRaisesRegex(ValueError, "level 1"):
            yoloxloss.yolox_decode(bad, STRIDES)
        nan = [o.clone() for o in outs]
        nan[2][1, 7, 0, 1] = float("nan")
        with self.assertRaisesRegex(ValueError, "level 2, image 1, channel 7"):
            yoloxloss.yolox_decode(nan, STRIDES, check_finite=True)
        with self.assertRaises(TypeError):
            yoloxloss.yolox_decode(outs[0], STRIDES)


class TestDetect(unittest.TestCase):
    def test_rows_like_postprocess(self):
        outs = head(5, images=3)
        dets = yoloxloss.yolox_detect(outs, STRIDES, conf_thre=0.3, nms_thre=0.45)
        self.assertEqual(len(dets), 3)
        boxes, scores = yoloxloss.yolox_decode(outs, STRIDES)
        for b, d in enumerate(dets):
            self.assertIsNotNone(d)
            self.assertEqual((d.dim(), d.shape[1], d.dtype), (2, 7, torch.float32))
            score = d[:, 4] * d[:, 5]
            self.assertTrue(bool((score >= 0.3).all()))
            self.assertTrue(bool((score[1:] <= score[:-1]).all()))
            cls = d[:, 6]
            self.assertTrue(torch.equal(cls, cls.round()) and bool(((cls >= 0) & (cls < 5)).all()))
            # each row's box and score is some anchor's decoded one
            cx, w = (d[:, 0] + d[:, 2]) / 2, d[:, 2] - d[:, 0]
            match = (boxes[b, :, 0][None, :] - cx[:, None]).abs() < 1e-3
            match &= (boxes[b, :, 2][None, :] - w[:, None]).abs() < 1e-3 * w[:, None]
            self.assertTrue(bool(match.any(1).all()))
            best = scores[b].max(1).values
            self.assertTrue(bool((best[None, :] == score[:, None]).any(1).all()))

    def test_cap_empty_and_agnostic(self):
        outs = head(6, images=2)
        full = yoloxloss.yolox_detect(outs, STRIDES, conf_thre=0.05)
        capped = yoloxloss.yolox_detect(outs, STRIDES, conf_thre=0.05, max_detections=4)
        for f, c in zip(full, capped):
            self.assertGreater(len(f), 4)
            self.assertTrue(torch.equal(c, f[:4]))
        agnostic = yoloxloss.yolox_detect(outs, STRIDES, conf_thre=0.05, class_agnostic=True)
        for f, a in zip(full, agnostic):
            self.assertLessEqual(len(a), len(f))
        self.assertEqual(yoloxloss.yolox_detect(outs, STRIDES, conf_thre=1.5), [None, None])

    def test_16_bit_and_split(self):
        outs = head(7)
        for dt in (torch.float16, torch.bfloat16):
            typed = [o.to(dt) for o in outs]
            want = yoloxloss.yolox_detect([o.float() for o in typed], STRIDES, conf_thre=0.2)
            got = yoloxloss.yolox_detect(split(typed), STRIDES, conf_thre=0.2, num_threads=2)
            for w, g in zip(want, got):
                self.assertTrue(torch.equal(w, g), dt)

    def test_refusals(self):
        outs = head(8)
        with self.assertRaisesRegex(ValueError, "max_detections"):
            yoloxloss.yolox_detect(outs, STRIDES, max_detections=0)
        with self.assertRaisesRegex(ValueError, "max_detections"):
            yoloxloss.yolox_detect(outs, STRIDES, max_detections=2 ** 31)
        with self.assertRaisesRegex(ValueError, "params.score_threshold is nan"):
            yoloxloss.yolox_detect(outs, STRIDES, conf_thre=float("nan"))
        with self.assertRaisesRegex(ValueError, "params.nms_threshold is inf"):
            yoloxloss.yolox_detect(outs, STRIDES, nms_thre=float("inf"))
        with self.assertRaisesRegex(ValueError, "preset"):
            yoloxloss.yolox_detect(outs, STRIDES, preset="yolov8")


if __name__ == "__main__":
    unittest.main()
