#!/usr/bin/python3
"""Tests of the binding's box-loss names, presets and cost constants
(python/yoloxloss/_options.py): plumbing. The losses themselves are checked
against the PyTorch references in tests/reference/ (check_reference.py,
with --preset mmdet for MMDetection's).

Run from anywhere:  /usr/bin/python3 tests/python/test_presets.py [-v]
"""

import ctypes
import unittest

import torch

import repo_paths  # noqa: F401 (puts python/ and tests/reference/ on sys.path)
import yoloxloss
from yoloxloss import _capi, _options
from binding_cases import case, loss_and_grads

LossOptions = _options.LossOptions
BASE = dict(num_classes=4, strides=(8, 16, 32), num_threads=1)


class TestBoxLossNames(unittest.TestCase):
    def test_every_name_reaches_the_library(self):
        want = {"iou": _capi.IOU_LOSS_IOU, "giou": _capi.IOU_LOSS_GIOU,
                "iou-linear": _capi.IOU_LOSS_IOU_LINEAR, "diou": _capi.IOU_LOSS_DIOU,
                "ciou": _capi.IOU_LOSS_CIOU, "eiou": _capi.IOU_LOSS_EIOU, "siou": _capi.IOU_LOSS_SIOU}
        self.assertEqual(dict(yoloxloss.IOU_LOSSES), want)
        outputs, labels = case(40)
        seen = {}
        for name, value in want.items():
            self.assertEqual(LossOptions(iou_loss=name, **BASE).to_c_config().iou_loss, value)
            res, grads = loss_and_grads(outputs, labels, iou_loss=name.upper().replace("-", "_"),
                                        num_threads=1)
            self.assertTrue(all(torch.isfinite(t).all() for t in res), name)
            self.assertTrue(all(torch.isfinite(g).all() for g in grads), name)
            seen[name] = float(res[1])
        # seven different box terms on a step with foreground anchors
        self.assertEqual(len(set(seen.values())), len(seen), seen)

    def test_unknown_name(self):
        outputs, labels = case(41)
        with self.assertRaises(ValueError) as cm:
            yoloxloss.yolox_loss(outputs, labels, iou_loss="wiou")
        for name in yoloxloss.IOU_LOSSES:
            self.assertIn(name, str(cm.exception))


