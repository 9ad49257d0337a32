#!/usr/bin/python3
"""Tests of yoloxloss.yolox.use_library on a stand-in YOLOX head written here
(tests/python/yolox_standin.py, whose own loss is the PyTorch reference):
the switched training forward gives the head's losses and parameter
gradients, follows use_l1 and the assigner, leaves inference alone, survives
deepcopy and pickling, and refuses what is not a YOLOX head before any
training step. The same checks against the official YOLOXHead are in
test_yolox_official.py (needs $YOLOX_SRC).

Run from anywhere:  /usr/bin/python3 tests/python/test_yolox_switch.py [-v]
"""

import copy
import pickle
import unittest

import torch
from torch import nn

import repo_paths  # noqa: F401  (puts python/ and tests/reference on sys.path)
import yoloxloss
import yoloxloss.yolox as yolox_switch
from yolox_standin import StandInHead, StandInModel

IMG = 128
CLASSES = 5
IN_CHANNELS = (8, 16, 32)
STRIDES = (8, 16, 32)


def features(seed, images=2):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(images, c, IMG // s, IMG // s, generator=gen)
            for c, s in zip(IN_CHANNELS, STRIDES)]


def labels(seed, images=2, boxes=(3, 2)):
    gen = torch.Generator().manual_seed(seed + 1000)
    lab = torch.zeros(images, max(boxes) + 3, 5)
    for b, n in enumerate(boxes):
        for r in range(n):
            w, h = (float(v) for v in 20 + 50 * torch.rand(2, generator=gen))
            cx, cy = (float(v) for v in 30 + (IMG - 60) * torch.rand(2, generator=gen))
            lab[b, r] = torch.tensor([(b + r) % CLASSES, cx, cy, w, h])
    return lab


def new_head(seed=0, **kw):
    torch.manual_seed(seed)
    return StandInHead(CLASSES, IN_CHANNELS, strides=STRIDES, **kw).train()


def training_step(head, xin, lab):
    """The head's training forward and backward; -> (6-tuple, {name: grad})."""
    head.zero_grad(set_to_none=True)
    result = head(xin, lab, None)
    result[0].backward()
    return result, {n: p.grad.clone() for n, p in head.named_parameters()}


class SwitchTest(unittest.TestCase):
    def assert_same_step(self, want, got, what):
        (w_res, w_grads), (g_res, g_grads) = want, got
        self.assertEqual(len(g_res), 6)
        for i in range(5):
            w, g = float(w_res[i]), float(g_res[i])
            self.assertAlmostEqual(w, g, delta=2e-5 * max(1.0, abs(w)),
                                   msg="%s: loss entry %d: head %r, switched %r" % (what, i, w, g))
        self.assertIsInstance(g_res[5], float)
        self.assertAlmostEqual(w_res[5], g_res[5], places=6)
        for name, w in w_grads.items():
            g = g_grads[name]
            scale = max(float(w.abs().max()), 1e-6)
            err = float((g - w).abs().max()) / scale
            self.assertLess(err, 1e-4, "%s: gradient of %s differs by %.2e of its max" % (what, name, err))


