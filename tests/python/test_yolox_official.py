#!/usr/bin/python3
"""yoloxloss.yolox.use_library on the official Megvii YOLOX code: the
switched YOLOXHead gives the losses and parameter gradients of the head's
own get_losses (with and without the L1 term), its inference output is
unchanged, and a whole YOLOX model (YOLOPAFPN + YOLOXHead) trains the same
through the switch.

Needs a checkout of https://github.com/Megvii-BaseDetection/YOLOX named by
the environment variable YOLOX_SRC, and what its modules import (on Debian:
python3-opencv python3-loguru python3-torchvision). Without YOLOX_SRC it
prints why and exits with 77, which ctest shows as "Skipped"; with
YOLOX_SRC set, a checkout that cannot be imported is a failure.

Run:  YOLOX_SRC=/path/to/YOLOX /usr/bin/python3 tests/python/test_yolox_official.py [-v]
"""

import copy
import unittest
import warnings

import torch

import repo_paths  # noqa: F401  (puts python/ on sys.path)
import yolox_checkout
import yoloxloss.yolox as yolox_switch


def import_yolox():
    """(YOLOX, YOLOPAFPN, YOLOXHead) from $YOLOX_SRC; exits 77 without it."""
    src = yolox_checkout.checkout("test use_library on the official YOLOXHead")
    try:
        from yolox.models import YOLOPAFPN, YOLOX, YOLOXHead
    except ImportError as exc:
        yolox_checkout.import_failed(src, exc)
    return YOLOX, YOLOPAFPN, YOLOXHead


YOLOX, YOLOPAFPN, YOLOXHead = import_yolox()
# YOLOX enters torch.cuda.amp.autocast(enabled=False) around its cost matrix,
# which warns on a machine without CUDA.
warnings.filterwarnings("ignore", message=".*CUDA is not available.*")

IMG = 128
CLASSES = 6
WIDTH = 0.125  # 32, 64 and 128 input channels: a small but real YOLOXHead


def head_features(seed, images=2):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(images, int(c * WIDTH), IMG // s, IMG // s, generator=gen)
            for c, s in zip((256, 512, 1024), (8, 16, 32))]


def make_labels(seed, images=2, boxes=(3, 2), rows=10):
    gen = torch.Generator().manual_seed(seed + 500)
    lab = torch.zeros(images, rows, 5)
    for b, n in enumerate(boxes):
        for r in range(n):
            w, h = (float(v) for v in 24 + 50 * torch.rand(2, generator=gen))
            cx, cy = (float(v) for v in 32 + (IMG - 64) * torch.rand(2, generator=gen))
            lab[b, r] = torch.tensor([(3 * b + r) % CLASSES, cx, cy, w, h])
    return lab


def step(module, *args):
    module.zero_grad(set_to_none=True)
    out = module(*args)
    total = out["total_loss"] if isinstance(out, dict) else out[0]
    total.backward()
    return out, {n: p.grad.clone() for n, p in module.named_parameters() if p.grad is not None}


class OfficialTest(unittest.TestCase):
    def assert_close_grads(self, want, got, tol=2e-4):
        self.assertEqual(set(want), set(got))
        for name, w in want.items():
            scale = max(float(w.abs().max()), 1e-6)
            err = float((got[name] - w).abs().max()) / scale
            self.assertLess(err, tol, "gradient of %s differs by %.2e of its max" % (name, err))

    def assert_close_losses(self, want, got):
        self.assertEqual(len(got), 6)
        for i in range(5):
            w, g = float(want[i]), float(got[i])
            self.assertAlmostEqual(w, g, delta=2e-5 * max(1.0, abs(w)), msg="loss entry %d" % i)
            self.assertEqual(isinstance(want[i], float), isinstance(got[i], float),
                             "entry %d: official %s, switched %s" % (i, type(want[i]), type(got[i])))
        self.assertIsInstance(got[5], float)
        self.assertAlmostEqual(want[5], got[5], places=6)

    def test_head_losses_and_gradients(self):
        torch.manual_seed(0)
        official = YOLOXHead(CLASSES, width=WIDTH).train()
        official.initialize_biases(1e-2)
        switched = yolox_switch.use_library(copy.deepcopy(official))
        xin, lab = head_features(1), make_labels(1)
        for use_l1 in (False, True):
            official.use_l1 = switched.use_l1 = use_l1
            want_out, want_grads = step(official, xin, lab, None)
            got_out, got_grads = step(switched, xin, lab, None)
            with self.subTest(use_l1=use_l1):
                self.assert_close_losses(want_out, got_out)
                self.assert_close_grads(want_grads, got_grads)

    def test_head_inference_unchanged(self):
        torch.manual_seed(2)
        head = YOLOXHead(CLASSES, width=WIDTH).eval()
        xin = head_features(2)
        with torch.no_grad():
            before = head(xin)
            yolox_switch.use_library(head)
            after = head(xin)
        self.assertTrue(torch.equal(before, after))

    def test_model_training_step(self):
        torch.manual_seed(3)
        model = YOLOX(YOLOPAFPN(0.33, WIDTH), YOLOXHead(CLASSES, width=WIDTH)).train()
        model.head.initialize_biases(1e-2)
        switched = copy.deepcopy(model)
        yolox_switch.use_library(switched)  # the model, not the head
        self.assertIsInstance(switched.head.__dict__["forward"], yolox_switch.LibraryForward)
        imgs = torch.randn(2, 3, IMG, IMG, generator=torch.Generator().manual_seed(3))
        lab = make_labels(3)
        want_out, want_grads = step(model, imgs, lab)
        got_out, got_grads = step(switched, imgs, lab)
        order = ("total_loss", "iou_loss", "conf_loss", "cls_loss", "l1_loss", "num_fg")
        self.assert_close_losses([want_out[k] for k in order], [got_out[k] for k in order])
        self.assert_close_grads(want_grads, got_grads, tol=1e-3)

    def test_not_a_head_refused(self):
        with self.assertRaisesRegex(TypeError, "stems"):
            yolox_switch.use_library(YOLOPAFPN(0.33, WIDTH))


if __name__ == "__main__":
    unittest.main()
