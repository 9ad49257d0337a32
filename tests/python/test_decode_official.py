#!/usr/bin/python3
"""yoloxloss.yolox_decode and yolox_detect against the official Megvii YOLOX
inference path: a YOLOXHead in eval mode (its forward takes the sigmoids,
decode_outputs decodes) and yolox.utils.postprocess (torchvision's
batched_nms / nms), on the raw outputs of its own prediction convolutions,
for several thresholds, class aware and agnostic, float32 and bfloat16.

Box centres must be bitwise the official ones, box sizes within 1 ulp
(SLEEF's exp against torch.exp), each probability 1 / (1 + exp(-x)) with an
exp within 1 ulp of torch.exp's (torch.sigmoid's own kernel lands up to a
few ulps away); the detections must be the official ones, or differ only
where decode_reference.explain_difference() finds the two computations may
decide differently (ties, batched_nms's shifted coordinates, a score or IoU
within rounding of its threshold).

Needs a checkout of https://github.com/Megvii-BaseDetection/YOLOX named by
YOLOX_SRC and what its modules import (on Debian: python3-opencv
python3-loguru python3-torchvision). Without YOLOX_SRC it prints why and
exits with 77, which ctest shows as "Skipped".

Run:  YOLOX_SRC=/path/to/YOLOX /usr/bin/python3 tests/python/test_decode_official.py [-v]
"""

import unittest

import torch

import repo_paths  # noqa: F401  (puts python/ and tests/reference/ on sys.path)
import yolox_checkout
import yoloxloss


def import_yolox():
    """(YOLOXHead, postprocess) from $YOLOX_SRC; exits 77 without it."""
    src = yolox_checkout.checkout("test decode and detect against the official decode_outputs and postprocess")
    try:
        from yolox.models import YOLOXHead
        from yolox.utils import postprocess
    except ImportError as exc:
        yolox_checkout.import_failed(src, exc)
    return YOLOXHead, postprocess


YOLOXHead, postprocess = import_yolox()

import check_decode  # noqa: E402  (after YOLOX: its helpers read the library's values)
import decode_reference as ref  # noqa: E402

IMG = 160
CLASSES = 7
WIDTH = 0.125
STRIDES = (8, 16, 32)