class TestSwitchedTraining(SwitchTest):
    def test_losses_and_parameter_gradients_match_the_head(self):
        xin, lab = features(1), labels(1)
        head = new_head()
        want = training_step(head, xin, lab)
        self.assertIsInstance(want[0][4], float)
        self.assertIs(yolox_switch.use_library(head), head)
        self.assertIsInstance(head.__dict__["forward"], yolox_switch.LibraryForward)
        got = training_step(head, xin, lab)
        self.assert_same_step(want, got, "switched head")
        self.assertIsInstance(got[0][4], float)  # no L1 term: the number 0.0, as YOLOX
        self.assertEqual(got[0][4], 0.0)
        self.assertTrue(got[0][0].requires_grad)

    def test_use_l1_is_read_at_every_call(self):
        xin, lab = features(2), labels(2)
        head = new_head(2)
        yolox_switch.use_library(head)
        first = training_step(head, xin, lab)
        self.assertEqual(first[0][4], 0.0)
        yolox_switch.restore(head)
        head.use_l1 = True  # what YOLOX's trainer does for the last epochs
        want = training_step(head, xin, lab)
        yolox_switch.use_library(head)
        got = training_step(head, xin, lab)
        self.assertIsInstance(got[0][4], torch.Tensor)
        self.assertGreater(float(got[0][4]), 0.0)
        self.assert_same_step(want, got, "use_l1 on")
        head.use_l1 = False
        off = training_step(head, xin, lab)
        self.assertEqual(off[0][4], 0.0)
        self.assertAlmostEqual(float(off[0][0]), float(first[0][0]), delta=1e-6 * float(first[0][0]))

    def test_legacy_assigner_is_a_parameter(self):
        xin, lab = features(3), labels(3, boxes=(4, 3))
        head = new_head(3, assigner="yolox-legacy")
        want = training_step(head, xin, lab)
        yolox_switch.use_library(head, assigner="yolox-legacy")
        got = training_step(head, xin, lab)
        self.assert_same_step(want, got, "legacy assigner")
        # The current rule gives another loss on these inputs.
        yolox_switch.use_library(head, assigner="yolox")
        current = training_step(head, xin, lab)
        self.assertNotAlmostEqual(float(current[0][0]), float(got[0][0]), places=4)

    def test_iou_loss_follows_the_head_unless_given(self):
        xin, lab = features(4), labels(4)
        head = new_head(4)
        head.iou_loss.loss_type = "giou"
        want = training_step(head, xin, lab)
        yolox_switch.use_library(head)
        self.assert_same_step(want, training_step(head, xin, lab), "giou from the head")
        yolox_switch.use_library(head, iou_loss="iou")  # given: the head's "giou" is not used
        got = training_step(head, xin, lab)
        want_iou = training_step(new_head(4), xin, lab)  # same weights, the head's loss "iou"
        self.assert_same_step(want_iou, got, "iou given")
        self.assertNotAlmostEqual(float(got[0][1]), float(want[0][1]), places=4)

    def test_normalizer_is_passed_on(self):
        # A fixed normaliser N' scales every term by N / N' against the
        # head's own (N = max(num_fg, 1) of the batch).
        xin, lab = features(5), labels(5)
        head = new_head(5)
        yolox_switch.use_library(head)
        own = training_step(head, xin, lab)
        n = float(own[0][5]) * float(lab[:, :, 1:].sum(dim=2).gt(0).sum())  # num_fg
        yolox_switch.use_library(head, normalizer=2.0 * n)
        halved = training_step(head, xin, lab)
        for i in range(4):
            self.assertAlmostEqual(float(halved[0][i]), 0.5 * float(own[0][i]),
                                   delta=1e-6 * max(1.0, abs(float(own[0][i]))))

    def test_preset_is_passed_on(self):
        # The mmdet preset on the switched head is yolox_loss's on its outputs.
        xin, lab = features(12), labels(12, boxes=(4, 3))
        head = new_head(12)
        yolox_switch.use_library(head, preset="mmdet")
        got = head(xin, lab, None)
        with torch.no_grad():
            levels = head.level_outputs(xin)
        want = yoloxloss.yolox_loss(levels, lab, STRIDES, preset="mmdet")
        megvii = yoloxloss.yolox_loss(levels, lab, STRIDES)
        for i in range(5):
            self.assertEqual(float(got[i]), float(want[i]), "term %d" % i)
        self.assertNotEqual(float(got[0]), float(megvii[0]), "the preset changed nothing")

    def test_model_with_head_and_an_optimizer_step(self):
        torch.manual_seed(5)
        model = StandInModel(StandInHead(CLASSES, IN_CHANNELS, strides=STRIDES)).train()
        twin = copy.deepcopy(model)
        imgs = torch.randn(2, 3, IMG, IMG, generator=torch.Generator().manual_seed(5))
        lab = labels(5)
        yolox_switch.use_library(model)
        self.assertIsInstance(model.head.__dict__["forward"], yolox_switch.LibraryForward)
        for m in (model, twin):
            opt = torch.optim.SGD(m.parameters(), lr=0.01)
            for _ in range(2):
                out = m(imgs, lab)
                opt.zero_grad()
                out["total_loss"].backward()
                opt.step()
        self.assertEqual(set(out), {"total_loss", "iou_loss", "l1_loss", "conf_loss", "cls_loss", "num_fg"})
        for (name, p), q in zip(model.named_parameters(), twin.parameters()):
            err = float((p - q).abs().max())
            self.assertLess(err, 1e-5, "parameter %s after two SGD steps differs by %g" % (name, err))

    def test_wrapped_model_module_head(self):
        class Wrapper(nn.Module):  # DataParallel's shape: the model as .module
            def __init__(self, module):
                super().__init__()
                self.module = module

        model = StandInModel(new_head(6))
        head = yolox_switch.use_library(Wrapper(model))
        self.assertIs(head, model.head)


