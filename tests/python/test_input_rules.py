#!/usr/bin/python3
"""The drop-in's input rules and the C library's agree.

Gt boxes: the drop-in refuses bad labels before the C call
(python/yoloxloss/_inputs.py, a ValueError naming image and row); the C
library refuses them with YOLOXLOSS_ERR_INVALID_BOX (src/validate.c). For
boxes at and around every edge of the rule (non-finite, w or h <= 0, a
corner or the area w*h past float32's range, an area w*h that underflows
float32 to 0) and for random boxes with sides from 1 px down past float32's
smallest subnormal, the two must refuse the same boxes: the drop-in through
yolox_loss, the library through its C API directly (_capi, no Python check
in between).

Alignment: C refuses a buffer that does not start at a multiple of its
element size; a tensor whose storage does (torch.frombuffer at an odd
offset) is copied by the drop-in, so it gives the results of an aligned one.

Run:  /usr/bin/python3 tests/python/test_input_rules.py [-v]
"""

import ctypes
import math
import random
import unittest

import torch

import repo_paths  # noqa: F401  (puts python/ on sys.path)
import yoloxloss
from yoloxloss import _capi

STRIDES = (8,)
C = 2
GRID = 2


def outputs():
    t = torch.zeros(1, 5 + C, GRID, GRID)
    t[:, 2:4] = -100.0  # predictions of size 0: the case that made an underflowing area NaN
    return [t]


def c_refuses(box):
    """The C library's answer for one gt box (class 1): (status, message)."""
    cfg = _capi.Config()
    _capi.config_defaults(ctypes.byref(cfg))
    strides = (ctypes.c_float * 1)(*STRIDES)
    cfg.num_classes = C
    cfg.num_levels = 1
    cfg.strides = strides
    cfg.num_threads = 1
    ctx = _capi.ContextPtr()
    assert _capi.create(ctypes.byref(cfg), ctypes.byref(ctx)) == _capi.OK
    try:
        out = outputs()[0].contiguous()
        level = _capi.Level(GRID, GRID, out.data_ptr(), None, None, None, _capi.DTYPE_FLOAT32)
        num_gt = (ctypes.c_int32 * 1)(1)
        classes = (ctypes.c_int32 * 1)(1)
        boxes = (ctypes.c_float * 4)(*box)
        batch = _capi.Batch(1, ctypes.pointer(level), num_gt, classes, boxes)
        losses = _capi.Losses()
        st = _capi.forward(ctx, ctypes.byref(batch), ctypes.byref(losses))
        return st, _capi.last_error(ctx).decode()
    finally:
        _capi.destroy(ctx)


def python_refuses(box):
    """The drop-in's answer: the ValueError's message, or None if accepted."""
    labels = torch.tensor([[[1.0] + [float(v) for v in box]]], dtype=torch.float32)
    try:
        yoloxloss.yolox_loss(outputs(), labels, strides=STRIDES, num_threads=1)
    except ValueError as exc:
        return str(exc)
    return None


def f32(x):
    """x rounded to float32, as a Python float."""
    return float(torch.tensor(x, dtype=torch.float32))


TINY = 2.0 ** -149  # float32's smallest subnormal