class Head:
    """An official YOLOXHead in eval mode whose prediction biases spread the
    scores over (0, 1), and the raw per-level outputs of its convolutions."""

    def __init__(self, seed, images=2):
        torch.manual_seed(seed)
        self.module = YOLOXHead(CLASSES, width=WIDTH, strides=list(STRIDES)).eval()
        for convs, std in ((self.module.obj_preds, 2.0), (self.module.cls_preds, 2.0)):
            for conv in convs:
                conv.bias.data.normal_(0.0, std)
        gen = torch.Generator().manual_seed(seed)
        self.xin = [torch.randn(images, int(c * WIDTH), IMG // s, IMG // s, generator=gen)
                    for c, s in zip((256, 512, 1024), STRIDES)]
        raw = {}
        hooks = []
        for name in ("reg_preds", "obj_preds", "cls_preds"):
            for k, conv in enumerate(getattr(self.module, name)):
                hooks.append(conv.register_forward_hook(
                    lambda m, i, o, key=(name, k): raw.__setitem__(key, o.detach().clone())))
        with torch.no_grad():
            self.decoded = self.module(self.xin)  # [B, A, 5 + C]: decode_outputs of the sigmoids
        for h in hooks:
            h.remove()
        self.raw = [(raw[("reg_preds", k)], raw[("obj_preds", k)], raw[("cls_preds", k)]) for k in range(3)]

    def outputs(self, dtype=torch.float32, obj_value=None, cls_value=None):
        out = []
        for reg, obj, cls in self.raw:
            obj = obj if obj_value is None else torch.full_like(obj, obj_value)
            cls = cls if cls_value is None else torch.full_like(cls, cls_value)
            out.append(torch.cat([reg, obj, cls], 1).to(dtype))
        return out


class DecodeOfficialTest(unittest.TestCase):
    def test_decode(self):
        head = Head(1)
        boxes, scores, obj_p, cls_p = check_decode.library_values(head.outputs, strides=STRIDES)
        want = head.decoded
        self.assertTrue(torch.equal(boxes[..., :2], want[..., :2]), "box centres")
        self.assertLessEqual(int(check_decode.ulps(boxes[..., 2:4], want[..., 2:4]).max()), 1, "box sizes")
        obj_logit = torch.cat([o.flatten(1) for _, o, _ in head.raw], 1)
        cls_logit = torch.cat([c.flatten(2) for _, _, c in head.raw], 2).permute(0, 2, 1)
        self.assertTrue(bool(check_decode.sigmoid_formula(obj_p, obj_logit).all()))
        self.assertTrue(bool(check_decode.sigmoid_formula(cls_p, cls_logit).all()))
        # torch.sigmoid's kernel and SLEEF's exp: a few ulps apart at most
        for mine, theirs in ((obj_p, want[..., 4]), (cls_p, want[..., 5:])):
            d = check_decode.ulps(mine, theirs)
            self.assertLessEqual(int(d.max()), 4)
            self.assertGreater(float((d == 0).float().mean()), 0.99)
        self.assertTrue(torch.equal(scores, obj_p[..., None] * cls_p))

    def check_detect(self, head, dtype, conf, nms, agnostic):
        """The library's detections against postprocess on the official
        decode of the same (dtype-rounded) outputs."""
        outs = head.outputs(dtype)
        official_in = head.decoded.clone()
        if dtype != torch.float32:
            # the official head run on the rounded outputs: decode_outputs of their sigmoids
            flat = torch.cat([o.float().flatten(2) for o in outs], 2).permute(0, 2, 1)
            flat = torch.cat([flat[..., :4], flat[..., 4:].sigmoid()], 2)
            head.module.hw = [o.shape[-2:] for o in outs]
            official_in = head.module.decode_outputs(flat, dtype=flat.type())
        want = postprocess(official_in.clone(), CLASSES, conf, nms, agnostic)
        got = yoloxloss.yolox_detect(outs, STRIDES, conf, nms, agnostic)
        boxes, _, obj_p, cls_p = check_decode.library_values(
            lambda obj_value=None, cls_value=None: head.outputs(dtype, obj_value, cls_value), strides=STRIDES)
        explained = 0
        for b in range(len(want)):
            mine = ref.candidates(boxes[b], obj_p[b], cls_p[b], conf)
            theirs = ref.candidates(official_in[b, :, :4], official_in[b, :, 4], official_in[b, :, 5:], conf)
            # decode_reference's candidates and torchvision calls are YOLOX's postprocess
            kept_tv, shifted = ref.postprocess_torchvision(theirs, nms, agnostic)
            rows = ref.rows(theirs, kept_tv)
            self.assertEqual(rows is None, want[b] is None)
            if rows is not None:
                self.assertTrue(torch.equal(rows, want[b]), "the reference's torchvision calls are not YOLOX's")
            kept = ref.postprocess_exact(mine, nms, agnostic)
            self.assertEqual(got[b] is None, kept.numel() == 0)
            if got[b] is not None:
                self.assertTrue(torch.equal(got[b], ref.rows(mine, kept)))
            universe, amb, linked = ref.ambiguity(mine, theirs, nms, agnostic, ties_ambiguous=True,
                                                  shifted=shifted)
            ok, why = ref.explain_difference(mine.anchor[kept], mine.score[kept], theirs.anchor[kept_tv],
                                             theirs.score[kept_tv], universe, amb, linked)
            self.assertTrue(ok, "image %d (%s, conf %g, nms %g%s): %s"
                            % (b, dtype, conf, nms, ", agnostic" if agnostic else "", why))
            explained += why != "identical"
        return explained, sum(0 if w is None else len(w) for w in want)

    def test_detect(self):
        head = Head(2)
        total, explained = 0, 0
        for dtype in (torch.float32, torch.bfloat16):
            for conf, nms, agnostic in ((0.7, 0.45, False), (0.3, 0.65, False), (0.01, 0.45, False),
                                        (0.3, 0.45, True)):
                with self.subTest(dtype=dtype, conf=conf, nms=nms, agnostic=agnostic):
                    e, n = self.check_detect(head, dtype, conf, nms, agnostic)
                    explained += e
                    total += n
        self.assertGreater(total, 100)  # the thresholds keep detections
        print("\n%d official detections; %d images differ where ties or rounding explain it"
              % (total, explained))


if __name__ == "__main__":
    unittest.main()