class TestInferenceAndState(SwitchTest):
    def test_inference_is_untouched(self):
        xin = features(7)
        head = new_head(7).eval()
        with torch.no_grad():
            before = head(xin)
            yolox_switch.use_library(head)
            after = head(xin)
        self.assertTrue(torch.equal(before, after))
        self.assertEqual(tuple(after.shape), (2, sum((IMG // s) ** 2 for s in STRIDES), 5 + CLASSES))

    def test_restore_gives_the_own_forward_back(self):
        xin, lab = features(8), labels(8)
        head = new_head(8)
        want = training_step(head, xin, lab)
        yolox_switch.use_library(head)
        yolox_switch.use_library(head, num_threads=1)  # twice: options replaced, original kept
        yolox_switch.restore(head)
        self.assertNotIn("forward", head.__dict__)
        got = training_step(head, xin, lab)
        for w, g in zip(want[0][:5], got[0][:5]):
            self.assertEqual(float(w), float(g))  # the reference itself, bit for bit

    def test_deepcopy_and_pickle_carry_the_switch(self):
        xin, lab = features(9), labels(9)
        head = new_head(9)
        want = training_step(head, xin, lab)
        yolox_switch.use_library(head)
        for clone in (copy.deepcopy(head), pickle.loads(pickle.dumps(head))):
            fwd = clone.__dict__["forward"]
            self.assertIsInstance(fwd, yolox_switch.LibraryForward)
            self.assertIs(fwd.head, clone, "the copy's forward runs the original head's layers")
            self.assert_same_step(want, training_step(clone, xin, lab), "copied head")


class TestRefusals(unittest.TestCase):
    def assert_refused(self, exc_type, fragments, obj, **kw):
        with self.assertRaises(exc_type) as cm:
            yolox_switch.use_library(obj, **kw)
        for f in fragments:
            self.assertIn(f, str(cm.exception))

    def test_not_a_head(self):
        self.assert_refused(TypeError, ["YOLOX head", "stems", "obj_preds"], nn.Linear(2, 2))
        self.assert_refused(TypeError, ["YOLOX head"], object())

    def test_missing_attributes(self):
        head = new_head()
        del head.obj_preds
        self.assert_refused(TypeError, ["obj_preds"], head)
        head = new_head()
        del head.use_l1
        self.assert_refused(TypeError, ["use_l1"], head)
        model = StandInModel(new_head())
        del model.head.reg_convs
        self.assert_refused(TypeError, ["StandInModel.head", "reg_convs"], model)

    def test_wrong_output_channels(self):
        head = new_head()
        head.reg_preds[1] = nn.Conv2d(16, 5, 1)
        self.assert_refused(ValueError, ["reg_preds[1]", "5 output channels", "4"], head)
        head = new_head()
        head.obj_preds[0] = nn.Conv2d(16, 2, 1)
        self.assert_refused(ValueError, ["obj_preds[0]", "2 output channels"], head)
        head = new_head()
        head.cls_preds[2] = nn.Conv2d(16, CLASSES + 1, 1)
        self.assert_refused(ValueError, ["cls_preds[2]", "%d output channels" % (CLASSES + 1)], head)
        head = new_head()
        head.num_classes = CLASSES + 3
        self.assert_refused(ValueError, ["num_classes", str(CLASSES + 3)], head)
        head = new_head()
        head.cls_preds[0] = nn.Identity()
        self.assert_refused(TypeError, ["cls_preds[0]", "output channels"], head)

    def test_levels_and_strides_disagree(self):
        head = new_head()
        head.strides = [8, 16]
        self.assert_refused(ValueError, ["stems", "3 levels", "strides has 2"], head)
        head = new_head()
        head.strides = [8, 32, 16]
        self.assert_refused(ValueError, ["stride"], head)

    def test_bad_options(self):
        self.assert_refused(ValueError, ["assigner"], new_head(), assigner="simota")
        self.assert_refused(ValueError, ["iou_loss", "wiou"], new_head(), iou_loss="wiou")
        head = new_head()
        head.iou_loss.loss_type = "wiou"
        self.assert_refused(ValueError, ["iou_loss", "wiou"], head)
        self.assert_refused(ValueError, ["normalizer"], new_head(), normalizer=-1.0)
        self.assert_refused(ValueError, ["normalizer"], new_head(), normalizer="mean_over_everything")
        self.assert_refused(ValueError, ["preset", "detectron"], new_head(), preset="detectron")

    def test_refusal_leaves_the_head_alone(self):
        head = new_head()
        with self.assertRaises(ValueError):
            yolox_switch.use_library(head, assigner="nope")
        self.assertNotIn("forward", head.__dict__)

    def test_bad_calls_after_switching(self):
        head = yolox_switch.use_library(new_head())
        with self.assertRaisesRegex(ValueError, "needs labels"):
            head(features(0))
        with self.assertRaisesRegex(ValueError, "2 feature maps but has 3 strides"):
            head(features(0)[:2], labels(0))

    # No GPU here: the 'meta' device stands in for CUDA. The checks compare
    # device.type with "cpu", so a CUDA tensor takes the same branch; that a
    # real CUDA step raises is not run here (test_yolox_official.py neither).
    def assert_cpu_only_error(self, cm, where, device):
        msg = str(cm.exception)
        for fragment in (where, "on device %s" % device, "on the CPU only", "yoloxloss.yolox.restore(model)",
                         "keep the model, its inputs and its targets on the CPU"):
            self.assertIn(fragment, msg)

    def test_model_moved_off_the_cpu_after_switching(self):
        device = "cuda" if torch.cuda.is_available() else "meta"
        head = yolox_switch.use_library(new_head()).to(device)
        xin = [x.to(device) for x in features(0)]
        with self.assertRaises(ValueError) as cm:
            head(xin, labels(0))
        self.assert_cpu_only_error(cm, "the YOLOX head's input xin[0]", device)

    def test_features_off_the_cpu_fail_before_the_convolutions(self):
        head = yolox_switch.use_library(new_head())
        calls = []
        head.stems[0].register_forward_hook(lambda *args: calls.append(1))
        xin = features(0)
        xin[1] = xin[1].to("meta")
        with self.assertRaises(ValueError) as cm:
            head(xin, labels(0))
        self.assert_cpu_only_error(cm, "xin[1]", "meta")
        self.assertEqual(calls, [], "a convolution ran before the device check")

    def test_model_already_off_the_cpu_is_refused_at_once(self):
        model = StandInModel(new_head()).to("meta")
        with self.assertRaises(ValueError) as cm:
            yolox_switch.use_library(model)
        first = next(model.head.named_parameters())[0]
        self.assert_cpu_only_error(cm, "use_library: the head's %s is" % first, "meta")
        self.assertNotIn("forward", model.head.__dict__)
        # One buffer off the CPU is enough.
        head = new_head()
        head.register_buffer("grid_cache", torch.zeros(2, device="meta"))
        with self.assertRaises(ValueError) as cm:
            yolox_switch.use_library(head)
        self.assert_cpu_only_error(cm, "grid_cache", "meta")

    def test_restore_is_the_way_back_for_gpu_training(self):
        # What the message advises: restore, then the head's own loss runs
        # wherever the model is (here on the CPU, where it can be checked).
        xin, lab = features(11), labels(11)
        head = new_head(11)
        want = training_step(head, xin, lab)
        yolox_switch.use_library(head)
        yolox_switch.restore(head)
        got = training_step(head, xin, lab)
        self.assertEqual([float(v) for v in want[0][:5]], [float(v) for v in got[0][:5]])

if __name__ == "__main__":
    unittest.main()