class TestPresets(unittest.TestCase):
    def c_preset(self, name):
        cfg = _capi.Config()
        self.assertEqual(_capi.config_preset(ctypes.byref(cfg), name.encode()), _capi.OK)
        return cfg

    def test_options_take_the_c_preset(self):
        for name in yoloxloss.PRESETS:
            c = self.c_preset(name)
            built = LossOptions(preset=name, **BASE).to_c_config()
            for field, _ in _capi.Config._fields_:
                if field in ("num_classes", "num_levels", "strides", "num_threads"):
                    continue
                self.assertEqual(getattr(built, field), getattr(c, field), (name, field))

    def test_mmdet_values(self):
        o = LossOptions(preset="mmdet", **BASE)
        self.assertEqual((o.assigner, o.iou_loss, o.arithmetic), ("yolox-legacy", "iou", "mmdet"))
        self.assertEqual((o.reg_weight, o.obj_weight, o.cls_weight, o.l1_weight), (5.0, 1.0, 1.0, 1.0))
        self.assertEqual(o.cost_iou_eps, ctypes.c_float(1e-7).value)
        self.assertEqual(o.cost_penalty, 1e5)
        cfg = o.to_c_config()
        self.assertEqual(cfg.center_radius, 2.5)
        self.assertEqual(cfg.arithmetic, _capi.ARITHMETIC_MMDET)

    def test_spellings_build_equal_options(self):
        a = LossOptions(preset="MMDet", **BASE)
        b = LossOptions(preset="mmdet", assigner="yolox_legacy", iou_loss="iou", cost_iou_eps=1e-7,
                        cost_penalty=100000, reg_weight=5, **BASE)
        self.assertEqual(a, b)
        self.assertIs(yoloxloss._pool.pool_for(a), yoloxloss._pool.pool_for(b))
        d = LossOptions(**BASE)
        self.assertEqual(d, LossOptions(preset="yolox", assigner="yolox", iou_loss="iou",
                                        cost_iou_eps=1e-8, cost_penalty=0, **BASE))
        self.assertNotEqual(a, d)

    def test_given_arguments_override_the_preset(self):
        o = LossOptions(preset="mmdet", assigner="yolox", iou_loss="ciou", cost_penalty=7.0,
                        reg_weight=2.0, **BASE)
        cfg = o.to_c_config()
        self.assertEqual(cfg.assigner, _capi.ASSIGNER_YOLOX)
        self.assertEqual(cfg.iou_loss, _capi.IOU_LOSS_CIOU)
        self.assertEqual(cfg.cost_penalty, 7.0)
        self.assertEqual(cfg.reg_weight, 2.0)
        self.assertEqual(cfg.cost_iou_eps, ctypes.c_float(1e-7).value)  # the preset's
        self.assertEqual(cfg.arithmetic, _capi.ARITHMETIC_MMDET)

    def test_preset_changes_the_result(self):
        outputs, labels = case(42)
        y, _ = loss_and_grads(outputs, labels, num_threads=1)
        m, grads = loss_and_grads(outputs, labels, preset="mmdet", num_threads=1)
        self.assertTrue(all(torch.isfinite(g).all() for g in grads))
        self.assertNotEqual(float(y[0]), float(m[0]))
        # the assignment follows the preset too
        with torch.no_grad():
            d = yoloxloss.yolox_assign_details(outputs, labels, preset="mmdet", num_threads=1)
            legacy = yoloxloss.yolox_assign(outputs, labels, preset="yolox", assigner="yolox-legacy",
                                            num_threads=1)
            current = yoloxloss.yolox_assign(outputs, labels, num_threads=1)
        self.assertEqual(tuple(d.matched.shape), tuple(current.shape))
        self.assertGreaterEqual(int((d.matched >= 0).sum()), 1)
        self.assertGreaterEqual(int((legacy >= 0).sum()), 1)
        self.assertFalse(torch.equal(d.matched, current))

    def test_bad_values(self):
        outputs, labels = case(43)
        cases = [("preset", dict(preset="detectron")), ("cost_iou_eps", dict(cost_iou_eps=0.0)),
                 ("cost_iou_eps", dict(cost_iou_eps=float("nan"))),
                 ("cost_penalty", dict(cost_penalty=-1.0)),
                 ("cost_penalty", dict(cost_penalty=float("inf")))]
        for fragment, kw in cases:
            with self.subTest(**kw):
                with self.assertRaises(ValueError) as cm:
                    yoloxloss.yolox_loss(outputs, labels, **kw)
                self.assertIn(fragment, str(cm.exception))


class TestCostConstants(unittest.TestCase):
    def test_defaults_written_out_change_nothing(self):
        outputs, labels = case(44)
        for assigner, penalty in (("yolox", 1e6), ("yolox-legacy", 1e5)):
            a, ga = loss_and_grads(outputs, labels, assigner=assigner, num_threads=1)
            b, gb = loss_and_grads(outputs, labels, assigner=assigner, cost_iou_eps=1e-8,
                                   cost_penalty=penalty, num_threads=1)
            self.assertTrue(all(torch.equal(x, y) for x, y in zip(a, b)))
            self.assertTrue(all(torch.equal(x, y) for x, y in zip(ga, gb)))

    def test_they_reach_the_assigner(self):
        # A penalty far below the costs lets every candidate compete for every
        # gt, as if there were no geometry test: the assignment changes.
        outputs, labels = case(45, num_boxes=(4, 3, 4))
        with torch.no_grad():
            base = yoloxloss.yolox_assign(outputs, labels, assigner="yolox-legacy", num_threads=1)
            low = yoloxloss.yolox_assign(outputs, labels, assigner="yolox-legacy", cost_penalty=1e-3,
                                         num_threads=1)
            eps = yoloxloss.yolox_assign(outputs, labels, assigner="yolox-legacy", cost_iou_eps=10.0,
                                         num_threads=1)
        self.assertFalse(torch.equal(base, low))
        self.assertFalse(torch.equal(base, eps))


if __name__ == "__main__":
    unittest.main()
