#!/usr/bin/python3
"""Tests of the Python binding (python/yoloxloss): plumbing, not YOLOX math.
This file: how the package finds and loads the library, the ctypes mirrors
of the C structs, and what a forward and backward take and give (layouts,
dtypes, options, autograd). The gradients against finite differences and
the assignment are in test_binding_math.py, bad input in
test_binding_errors.py, the pool of contexts and threads in
test_binding_contexts.py; the cases they share in binding_cases.py.

Run from anywhere:  /usr/bin/python3 tests/python/test_binding.py [-v]
The library is found as the package finds it ($YOLOXLOSS_LIB, next to the
package, or build/libyoloxloss.so). The YOLOX math itself is checked against
the PyTorch reference in tests/reference/.
"""

import ctypes
import math
import os
import subprocess
import sys
import unittest

import torch

import repo_paths  # puts python/ (yoloxloss) and tests/reference/ on sys.path
import yoloxloss
from yoloxloss import _capi  # noqa: E402
from binding_cases import (IMG, STRIDES, case, clone_outputs, leaves, loss_and_grads, make_labels,
                           make_outputs, split)

PYDIR = repo_paths.PYTHON_DIR


class TestLibrary(unittest.TestCase):
    def test_path_and_version(self):
        path = yoloxloss.library_path()
        self.assertTrue(os.path.isfile(path), path)
        self.assertEqual(yoloxloss.version(), "%d.%d.%d" % yoloxloss.VERSION)
        for name in yoloxloss.__all__:
            self.assertTrue(hasattr(yoloxloss, name), name)

    def test_status_strings(self):
        for status in _capi.STATUS_NAMES:
            s = _capi.status_string(status)
            self.assertIsInstance(s, bytes)
            self.assertTrue(len(s) > 0, status)

    def test_config_struct_layout(self):
        # Defaults as documented in yoloxloss.h: a mismatch in the ctypes
        # mirror of yoloxloss_config shows up as wrong values here.
        cfg = _capi.Config()
        _capi.config_defaults(ctypes.byref(cfg))
        self.assertEqual(cfg.num_classes, 80)
        self.assertEqual(cfg.num_levels, 3)
        self.assertEqual([cfg.strides[i] for i in range(3)], [8.0, 16.0, 32.0])
        self.assertEqual(cfg.assigner, _capi.ASSIGNER_YOLOX)
        self.assertEqual(cfg.center_radius, 0.0)
        self.assertEqual(cfg.candidate_topk, 10)
        self.assertEqual(cfg.iou_cost_weight, 3.0)
        self.assertEqual(cfg.cls_cost_weight, 1.0)
        self.assertEqual(cfg.iou_loss, _capi.IOU_LOSS_IOU)
        self.assertEqual(cfg.use_l1, 0)
        self.assertEqual((cfg.reg_weight, cfg.obj_weight, cfg.cls_weight, cfg.l1_weight),
                         (5.0, 1.0, 1.0, 1.0))
        self.assertEqual(cfg.num_threads, 0)
        self.assertIn(cfg.check_finite, (0, 1))
        # Every field round-trips through create/get_config.
        cfg.num_classes = 7
        cfg.num_levels = 2
        cfg.strides = (ctypes.c_float * 2)(4.0, 12.0)
        cfg.assigner = _capi.ASSIGNER_YOLOX_LEGACY
        cfg.center_radius = 2.0
        cfg.candidate_topk = 6
        cfg.iou_cost_weight = 2.5
        cfg.cls_cost_weight = 0.5
        cfg.iou_loss = _capi.IOU_LOSS_GIOU
        cfg.use_l1 = 1
        cfg.reg_weight, cfg.obj_weight, cfg.cls_weight, cfg.l1_weight = 1.5, 2.5, 3.5, 4.5
        cfg.num_threads = 2
        cfg.check_finite = 1
        msg = ctypes.create_string_buffer(256)
        self.assertEqual(_capi.config_validate(ctypes.byref(cfg), msg, len(msg)), _capi.OK,
                         msg.value)
        ptr = _capi.ContextPtr()
        self.assertEqual(_capi.create(ctypes.byref(cfg), ctypes.byref(ptr)), _capi.OK)
        try:
            got = _capi.get_config(ptr).contents
            for name, _ in _capi.Config._fields_:
                a, b = getattr(cfg, name), getattr(got, name)
                if name == "strides":  # the context holds its own copy
                    self.assertNotEqual(ctypes.addressof(a.contents), ctypes.addressof(b.contents))
                    a, b = [a[i] for i in range(2)], [b[i] for i in range(2)]
                self.assertEqual(a, b, name)
            self.assertEqual(_capi.last_error(ptr), b"")
        finally:
            _capi.destroy(ptr)

    def test_config_validate_message(self):
        cfg = _capi.Config()
        _capi.config_defaults(ctypes.byref(cfg))
        cfg.num_classes = 0
        msg = ctypes.create_string_buffer(256)
        self.assertEqual(_capi.config_validate(ctypes.byref(cfg), msg, len(msg)),
                         _capi.ERR_INVALID_CONFIG)
        self.assertIn(b"num_classes", msg.value)

    def test_missing_library_message(self):
        env = repo_paths.child_env(dict(os.environ, YOLOXLOSS_LIB="/nonexistent/dir/libyoloxloss.so"))
        code = "import yoloxloss"
        p = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("ImportError", p.stderr)
        self.assertIn("/nonexistent/dir/libyoloxloss.so", p.stderr)

    def test_env_var_selects_library(self):
        env = repo_paths.child_env(dict(os.environ, YOLOXLOSS_LIB=yoloxloss.library_path()))
        code = "import yoloxloss; print(yoloxloss.library_path())"
        p = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout.strip(), os.path.abspath(yoloxloss.library_path()))


    def _copy_package(self, tmp, with_lib):
        import shutil
        dst = os.path.join(tmp, "pkg", "yoloxloss")
        shutil.copytree(os.path.join(PYDIR, "yoloxloss"), dst,
                        ignore=shutil.ignore_patterns("__pycache__", "*.so*"))
        if with_lib:
            shutil.copy(yoloxloss.library_path(), os.path.join(dst, "libyoloxloss.so"))
        return os.path.dirname(dst)

    def test_search_order(self):
        import tempfile
        env = {k: v for k, v in os.environ.items() if k != "YOLOXLOSS_LIB"}
        code = "import yoloxloss; print(yoloxloss.library_path())"
        with tempfile.TemporaryDirectory() as tmp:
            # A copy of the package with the library beside it loads that one.
            pkg = self._copy_package(os.path.join(tmp, "a"), True)
            p = subprocess.run([sys.executable, "-c", code], env=repo_paths.child_env(env, pkg),
                               capture_output=True, text=True)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual(p.stdout.strip(), os.path.join(pkg, "yoloxloss", "libyoloxloss.so"))
            # Without one (and no build/ two levels up) the error lists both places.
            pkg = self._copy_package(os.path.join(tmp, "b"), False)
            p = subprocess.run([sys.executable, "-c", code], env=repo_paths.child_env(env, pkg),
                               capture_output=True, text=True)
            self.assertNotEqual(p.returncode, 0)
            self.assertIn("ImportError", p.stderr)
            self.assertIn(os.path.join(pkg, "yoloxloss", "libyoloxloss.so"), p.stderr)
            self.assertIn(os.path.join(tmp, "b", "build", "libyoloxloss.so"), p.stderr)