class BoxRule(unittest.TestCase):
    def assert_agree(self, box, refused):
        st, c_msg = c_refuses(box)
        py_msg = python_refuses(box)
        self.assertEqual(st != _capi.OK, refused, "C: box %r -> status %d (%s)" % (box, st, c_msg))
        if refused:
            self.assertEqual(st, _capi.ERR_INVALID_BOX, c_msg)
            self.assertIsNotNone(py_msg, "drop-in accepted %r, which C refuses (%s)" % (box, c_msg))
            self.assertIn("image 0, row 0", py_msg)
        else:
            self.assertIsNone(py_msg, "drop-in refused %r, which C accepts" % (box,))

    def test_edges_of_the_rule(self):
        half_tie = 2.0 ** -75  # 2^-75 * 2^-75 = 2^-150: a tie, rounded to 0
        cases = [
            ((20.0, 20.0, 6.0, 5.0), False),
            ((0.0, 0.0, 1e-25, 1e-25), True),                      # the area underflows (issue 18)
            ((0.0, 0.0, half_tie, half_tie), True),
            ((0.0, 0.0, half_tie, f32(half_tie * (1 + 2 ** -23))), False),  # area 2^-149
            ((0.0, 0.0, TINY, 0.5), True),
            ((0.0, 0.0, TINY, 1.0), False),
            ((0.0, 0.0, 3 * TINY, 0.5), False),                    # 1.5 x 2^-149 rounds to 2^-148
            ((0.0, 0.0, 1e-20, 1e-20), False),                     # a subnormal area
            ((5.0, 5.0, 1e-30, 1e6), False),
            ((20.0, 24.0, 1e20, 1e20), True),                      # the area overflows
            ((3e38, 24.0, 1e38, 12.0), True),                      # a corner overflows
            ((20.0, 20.0, 0.0, 5.0), True),
            ((20.0, 20.0, -0.0, 5.0), True),
            ((20.0, 20.0, 5.0, -1.0), True),
            ((20.0, 20.0, math.inf, 5.0), True),
        ]
        for box, refused in cases:
            with self.subTest(box=box):
                self.assert_agree(box, refused)
        st, msg = c_refuses((0.0, 0.0, 1e-25, 1e-25))
        self.assertIn("underflows", msg)
        self.assertIn("underflows", python_refuses((0.0, 0.0, 1e-25, 1e-25)))

    def test_random_tiny_boxes(self):
        # sides 2^-e (1 + u), e up to 160, centres within a few sides of 0
        # or anywhere: the drop-in and C refuse the same ones
        rng = random.Random(18)
        refused = accepted = 0
        for _ in range(300):
            w = f32(2.0 ** -rng.uniform(0, 160) * (1 + rng.random()))
            if rng.random() < 0.5 and w > 0:  # w * h about 2^-150, the rounding's tie
                h = f32(rng.uniform(0.5, 2.0) * 2.0 ** -150 / w)
            else:
                h = f32(2.0 ** -rng.uniform(0, 160) * (1 + rng.random()))
            # (centres >= 0 or tiny, so that the row's sum is > 0 and YOLOX counts it)
            cx = f32(rng.choice((0.0, w * rng.uniform(-2, 2), rng.uniform(0, 50))))
            cy = f32(rng.choice((0.0, h * rng.uniform(-2, 2), rng.uniform(0, 50))))
            box = (cx, cy, w, h)
            expect = not (w > 0 and h > 0 and f32(w * h) > 0)
            with self.subTest(box=box):
                self.assert_agree(box, expect)
            refused += expect
            accepted += not expect
        # both sides of the boundary were reached
        self.assertGreater(refused, 20)
        self.assertGreater(accepted, 20)


class Alignment(unittest.TestCase):
    def test_misaligned_storage_is_copied(self):
        for dtype in (torch.float16, torch.bfloat16, torch.float32):
            with self.subTest(dtype=dtype):
                size = torch.tensor([], dtype=dtype).element_size()
                ref = torch.randn(1, 5 + C, 4, 4).to(dtype)
                n = ref.numel()
                raw = bytearray(size * (n + 1))
                odd = torch.frombuffer(raw, dtype=torch.uint8, offset=1, count=size * n).view(dtype)
                odd = odd.view(ref.shape)
                odd.copy_(ref)
                self.assertNotEqual(odd.data_ptr() % size, 0)
                labels = torch.tensor([[[1.0, 12.0, 10.0, 9.0, 7.0]]])
                grads = []
                totals = []
                for t in (ref, odd):
                    leaf = t.detach().requires_grad_(True) if t is ref else t.requires_grad_(True)
                    total = yoloxloss.yolox_loss([leaf], labels, strides=(4,), num_threads=1)[0]
                    total.backward()
                    totals.append(float(total))
                    grads.append(leaf.grad)
                self.assertEqual(totals[0], totals[1])
                self.assertTrue(torch.equal(grads[0], grads[1]))


if __name__ == "__main__":
    unittest.main()