class TestForwardBackward(unittest.TestCase):
    def check_result(self, res):
        self.assertIsInstance(res, tuple)
        self.assertEqual(len(res), 6)
        for t in res:
            self.assertIsInstance(t, torch.Tensor)
            self.assertEqual(t.dim(), 0)
            self.assertEqual(t.dtype, torch.float32)
            self.assertTrue(math.isfinite(float(t)))
        total, iou, obj, cls, l1, ratio = (float(t) for t in res)
        self.assertAlmostEqual(total, iou + obj + cls + l1, delta=1e-5 * max(1.0, abs(total)))
        self.assertFalse(res[5].requires_grad)
        self.assertGreater(ratio, 0)

    def test_fused_forward_backward(self):
        outputs, labels = case(0)
        res = yoloxloss.yolox_loss(outputs, labels)
        self.check_result(res)
        self.assertTrue(res[0].requires_grad)
        self.assertEqual(float(res[4]), 0.0)  # no L1 by default
        res[0].backward()
        for x in outputs:
            self.assertIsNotNone(x.grad)
            self.assertEqual(x.grad.shape, x.shape)
            self.assertEqual(x.grad.dtype, torch.float32)
            self.assertTrue(torch.isfinite(x.grad).all())
        # Image 1 has no boxes: only its obj channel gets gradient.
        for x in outputs:
            g = x.grad[1]
            self.assertTrue(torch.equal(g[:4], torch.zeros_like(g[:4])))
            self.assertTrue(torch.equal(g[5:], torch.zeros_like(g[5:])))
            self.assertTrue(bool((g[4] != 0).any()))

    def test_split_layout_matches_fused(self):
        outputs, labels = case(1)
        for kw in ({}, {"use_l1": True, "iou_loss": "giou"}):
            res_f, grads_f = loss_and_grads(outputs, labels, **kw)
            sp = split(outputs)
            res_s, grads_s = loss_and_grads(sp, labels, **kw)
            self.check_result(res_s)
            for a, b in zip(res_f, res_s):
                self.assertTrue(torch.equal(a, b), (kw, res_f, res_s))
            for l, gf in enumerate(grads_f):
                gs = torch.cat(grads_s[3 * l:3 * l + 3], dim=1)
                self.assertTrue(torch.equal(gf, gs), (kw, l))
            # Mixed: level 0 split, the others fused.
            mixed = [sp[0]] + list(outputs[1:])
            res_m, _ = loss_and_grads(mixed, labels, **kw)
            for a, b in zip(res_f, res_m):
                self.assertTrue(torch.equal(a, b))

    def test_repeated_calls_bitwise(self):
        outputs, labels = case(2)
        for kw in ({}, {"use_l1": True}, {"assigner": "yolox-legacy", "iou_loss": "giou"}):
            r1, g1 = loss_and_grads(outputs, labels, **kw)
            r2, g2 = loss_and_grads(outputs, labels, **kw)
            r3, g3 = loss_and_grads(outputs, labels, num_threads=1, **kw)
            for a, b, c in zip(r1, r2, r3):
                self.assertTrue(torch.equal(a, b))
                self.assertTrue(torch.equal(a, c))
            for a, b, c in zip(g1, g2, g3):
                self.assertTrue(torch.equal(a, b))
                self.assertTrue(torch.equal(a, c))

    def test_options_change_results(self):
        outputs, labels = case(3)
        base = yoloxloss.yolox_loss(outputs, labels)
        l1 = yoloxloss.yolox_loss(outputs, labels, use_l1=True)
        self.assertGreater(float(l1[4]), 0.0)
        self.assertTrue(torch.equal(base[1], l1[1]))
        w = yoloxloss.yolox_loss(outputs, labels, reg_weight=2.5, obj_weight=2.0,
                                 cls_weight=0.5, use_l1=True, l1_weight=3.0)
        self.assertAlmostEqual(float(w[1]), float(base[1]) / 2, delta=1e-5)
        self.assertAlmostEqual(float(w[2]), float(base[2]) * 2, delta=1e-5)
        self.assertAlmostEqual(float(w[3]), float(base[3]) / 2, delta=1e-5)
        self.assertAlmostEqual(float(w[4]), float(l1[4]) * 3, delta=1e-5)
        for kw in ({"assigner": "yolox-legacy"}, {"assigner": "YOLOX_LEGACY"},
                   {"iou_loss": "giou"}):
            self.check_result(yoloxloss.yolox_loss(outputs, labels, **kw))

    def test_no_grad_and_detached_inputs(self):
        outputs, labels = case(4)
        res = yoloxloss.yolox_loss(outputs, labels)
        with torch.no_grad():
            res_ng = yoloxloss.yolox_loss(outputs, labels)
        res_det = yoloxloss.yolox_loss([x.detach() for x in outputs], labels)
        for a, b, c in zip(res, res_ng, res_det):
            self.assertTrue(torch.equal(a, b))
            self.assertTrue(torch.equal(a, c))
            self.assertFalse(b.requires_grad)

    def test_noncontiguous_and_float64_inputs(self):
        outputs, labels = case(5)
        res, grads = loss_and_grads(outputs, labels)
        cl = [x.detach().to(memory_format=torch.channels_last).requires_grad_() for x in outputs]
        self.assertFalse(cl[0].is_contiguous())
        res_cl = yoloxloss.yolox_loss(cl, labels)
        res_cl[0].backward()
        d64 = [x.detach().double().requires_grad_() for x in outputs]
        res_64 = yoloxloss.yolox_loss(d64, labels.double())
        res_64[0].backward()
        for a, b, c in zip(res, res_cl, res_64):
            self.assertTrue(torch.equal(a, b))
            self.assertTrue(torch.equal(a, c))
        for g, x_cl, x_64 in zip(grads, cl, d64):
            self.assertTrue(torch.equal(g, x_cl.grad))
            self.assertEqual(x_64.grad.dtype, torch.float64)
            self.assertTrue(torch.equal(g.double(), x_64.grad))
        # Labels as a numpy array or nested lists work too.
        res_np = yoloxloss.yolox_loss(outputs, labels.numpy())
        self.assertTrue(torch.equal(res[0], res_np[0]))

    def test_no_copy_of_contiguous_float32(self):
        outputs, labels = case(4)
        sp = split(outputs)
        for outs in (outputs, sp):
            res = yoloxloss.yolox_loss(outs, labels)
            prepared = res[0].grad_fn.run.keep[0]
            for p, t in zip(prepared, leaves(outs)):
                self.assertEqual(p.data_ptr(), t.data_ptr())
            res[0].backward()
            self.assertIsNone(res[0].grad_fn.run.context)  # back in the pool

    def test_half_tensors_in_place_and_exact(self):
        # float16 and bfloat16 outputs go to C in place; their gradients come
        # back in their dtype, and equal the float32 path's on the same
        # (up-converted) values rounded with .to(dtype); the losses are the
        # float32 path's bit for bit.
        outputs, labels = case(11)
        for dtype in (torch.float16, torch.bfloat16):
            for layout in ("fused", "split"):
                base = [x.detach().to(dtype) for x in outputs]
                typed = [x.clone().requires_grad_() for x in base]
                if layout == "split":
                    typed = split(typed)
                res = yoloxloss.yolox_loss(typed, labels, use_l1=True)
                prepared = res[0].grad_fn.run.keep[0]
                for p, t in zip(prepared, leaves(typed)):
                    self.assertEqual(p.dtype, dtype)
                    self.assertEqual(p.data_ptr(), t.data_ptr())
                res32, grads32 = loss_and_grads([x.float() for x in base] if layout == "fused"
                                                else split([x.float() for x in base]), labels, use_l1=True)
                (res[0] * 1.0).backward()
                for a, b in zip(res, res32):
                    self.assertEqual(a.dtype, torch.float32)
                    self.assertTrue(torch.equal(a, b), (dtype, layout))
                for t, g32 in zip(leaves(typed), grads32):
                    self.assertEqual(t.grad.dtype, dtype)
                    self.assertTrue(torch.equal(t.grad, g32.to(dtype)), (dtype, layout))

    def test_split_level_of_several_dtypes_is_copied(self):
        # C takes one dtype per level: a split level whose tensors differ goes
        # to C as float32 copies, and each gradient comes back in its own dtype.
        outputs, labels = case(12)
        sp = split([x.detach() for x in outputs])
        mixed = [(r.detach().half().requires_grad_(), o.detach().requires_grad_(),
                  c.detach().bfloat16().requires_grad_()) for r, o, c in sp]
        res = yoloxloss.yolox_loss(mixed, labels)
        prepared = res[0].grad_fn.run.keep[0]
        self.assertTrue(all(p.dtype == torch.float32 for p in prepared))
        res[0].backward()
        up = [tuple(t.detach().float() for t in lv) for lv in mixed]
        res32, grads32 = loss_and_grads(up, labels)
        self.assertTrue(torch.equal(res[0], res32[0]))
        for t, g32 in zip(leaves(mixed), grads32):
            self.assertEqual(t.grad.dtype, t.dtype)
            self.assertTrue(torch.equal(t.grad, g32.to(t.dtype)))

    def test_level_struct_layout(self):
        # yoloxloss_level grew a dtype after its pointers (0.2): the ctypes
        # mirror must put it where C reads it.
        self.assertEqual(_capi.Level.dtype.offset, 2 * ctypes.sizeof(ctypes.c_int) + 4 * ctypes.sizeof(ctypes.c_void_p))
        self.assertEqual(_capi.LevelGrad.cls.offset, 3 * ctypes.sizeof(ctypes.c_void_p))
        self.assertEqual((_capi.DTYPE_FLOAT32, _capi.DTYPE_FLOAT16, _capi.DTYPE_BFLOAT16), (0, 1, 2))

    def test_non_leaf_inputs_and_graph(self):
        # Head outputs as produced by a layer: gradient reaches its weights.
        gen = torch.Generator().manual_seed(6)
        labels = make_labels(gen, [2], 3)
        conv = torch.nn.Conv2d(2, 8, 1)
        feats = [torch.randn(1, 2, IMG // s, IMG // s, generator=gen) for s in STRIDES]
        outs = [conv(f) for f in feats]
        res = yoloxloss.yolox_loss(outs, labels)
        res[0].backward()
        self.assertTrue(torch.isfinite(conv.weight.grad).all())
        self.assertGreater(float(conv.weight.grad.abs().sum()), 0)

    def test_upstream_of_parts(self):
        outputs, labels = case(7)
        kw = {"use_l1": True}
        x = clone_outputs(outputs)
        res = yoloxloss.yolox_loss(x, labels, **kw)
        coef = (0.5, 2.0, -1.5, 3.0, 0.25)  # on total, iou, obj, cls, l1
        sum(c * t for c, t in zip(coef, res[:5])).backward()
        combined = [t.grad.clone() for t in x]
        # Each part separately, through one retained graph (this also
        # exercises a second backward after the context went back to the pool).
        y = clone_outputs(outputs)
        res_y = yoloxloss.yolox_loss(y, labels, **kw)
        parts = []
        for i in range(5):
            for t in y:
                t.grad = None
            res_y[i].backward(retain_graph=True)
            parts.append([t.grad.clone() for t in y])
        for l in range(len(x)):
            expect = sum(coef[i] * parts[i][l] for i in range(5))
            self.assertTrue(torch.allclose(combined[l], expect, rtol=1e-4, atol=1e-6))
        # total's gradient is the sum of the parts' gradients.
        for l in range(len(x)):
            self.assertTrue(torch.allclose(parts[0][l], sum(parts[i][l] for i in range(1, 5)),
                                           rtol=1e-4, atol=1e-6))
        # Backward twice through a retained graph accumulates twice.
        z = clone_outputs(outputs)
        res_z = yoloxloss.yolox_loss(z, labels, **kw)
        res_z[0].backward(retain_graph=True)
        first = [t.grad.clone() for t in z]
        res_z[0].backward()
        for a, t in zip(first, z):
            self.assertTrue(torch.equal(2 * a, t.grad))

    def test_inplace_edit_before_backward_is_caught(self):
        outputs, labels = case(8)
        x = clone_outputs(outputs)
        y = [t * 1.0 for t in x]
        res = yoloxloss.yolox_loss(y, labels)
        with torch.no_grad():
            y[0].add_(1.0)
        with self.assertRaises(RuntimeError):
            res[0].backward()

    def test_normalizer(self):
        outputs, labels = case(9)
        res, grads = loss_and_grads(outputs, labels, use_l1=True)
        num_gt = int((labels.sum(dim=2) > 0).sum())
        n_old = round(float(res[5]) * max(num_gt, 1))
        n_new = 7.5
        res2, grads2 = loss_and_grads(outputs, labels, use_l1=True, normalizer=n_new)
        for i in range(5):
            self.assertAlmostEqual(float(res2[i]), float(res[i]) * n_old / n_new,
                                   delta=1e-5 * max(1.0, abs(float(res[i]))))
        for a, b in zip(grads, grads2):
            self.assertTrue(torch.allclose(a * n_old / n_new, b, rtol=1e-5, atol=1e-7))
        with self.assertRaises(ValueError):
            yoloxloss.yolox_loss(outputs, labels, normalizer=0.0)

    def test_all_images_empty(self):
        gen = torch.Generator().manual_seed(10)
        outputs = make_outputs(gen, 2, 3)
        labels = torch.zeros(2, 4, 5)
        res = yoloxloss.yolox_loss(outputs, labels, use_l1=True)
        self.check_result(res)
        self.assertEqual(float(res[1]), 0.0)
        self.assertEqual(float(res[3]), 0.0)
        self.assertEqual(float(res[4]), 0.0)
        self.assertGreater(float(res[2]), 0.0)
        self.assertEqual(float(res[5]), 1.0)
        res[0].backward()
        for x in outputs:
            self.assertTrue(torch.equal(x.grad[:, :4], torch.zeros_like(x.grad[:, :4])))
            self.assertTrue(torch.equal(x.grad[:, 5:], torch.zeros_like(x.grad[:, 5:])))
        m = yoloxloss.yolox_assign(outputs, labels)
        self.assertTrue(torch.equal(m, torch.full((2, 84), -1, dtype=torch.int64)))
        # Zero label rows at all (M = 0) are fine too.
        res0 = yoloxloss.yolox_loss(outputs, torch.zeros(2, 0, 5))
        self.assertTrue(torch.equal(res0[2], yoloxloss.yolox_loss(outputs, labels)[2]))

    def test_single_level_and_other_strides(self):
        gen = torch.Generator().manual_seed(11)
        labels = make_labels(gen, [2, 1], 2, img=48)
        outs = make_outputs(gen, 2, 2, strides=(4, 12), img=48)
        self.check_result(yoloxloss.yolox_loss(outs, labels, strides=(4, 12)))
        outs1 = make_outputs(gen, 2, 2, strides=(8,), img=48)
        self.check_result(yoloxloss.yolox_loss(outs1, labels, strides=[8]))
        m = yoloxloss.yolox_assign(outs1, labels, strides=(8,))
        self.assertEqual(tuple(m.shape), (2, 36))

if __name__ == "__main__":
    unittest.main()
