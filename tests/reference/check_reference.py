#!/usr/bin/python3
"""Compare the yoloxloss PyTorch drop-in (C library) with the independent
PyTorch reference (yolox_reference.py) on random YOLOX training steps.

    /usr/bin/python3 tests/reference/check_reference.py --cases 200 --seed 1
    /usr/bin/python3 tests/reference/check_reference.py --quick
    /usr/bin/python3 tests/reference/check_reference.py --seed 1 --case 17 -v
    /usr/bin/python3 tests/reference/check_reference.py --isa scalar
    /usr/bin/python3 tests/reference/check_reference.py --preset mmdet --cases 60 --seed 5
    /usr/bin/python3 tests/reference/check_reference.py --cases 20 --lib-threads 1 \
        --runner "qemu-aarch64 -L /usr/aarch64-linux-gnu build-aarch64/tests/run_case"

The drop-in is imported from this repository (../../python); the shared
library it loads can be named with $YOLOXLOSS_LIB (default: ../../build).
--isa NAME sets $YOLOXLOSS_ISA=NAME, which makes the library use the kernels
of that instruction set. --runner CMD checks a build that Python cannot load:
instead of the drop-in, each case goes through `CMD CASE_FILE OUT_FILE`
(tests/reference/run_case.c, the files described there; runner_io.py) and
is compared exactly as the drop-in's results are. --preset mmdet checks the
library's mmdet preset against MMDetection's computation
(mmdet_reference.py) instead of YOLOX's: the same cases, with box corners
moved onto a 1/64 px lattice (so corners and centre-size agree exactly) and
MMDetection's IoULoss (the case's iou-linear stays linear, every other loss
becomes the square form).

Pass criteria per case:
  (a) assignment (matched gt per anchor) and dynamic_k identical, except
      anchors whose difference is explained by an exact tie, or a tie within
      float32 rounding, in the reference's own costs (checked per image with
      explain_assignment_difference); then the losses/gradients are compared
      against the reference re-run with the library's assignment;
  (b) each loss term within 1e-5 relative: |lib - ref| <= 1e-5 * max(|ref|, 0.1);
  (c) each gradient element within 1e-5 * (largest |gradient| of the case);
      most cases call total.backward(), a quarter backpropagate a random
      combination of the five terms;
  (d) mixed precision: in about 30% of the cases the head outputs of every
      level (or of some levels) are float16 or bfloat16. The reference runs on
      the values up-converted to float32 and its gradients are rounded with
      torch's `.to(dtype)`; a gradient element then may also differ by one
      step of its dtype at that value (float32 gradients a rounding apart
      can round to neighbouring values). The library's 16-bit run must equal
      its own float32 run on the up-converted values exactly: the same
      losses, and gradients that are the float32 ones `.to(dtype)` (NaN as
      NaN).
  If (b) or (c) fail against the float32 reference, the float64 evaluation
  of the same assignment is tried; a case that is within tolerance of it is
  counted as passing ("closer to exact than the float32 reference") and
  reported separately.
Exit code 0 iff every case passes; the last line is "N passed, M failed".
"""

import argparse
import collections
import ctypes
import math
import os
import sys
import time

import numpy as np
import torch

import repo_paths  # puts python/ (yoloxloss) on sys.path
from runner_io import Runner
from tie_analysis import explain_assignment_difference
from yolox_reference import count_labels, yolox_loss_reference, ASSIGNERS, anchor_tables, _geometry
from mmdet_reference import mmdet_loss_reference

yoloxloss = None  # the drop-in, imported by main() unless --runner is given
RUNNER = None     # a runner_io.Runner with --runner

LOSS_TOL = 1e-5
GRAD_TOL = 1e-5
TERM_NAMES = ("total", "iou", "obj", "cls", "l1", "ratio")

IMAGE_SIZES = [(640, 640), (416, 416), (416, 288), (288, 416), (320, 320), (480, 640),
               (256, 256), (300, 200), (224, 352), (192, 192), (150, 100), (128, 128),
               (96, 160), (100, 75), (64, 64), (33, 47), (512, 384)]
STRIDE_SETS = [((8, 16, 32), 0.58), ((8, 16, 32, 64), 0.14), ((16, 32), 0.06), ((8,), 0.04),
               ((4, 8, 16), 0.05), ((8, 16, 32, 64, 128), 0.04), ((10.3, 20.6, 41.2), 0.05),
               # many levels, out of order, with strides that do not divide the image
               ((4, 6, 8, 12, 16, 24, 32, 48, 64, 96), 0.04)]


# --------------------------------------------------------------------------
# case generation
# --------------------------------------------------------------------------

def _choice(rng, items, probs=None):
    return items[int(rng.choice(len(items), p=probs))]


def _grid_shapes(img_h, img_w, strides):
    return [(max(1, int(math.ceil(img_h / s))), max(1, int(math.ceil(img_w / s)))) for s in strides]


def _gen_box(rng, kind, img_w, img_h, strides, prev):
    smin, smax = min(strides), max(strides)

    def normal_wh():
        w = math.exp(rng.uniform(math.log(4), math.log(max(5.0, 0.9 * img_w))))
        h = math.exp(rng.uniform(math.log(4), math.log(max(5.0, 0.9 * img_h))))
        return w, h

    if kind == "dup" and prev:
        src = prev[int(rng.randint(len(prev)))]
        cx, cy, w, h = src
        if rng.rand() < 0.5:  # jittered near-duplicate, else exact copy
            cx += rng.uniform(-2, 2)
            cy += rng.uniform(-2, 2)
            w *= rng.uniform(0.93, 1.07)
            h *= rng.uniform(0.93, 1.07)
        return cx, cy, w, h
    if kind == "tiny":
        return (rng.uniform(0, img_w), rng.uniform(0, img_h),
                rng.uniform(0.25, smin), rng.uniform(0.25, smin))
    if kind == "huge":
        return (rng.uniform(0.3, 0.7) * img_w, rng.uniform(0.3, 0.7) * img_h,
                rng.uniform(1.0, 2.5) * img_w, rng.uniform(1.0, 2.5) * img_h)
    if kind == "border":
        w, h = normal_wh()
        cx, cy = rng.uniform(0, img_w), rng.uniform(0, img_h)
        side = int(rng.randint(4))
        off = rng.choice([0.0, rng.uniform(0, 0.3)])
        if side == 0:
            cx = -off * w
        elif side == 1:
            cx = img_w + off * w
        elif side == 2:
            cy = -off * h
        else:
            cy = img_h + off * h
        return cx, cy, w, h
    if kind == "grid":
        # centres and sizes on a 4-pixel lattice: anchors land exactly on the
        # edges of centre boxes (r*s) and of gt boxes
        cx = 4.0 * rng.randint(0, img_w // 4 + 1)
        cy = 4.0 * rng.randint(0, img_h // 4 + 1)
        w = 8.0 * rng.randint(1, max(2, img_w // 16))
        h = 8.0 * rng.randint(1, max(2, img_h // 16))
        return cx, cy, w, h
    if kind == "negsum":
        # far beyond the top-left corner: class + cx + cy + w + h <= 0, so
        # YOLOX's padding rule does not count this row (n_b = rows with
        # sum > 0, and the first n_b rows are used, whatever they hold)
        return (-rng.uniform(3, 5) * smax, -rng.uniform(3, 5) * smax,
                rng.uniform(1, 2 * smin), rng.uniform(1, 2 * smin))
    if kind == "outside":
        # centre beyond the image by more than 2.5 strides of every level
        return (img_w + rng.uniform(3, 5) * smax, rng.uniform(0, img_h),
                rng.uniform(1, 2 * smin), rng.uniform(1, 2 * smin))
    w, h = normal_wh()
    return rng.uniform(0, img_w), rng.uniform(0, img_h), w, h


def _est_assign_elems(labels_np, counts, shapes, strides, C):
    """sum over images of n_gt * n_cand * C for the reference's class cost,
    with the larger (legacy) candidate set."""
    xs, ys, ss = anchor_tables(shapes, strides)
    tot = 0
    for b, n in enumerate(counts):
        if n == 0:
            continue
        gt = torch.from_numpy(labels_np[b, :n, 1:5].copy())
        cand, _ = _geometry(gt, xs, ys, ss, ASSIGNERS["yolox-legacy"])
        tot += n * int(cand.sum()) * C
    return tot


YOLOX_COST_EPS = float(np.float32(1e-8))  # cost_iou_eps's default, as the library holds it

# The box loss of a case from one uniform number: (loss, upper end of its interval).
BOX_LOSS_DRAW = (("iou", 0.3), ("iou-linear", 0.4), ("diou", 0.5), ("ciou", 0.6), ("giou", 0.75),
                 ("eiou", 0.875), ("siou", 1.0))


def _box_loss_of(u):
    return next(name for name, end in BOX_LOSS_DRAW if u < end)


def _cost_constants(seed, idx):
    """(cost_iou_eps, cost_penalty) of a case, float32 values, from a stream
    of its own so the case's other draws stay as they were: mostly YOLOX's
    (1e-8, the assigner's own penalty), a fifth MMDetection's (1e-7, 1e5),
    a twentieth random ones (a penalty that may be smaller than the costs)."""
    rng = np.random.RandomState((seed * 1000003 + idx * 7919 + 4099) % (2 ** 32))
    u = rng.rand()
    if u < 0.75:
        eps, pen = 1e-8, 0.0
    elif u < 0.95:
        eps, pen = 1e-7, 1e5
    else:
        eps, pen = 10.0 ** rng.uniform(-9, -2), 10.0 ** rng.uniform(0.5, 7)
    return float(np.float32(eps)), float(np.float32(pen))


def make_case(seed, idx, quick=False):
    rng = np.random.RandomState((seed * 1000003 + idx * 7919) % (2 ** 32))
    regime = _choice(rng, ["general", "many_images", "many_classes", "crowded", "edge", "large"],
                     [0.28, 0.14, 0.14, 0.18, 0.16, 0.10])
    strides = _choice(rng, [s for s, _ in STRIDE_SETS], [p for _, p in STRIDE_SETS])
    if regime == "many_images":
        sizes = [s for s in IMAGE_SIZES if s[0] * s[1] <= 256 * 256]
    elif regime in ("crowded",):
        sizes = [s for s in IMAGE_SIZES if s[0] * s[1] >= 288 * 288]
    elif regime == "large":
        sizes = [(640, 640), (640, 640), (480, 640), (416, 416), (512, 384)]
    else:
        sizes = IMAGE_SIZES
    img_h, img_w = sizes[int(rng.randint(len(sizes)))]
    if quick:
        img_h, img_w = max(32, img_h // 2), max(32, img_w // 2)
    shapes = _grid_shapes(img_h, img_w, strides)
    A = sum(h * w for h, w in shapes)

    if regime == "large":
        B = int(rng.randint(8, 65))
        C = int(_choice(rng, [1, 20, 80]))
        nmax = int(rng.randint(0, 51))
    elif regime == "general":
        B = int(rng.randint(1, 17))
        C = int(_choice(rng, [1, 2, 3, 5, 20, 80]))
        nmax = int(rng.randint(0, 41))
    elif regime == "many_images":
        B = int(rng.randint(16, 65))
        C = int(_choice(rng, [1, 3, 8, 20]))
        nmax = int(rng.randint(0, 13))
    elif regime == "many_classes":
        B = int(rng.randint(1, 4))
        C = 1203 if rng.rand() < 0.3 else int(rng.randint(200, 1204))
        nmax = int(rng.randint(0, 21))
    elif regime == "crowded":
        B = int(rng.randint(1, 5))
        C = int(_choice(rng, [1, 2, 4, 10, 20, 80]))
        nmax = int(rng.randint(60, 151))
    else:
        B = int(rng.randint(1, 7))
        C = int(_choice(rng, [1, 2, 5, 10]))
        nmax = int(rng.randint(0, 30))
    if quick:
        B = min(B, 8)
        C = min(C, 100)
        nmax = min(nmax, 30)
    # cap the dense tensors: B * A * (5 + C) elements
    cap_dense = 1_500_000 if quick else 40_000_000
    while B * A * (5 + C) > cap_dense and B > 1:
        B = max(1, B // 2)
    while B * A * (5 + C) > cap_dense and C > 1:
        C = max(1, C // 2)

    kinds_all = ["normal", "tiny", "huge", "border", "grid", "dup", "outside", "negsum"]
    if regime == "edge":
        kp = [0.15, 0.2, 0.15, 0.2, 0.2, 0.04, 0.05, 0.01]
    elif regime == "crowded":
        kp = [0.45, 0.05, 0.02, 0.05, 0.13, 0.3, 0.0, 0.0]
    else:
        kp = [0.6, 0.08, 0.04, 0.08, 0.1, 0.1, 0.0, 0.0]
    boxes, classes, kinds_used = [], [], collections.Counter()
    for b in range(B):
        if rng.rand() < 0.15:
            n = 0
        elif regime == "crowded" and rng.rand() < 0.4:
            n = nmax
        else:
            n = int(rng.randint(0, nmax + 1))
        only_outside = regime == "edge" and rng.rand() < 0.1 and n > 0
        bx, cl = [], []
        for g in range(n):
            kind = "outside" if only_outside else _choice(rng, kinds_all, kp)
            cx, cy, w, h = _gen_box(rng, kind, img_w, img_h, strides, bx)
            c = int(rng.randint(C))
            if kind == "dup" and bx and rng.rand() < 0.5:
                c = cl[int(rng.randint(len(cl)))]
            if kind != "negsum" and c + cx + cy + w + h <= 0:  # only negsum rows are uncounted
                cx, cy = abs(cx), abs(cy)
            bx.append((cx, cy, w, h))
            cl.append(c)
            kinds_used[kind] += 1
        boxes.append(bx)
        classes.append(cl)
    M = max([len(bx) for bx in boxes] + [0]) + int(rng.randint(0, 4))
    M = max(M, 1)
    labels = np.zeros((B, M, 5), dtype=np.float32)
    for b in range(B):
        for g, ((cx, cy, w, h), c) in enumerate(zip(boxes[b], classes[b])):
            labels[b, g] = (c, cx, cy, w, h)
    counts = [len(bx) for bx in boxes]

    # cap the reference's [n_gt, n_cand, C] class-cost work
    cap_assign = 8_000_000 if quick else 150_000_000
    est = _est_assign_elems(labels, counts, shapes, strides, C)
    while est > cap_assign and C > 1:
        newC = max(1, C // 2)
        labels[:, :, 0] = np.where(labels[:, :, 1:].sum(-1) != 0, labels[:, :, 0] % newC, 0)
        classes = [[c % newC for c in cl] for cl in classes]
        est = est * newC // C
        C = newC
    while est > cap_assign:
        # drop the last box of the fullest image
        b = int(np.argmax(counts))
        counts[b] -= 1
        labels[b, counts[b]] = 0
        est = _est_assign_elems(labels, counts, shapes, strides, C)

    # predictions
    pmode = _choice(rng, ["init", "trained", "constant", "mixed"], [0.35, 0.45, 0.07, 0.13])
    outs = []
    prior = -4.59512  # -log((1 - 0.01) / 0.01)
    for (h, w) in shapes:
        o = np.empty((B, 5 + C, h, w), dtype=np.float32)
        if pmode == "init":
            o[:, :4] = rng.randn(B, 4, h, w) * rng.uniform(0.05, 0.5)
            o[:, 4:] = prior + rng.randn(B, 1 + C, h, w) * rng.uniform(0.01, 0.3)
        elif pmode == "trained":
            o[:, :4] = rng.randn(B, 4, h, w) * 0.3
            o[:, 4:] = rng.randn(B, 1 + C, h, w) * 1.0 - 6.0
        elif pmode == "constant":
            o[:, :4] = 0.0
            o[:, 4:] = prior
        else:
            o[:, :4] = rng.randn(B, 4, h, w)
            o[:, 4:] = rng.randn(B, 1 + C, h, w) * 2.5 - 3.0
        outs.append(o)
    if pmode == "trained":
        sig_t = float(_choice(rng, [0.0, 0.01, 0.05, 0.2]))
        p_learn = rng.uniform(0.5, 1.0)
        for b in range(B):
            order = rng.permutation(counts[b])
            for g in order:
                if rng.rand() > p_learn:
                    continue
                c, cx, cy, gw, gh = labels[b, g]
                r_t = rng.uniform(1.0, 3.0)
                for lvl, ((h, w), s) in enumerate(zip(shapes, strides)):
                    j0 = max(0, int(math.floor(cx / s - r_t - 0.5)))
                    j1 = min(w - 1, int(math.ceil(cx / s + r_t)))
                    i0 = max(0, int(math.floor(cy / s - r_t - 0.5)))
                    i1 = min(h - 1, int(math.ceil(cy / s + r_t)))
                    if j0 > j1 or i0 > i1:
                        continue
                    jj, ii = np.meshgrid(np.arange(j0, j1 + 1), np.arange(i0, i1 + 1))
                    near = (np.abs((jj + 0.5) * s - cx) < r_t * s) & (np.abs((ii + 0.5) * s - cy) < r_t * s)
                    if not near.any():
                        continue
                    jj, ii = jj[near], ii[near]
                    k = jj.size
                    o = outs[lvl]
                    o[b, 0, ii, jj] = cx / s - jj + rng.randn(k) * sig_t
                    o[b, 1, ii, jj] = cy / s - ii + rng.randn(k) * sig_t
                    o[b, 2, ii, jj] = math.log(gw / s) + rng.randn(k) * sig_t * 2
                    o[b, 3, ii, jj] = math.log(gh / s) + rng.randn(k) * sig_t * 2
                    o[b, 4, ii, jj] = rng.randn(k) * 1.5 + 2.0
                    o[b, 5 + int(c), ii, jj] = rng.randn(k) * 1.5 + 2.5
    layout = _choice(rng, ["fused", "split", "split-views"], [0.45, 0.4, 0.15])
    assigner = "yolox" if rng.rand() < 0.5 else "yolox-legacy"
    # One draw, as before the newer losses, so the rest of every case is what
    # it was; a case with u < 0.3 (iou) or 0.6 <= u < 0.75 (giou) keeps its loss.
    iou_loss = _box_loss_of(rng.rand())
    use_l1 = bool(rng.rand() < 0.5)
    if rng.rand() < 0.75:
        weights = (5.0, 1.0, 1.0, 1.0)
    else:
        weights = tuple(float(x) for x in rng.uniform(0.1, 10.0, 4))
    num_threads = int(_choice(rng, [0, 0, 1, 2, 3]))
    # upstream gradient of the 5 loss terms: total.backward() mostly, else a
    # random combination (a*total + b*iou + c*obj + d*cls + e*l1).backward()
    if rng.rand() < 0.75:
        upstream = (1.0, 0.0, 0.0, 0.0, 0.0)
    else:
        upstream = tuple(float(x) for x in rng.uniform(-2.0, 2.0, 5))
    cost_iou_eps, cost_penalty = _cost_constants(seed, idx)
    # Mixed precision: each level's head outputs in float32, float16 or
    # bfloat16. Drawn last, so every draw above (and every float32 case) is
    # as before; "outs" then holds the values rounded into each level's
    # dtype, up-converted: the float32 inputs the reference runs on.
    precision = _choice(rng, ["float32", "float16", "bfloat16", "mixed"], [0.7, 0.12, 0.12, 0.06])
    if precision == "mixed":
        dtypes = [_choice(rng, [torch.float32, torch.float16, torch.bfloat16]) for _ in strides]
    else:
        dtypes = [getattr(torch, precision)] * len(strides)
    outs = [torch.from_numpy(o).to(dt).float() for o, dt in zip(outs, dtypes)]
    return dict(idx=idx, regime=regime, strides=strides, img=(img_h, img_w), shapes=shapes, A=A,
                B=B, C=C, labels=torch.from_numpy(labels), outs=outs, precision=precision, dtypes=dtypes,
                pmode=pmode, layout=layout, assigner=assigner, iou_loss=iou_loss, use_l1=use_l1,
                weights=weights, num_threads=num_threads, kinds=kinds_used, upstream=upstream,
                counts=[int(n) for n in count_labels(torch.from_numpy(labels))],
                cost_iou_eps=cost_iou_eps, cost_penalty=cost_penalty)


MMDET_LATTICE = 64.0  # corners of the mmdet cases' boxes are multiples of 1/64 px


def to_mmdet_case(case):
    """The case for the library's mmdet preset against MMDetection's
    computation: each used label's corners rounded to the 1/64 px lattice
    (a side at least one step), so (x1 + x2) / 2, x2 - x1 and back are exact
    in float32; MMDetection's IoULoss; the preset's assigner and constants."""
    labels = case["labels"].clone().double()
    for b, n in enumerate(case["counts"]):
        for g in range(n):
            cx, cy, w, h = labels[b, g, 1:5].tolist()
            x1, x2 = round((cx - w / 2) * MMDET_LATTICE), round((cx + w / 2) * MMDET_LATTICE)
            y1, y2 = round((cy - h / 2) * MMDET_LATTICE), round((cy + h / 2) * MMDET_LATTICE)
            x2, y2 = max(x2, x1 + 1), max(y2, y1 + 1)
            labels[b, g, 1:5] = torch.tensor([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1],
                                             dtype=torch.float64) / MMDET_LATTICE
    case = dict(case)
    case["labels"] = labels.float()
    # rounding may move a row's sum across 0: the used rows are recounted
    case["counts"] = [int(n) for n in count_labels(case["labels"])]
    case.update(preset="mmdet", assigner="yolox-legacy", arithmetic="mmdet",
                iou_loss="iou-linear" if case["iou_loss"] == "iou-linear" else "iou",
                cost_iou_eps=float(np.float32(1e-7)), cost_penalty=1e5)
    return case


def level_dtypes(case):
    """The dtype of each level's head outputs (float32 when the case has none)."""
    return case.get("dtypes") or [torch.float32] * len(case["outs"])


def leaf_dtypes(case):
    """The dtype of each autograd leaf of make_leaves (a level's, per leaf)."""
    out = []
    for dt in level_dtypes(case):
        out.extend([dt] * (3 if case["layout"] == "split" else 1))
    return out


def is_16_bit(case):
    return any(dt != torch.float32 for dt in level_dtypes(case))


def make_leaves(case, dtype=torch.float32, in_level_dtypes=False):
    """Fresh autograd leaves for one run: (inputs for the loss, flat leaf list).
    dtype: of every leaf; or, with in_level_dtypes, each level's own dtype
    (the library's inputs; the values are exact in it)."""
    inputs, leaves = [], []
    for o, level_dtype in zip(case["outs"], level_dtypes(case)):
        o = o.to(level_dtype if in_level_dtypes else dtype)
        if case["layout"] == "fused":
            t = o.clone().requires_grad_(True)
            inputs.append(t)
            leaves.append(t)
        elif case["layout"] == "split-views":
            # non-contiguous channel slices of one fused leaf
            t = o.clone().requires_grad_(True)
            inputs.append((t[:, :4], t[:, 4:5], t[:, 5:]))
            leaves.append(t)
        else:
            trip = (o[:, :4].clone().requires_grad_(True), o[:, 4:5].clone().requires_grad_(True),
                    o[:, 5:].clone().requires_grad_(True))
            inputs.append(trip)
            leaves.extend(trip)
    return inputs, leaves


# --------------------------------------------------------------------------
# running one case
# --------------------------------------------------------------------------

def backward_upstream(terms, upstream):
    if upstream == (1.0, 0.0, 0.0, 0.0, 0.0):
        terms[0].backward()
        return
    parts = [u * t for u, t in zip(upstream, terms[:5]) if u != 0.0 and t.requires_grad]
    if parts:
        sum(parts[1:], parts[0]).backward()


def run_reference(case, dtype=torch.float32, forced=None, info=False, transcendentals="torch"):
    inputs, leaves = make_leaves(case, dtype)
    rw, ow, cw, lw = case["weights"]
    if case.get("preset") == "mmdet":
        res = mmdet_loss_reference(inputs, case["labels"], case["strides"], case["use_l1"], rw, ow, cw, lw,
                                   forced_matched=forced, return_info=info,
                                   transcendentals=transcendentals, iou_loss=case["iou_loss"])
        terms, inf = (res if info else (res, None))
        backward_upstream(terms, case["upstream"])
        grads = [l.grad.detach().double() if l.grad is not None else torch.zeros_like(l, dtype=torch.float64)
                 for l in leaves]
        return [float(t) for t in terms], grads, inf
    res = yolox_loss_reference(inputs, case["labels"], case["strides"], case["assigner"],
                               case["iou_loss"], case["use_l1"], rw, ow, cw, lw,
                               forced_matched=forced, return_info=info,
                               transcendentals=transcendentals,
                               cost_iou_eps=case.get("cost_iou_eps", 1e-8),
                               cost_penalty=case.get("cost_penalty"))
    terms, inf = (res if info else (res, None))
    backward_upstream(terms, case["upstream"])
    grads = [l.grad.detach().double() if l.grad is not None else torch.zeros_like(l, dtype=torch.float64)
             for l in leaves]
    # A 16-bit leaf's gradient: the reference's rounded with torch's .to(dtype).
    grads = [g if dt == torch.float32 else g.to(dt).double() for g, dt in zip(grads, leaf_dtypes(case))]
    return [float(t) for t in terms], grads, inf


def run_library(case, as_float32=False):
    """The library's loss terms and gradients (float64 tensors of the values
    it wrote, in each level's dtype); as_float32: every level in float32."""
    if RUNNER is not None:
        out = RUNNER.run(case, as_float32)
        return out["terms"], out["grads"]
    inputs, leaves = make_leaves(case, in_level_dtypes=not as_float32)
    rw, ow, cw, lw = case["weights"]
    terms = yoloxloss.yolox_loss(inputs, case["labels"], strides=case["strides"],
                                 assigner=case["assigner"], iou_loss=case["iou_loss"],
                                 use_l1=case["use_l1"], reg_weight=rw, obj_weight=ow,
                                 cls_weight=cw, l1_weight=lw, num_threads=case["num_threads"],
                                 **cost_keywords(case))
    backward_upstream(terms, case["upstream"])
    grads = [l.grad.detach().double() if l.grad is not None else torch.zeros_like(l, dtype=torch.float64)
             for l in leaves]
    return [float(t) for t in terms], grads


def library_assignment(case):
    if RUNNER is not None:
        out = RUNNER.run(case)
        return out["matched"], out["pred_iou"], out["dynamic_k"]
    outs = [tuple(t.detach() for t in x) if isinstance(x, tuple) else x.detach()
            for x in make_leaves(case, in_level_dtypes=True)[0]]
    if hasattr(yoloxloss, "yolox_assign_details"):
        d = yoloxloss.yolox_assign_details(outs, case["labels"], strides=case["strides"],
                                           assigner=case["assigner"],
                                           num_threads=case["num_threads"], **cost_keywords(case))
        return d.matched, d.pred_iou, d.dynamic_k
    m = yoloxloss.yolox_assign(outs, case["labels"], strides=case["strides"],
                               assigner=case["assigner"], num_threads=case["num_threads"])
    return m, None, None


def cost_keywords(case):
    """The drop-in's keywords for the case's cost constants (none when they
    are the defaults, so a drop-in without them still runs the other cases),
    or for its preset."""
    if case.get("preset") == "mmdet":
        return dict(preset="mmdet")
    if cost_constants_name(case) == "default":
        return {}
    return dict(cost_iou_eps=case["cost_iou_eps"], cost_penalty=case["cost_penalty"])


def isa_supported(lib_path, name):
    """yoloxloss_isa_supported() of the shared library for the ISA called name."""
    lib = ctypes.CDLL(lib_path)
    lib.yoloxloss_isa_name.restype = ctypes.c_char_p
    lib.yoloxloss_isa_name.argtypes = [ctypes.c_int]
    lib.yoloxloss_isa_supported.restype = ctypes.c_int
    lib.yoloxloss_isa_supported.argtypes = [ctypes.c_int]
    for value in range(16):
        if lib.yoloxloss_isa_name(value).decode() == name:
            return bool(lib.yoloxloss_isa_supported(value))
    return False


def preflight_error():
    """None if the library (drop-in or runner) runs a one-anchor, no-gt case,
    else why not: a wrong --runner command or an --isa this build or CPU
    lacks is reported once instead of failing every case."""
    case = dict(idx=-1, B=1, C=1, A=1, strides=(8.0,), shapes=[(1, 1)], layout="fused",
                outs=[torch.zeros(1, 6, 1, 1)], labels=torch.zeros(1, 1, 5), assigner="yolox",
                iou_loss="iou", use_l1=False, weights=(5.0, 1.0, 1.0, 1.0), num_threads=1,
                upstream=(1.0, 0.0, 0.0, 0.0, 0.0))
    try:
        library_assignment(case)
    except Exception as exc:  # any failure here is the message
        return str(exc)
    return None


def loss_errors(lib, ref):
    out = []
    for a, r in zip(lib, ref):
        if not (math.isfinite(a) and math.isfinite(r)):
            out.append(float("inf") if a != r else 0.0)
        else:
            out.append(abs(a - r) / max(abs(r), 0.1))
    return out


def dtype_step(r, dtype):
    """The distance from |r| to the next larger value of dtype, for each
    element of r (float64 tensor of values of dtype)."""
    fi = torch.finfo(dtype)
    _, e = torch.frexp(r.abs())  # |r| = m 2^e, m in [0.5, 1): its leading bit has weight 2^(e - 1)
    step = torch.ldexp(torch.full_like(r, fi.eps), (e - 1).to(torch.int32))
    return step.clamp_min(fi.tiny * fi.eps)  # subnormals (and 0) are fi.tiny * eps apart


def grad_error(lib, ref, dtypes=None):
    """The largest gradient difference over the largest |reference gradient|.
    dtypes: each leaf's dtype; a 16-bit leaf's element may also be one step
    of its dtype away (equal values, infinities included, differ by 0)."""
    if not dtypes or all(dt == torch.float32 for dt in dtypes):
        maxg = max([float(g.abs().max()) for g in ref if g.numel()] + [0.0])
        worst = max([float((a - r).abs().max()) for a, r in zip(lib, ref) if a.numel()] + [0.0])
        if not math.isfinite(worst):
            return float("inf"), maxg
        return worst / max(maxg, 1e-30), maxg
    # 16-bit gradients may overflow to infinity: the scale is the largest finite one
    maxg = max([float(g[torch.isfinite(g)].abs().max()) for g in ref if torch.isfinite(g).any()] + [0.0])
    worst = 0.0
    for a, r, dt in zip(lib, ref, dtypes):
        if not a.numel():
            continue
        if dt == torch.float32:
            worst = max(worst, float((a - r).abs().max()))
            continue
        diff = torch.where(a == r, torch.zeros_like(r), (a - r).abs())
        worst = max(worst, float((diff - dtype_step(r, dt)).clamp_min(0.0).max()))
    if not math.isfinite(worst):
        return float("inf"), maxg
    return worst / max(maxg, 1e-30), maxg


def cost_constants_name(case):
    eps, pen = case.get("cost_iou_eps", YOLOX_COST_EPS), case.get("cost_penalty") or 0.0
    if eps == YOLOX_COST_EPS and pen == 0.0:
        return "default"
    if eps == float(np.float32(1e-7)) and pen == 1e5:
        return "mmdet"
    return "random"


def check_exact_16_bit(case, lib_terms, lib_grads, stats, res):
    """The library's 16-bit run against its own float32 run on the same
    (up-converted) values: losses bitwise, gradients the float32 ones
    rounded with torch's .to(dtype)."""
    f_terms, f_grads = run_library(case, as_float32=True)
    stats["exact_16_bit_cases"] += 1
    bad = []
    for i, (a, b) in enumerate(zip(lib_terms, f_terms)):
        if not (a == b or (math.isnan(a) and math.isnan(b))):
            bad.append("%s %.9g vs float32 %.9g" % (TERM_NAMES[i], a, b))
    for i, (a, f, dt) in enumerate(zip(lib_grads, f_grads, leaf_dtypes(case))):
        want = f.to(torch.float32).to(dt).double()
        same = (a == want) | (torch.isnan(a) & torch.isnan(want))
        if not bool(same.all()):
            k = int((~same).reshape(-1).nonzero()[0])
            bad.append("leaf %d (%s): %d gradients are not the float32 ones rounded, first at %d: %.9g, "
                       "float32 %.9g" % (i, str(dt).replace("torch.", ""), int((~same).sum()), k,
                                         float(a.reshape(-1)[k]), float(f.reshape(-1)[k])))
    if bad:
        res["ok"] = False
        res["notes"].append("16-bit run differs from the library's float32 run on the same values: " + "; ".join(bad))
    else:
        stats["exact_16_bit_ok"] += 1


def describe(case):
    costs = "default" if case.get("preset") == "mmdet" else cost_constants_name(case)
    return ("B=%d C=%d L=%d A=%d img=%dx%d gts=%d %s/%s/%s %s %s %s%s%s" % (
        case["B"], case["C"], len(case["strides"]), case["A"], case["img"][1], case["img"][0],
        sum(case["counts"]), "mmdet" if case.get("preset") == "mmdet" else case["assigner"], case["iou_loss"],
        "l1" if case["use_l1"] else "nol1",
        case["layout"], case["pmode"], case["regime"],
        "" if costs == "default" else " cost:%g/%g" % (case["cost_iou_eps"], case["cost_penalty"]),
        "" if case.get("precision", "float32") == "float32" else " " + case["precision"]))


def check_case(case, stats, verbose=False):
    t0 = time.perf_counter()
    res = dict(ok=True, notes=[])
    lib_m, lib_piou, lib_k = library_assignment(case)
    ref_terms, ref_grads, info = run_reference(case, info=True)
    lib_terms, lib_grads = run_library(case)
    if is_16_bit(case):
        check_exact_16_bit(case, lib_terms, lib_grads, stats, res)
    B, A = case["B"], case["A"]
    ref_m = info["matched"]
    if tuple(lib_m.shape) != (B, A):
        res["ok"] = False
        res["notes"].append("assignment shape %s, expected %s" % (tuple(lib_m.shape), (B, A)))
        lib_m = torch.full((B, A), -2, dtype=torch.int64)
    tie_exact = tie_round = 0
    forced_needed = False
    k_checked = k_equal = 0
    for b in range(B):
        im = info["images"][b]
        agree = int((lib_m[b] == ref_m[b]).sum())
        stats["anchors_total"] += A
        stats["anchors_agree"] += agree
        stats["images"] += 1
        if im["num_gt"] and "dynamic_k" in im:
            ks = im["dynamic_k"]
            stats["k_hist"].update(int(k) for k in ks)
            sel = im.get("selected")
            if sel is not None and sel.numel():
                # anchors whose final gt did not select it (conflict resolved
                # to a third gt): exercises min over all gts
                fg_cols = (im["matched"][im["cand_idx"]] >= 0).nonzero()[:, 0]
                if fg_cols.numel():
                    g_of = im["matched"][im["cand_idx"][fg_cols]]
                    third = int((~sel[g_of, fg_cols]).sum())
                    stats["conflict_third_gt"] += third
                    stats["conflicts"] += int((sel[:, fg_cols].sum(0) > 1).sum())
            if im.get("cost") is not None and im["cost"].numel() == 0:
                stats["no_cand_images"] += 1
        other_k = None
        if lib_k is not None and im["num_gt"]:
            other_k = lib_k[b]
            k_checked += 1
            ref_k = im.get("dynamic_k")
            if ref_k is not None and torch.equal(other_k.to(torch.int64), ref_k.to(torch.int64)):
                k_equal += 1
                other_k_same = True
            else:
                other_k_same = False
        else:
            other_k_same = True
        if agree == A and other_k_same:
            continue
        ok, why = explain_assignment_difference(im, ref_m[b], lib_m[b], other_k, "exact")
        kind = "exact"
        if not ok:
            ok, why = explain_assignment_difference(im, ref_m[b], lib_m[b], other_k, "rounding")
            kind = "rounding"
        if not ok:
            res["ok"] = False
            res["notes"].append("image %d: assignment differs on %d anchors, NOT a tie: %s"
                                % (b, A - agree, why))
            stats["unexplained_images"] += 1
            continue
        if agree != A:
            forced_needed = True
        if kind == "exact":
            tie_exact += 1
            stats["tie_exact_images"] += 1
            stats["tie_exact_anchors"] += A - agree
        else:
            tie_round += 1
            stats["tie_round_images"] += 1
            stats["tie_round_anchors"] += A - agree
        if not other_k_same and other_k is not None:
            rk = im["dynamic_k"]
            for g in (rk != other_k.to(torch.int64)).nonzero()[:, 0].tolist():
                res["notes"].append("image %d gt %d: dynamic_k ref %d lib %d, sum of top IoUs "
                                    "(float64) %.9f" % (b, g, int(rk[g]), int(other_k[g]),
                                                        float(im["topk_iou_sum_f64"][g])))
            stats["k_diff_gts"] += int((rk != other_k.to(torch.int64)).sum())
        res["notes"].append("image %d: %s" % (b, why))
    if lib_piou is not None:
        same = (lib_m == ref_m) & (ref_m >= 0)
        if same.any():
            d = float((lib_piou.float()[same] - info["pred_iou"][same]).abs().max())
            stats["worst_pred_iou"] = max(stats["worst_pred_iou"], d)
            if d > 1e-6:
                res["notes"].append("pred_iou differs by %.3g on agreeing anchors" % d)
    stats["k_images_checked"] += k_checked
    stats["k_images_equal"] += k_equal

    forced = None
    if forced_needed and res["ok"]:
        forced = lib_m.clone()
        ref_terms, ref_grads, _ = run_reference(case, forced=forced)
        stats["forced_cases"] += 1
        res["notes"].append("losses compared with the reference re-run on the library's "
                            "assignment (%d exact-tie, %d rounding-tie images)" % (tie_exact, tie_round))
    if not res["ok"]:
        stats["loss_skipped"] += 1
        lerr = loss_errors(lib_terms, ref_terms)
        gerr, maxg = grad_error(lib_grads, ref_grads, leaf_dtypes(case))
        res.update(lerr=max(lerr), gerr=gerr, maxg=maxg, secs=time.perf_counter() - t0)
        return res

    lerr = loss_errors(lib_terms, ref_terms)
    gerr, maxg = grad_error(lib_grads, ref_grads, leaf_dtypes(case))
    loss_ok = max(lerr) <= LOSS_TOL
    grad_ok = gerr <= GRAD_TOL
    if not (loss_ok and grad_ok):
        # Second opinions on the same assignment: (1) the reference with
        # correctly rounded float32 exp/log (torch's are up to 1 ulp off,
        # which moves a decoded edge on or off a max/min kink, or flips
        # sign(reg - l1 target) between 0 and +-1); (2) float64.
        asg = forced if forced is not None else ref_m
        c_terms, c_grads, _ = run_reference(case, forced=asg, transcendentals="correct")
        m_terms, m_grads, _ = run_reference(case, forced=asg, transcendentals="libm")
        lerr_m = loss_errors(lib_terms, m_terms)
        gerr_m, _ = grad_error(lib_grads, m_grads, leaf_dtypes(case))
        f64_terms, f64_grads, _ = run_reference(case, dtype=torch.float64, forced=asg)
        lerr_c = loss_errors(lib_terms, c_terms)
        gerr_c, _ = grad_error(lib_grads, c_grads, leaf_dtypes(case))
        lerr64 = loss_errors(lib_terms, f64_terms)
        gerr64, _ = grad_error(lib_grads, f64_grads, leaf_dtypes(case))
        lerr_ref64 = loss_errors(ref_terms, f64_terms)
        res["notes"].append("second opinions: vs reference with libm expf/logf loss %.3g grad %.3g; "
                            "with correctly rounded exp/log loss %.3g grad %.3g; "
                            "vs float64 loss %.3g grad %.3g (f32 reference vs float64: loss %.3g)"
                            % (max(lerr_m), gerr_m, max(lerr_c), gerr_c, max(lerr64), gerr64,
                               max(lerr_ref64)))
        if not loss_ok:
            for i, (a, r, e) in enumerate(zip(lib_terms, ref_terms, lerr)):
                if e > LOSS_TOL:
                    res["notes"].append("%s: lib %.9g ref %.9g ref-correct-exp %.9g f64 %.9g (rel %.3g)"
                                        % (TERM_NAMES[i], a, r, c_terms[i], f64_terms[i], e))
            if max(lerr_m) <= LOSS_TOL:
                loss_ok = True
                stats["loss_ok_vs_libm"] += 1
                res["via"] = res.get("via", "") + " (loss: libm exp/log)"
            elif max(lerr_c) <= LOSS_TOL:
                loss_ok = True
                stats["loss_ok_vs_correct"] += 1
                res["via"] = res.get("via", "") + " (loss: rounded exp/log)"
            elif max(lerr64) <= LOSS_TOL:
                loss_ok = True
                stats["loss_ok_vs_f64"] += 1
                res["via"] = res.get("via", "") + " (loss: float64)"
        if not grad_ok:
            worst_leaf = int(np.argmax([float((a - r).abs().max()) for a, r in zip(lib_grads, ref_grads)]))
            a, r = lib_grads[worst_leaf], ref_grads[worst_leaf]
            flat = int((a - r).abs().reshape(-1).argmax())
            idx = np.unravel_index(flat, tuple(a.shape))
            res["notes"].append("worst grad: leaf %d index %s lib %.9g ref %.9g ref-libm %.9g "
                                "ref-correct-exp %.9g f64 %.9g"
                                % (worst_leaf, tuple(int(i) for i in idx), float(a.reshape(-1)[flat]),
                                   float(r.reshape(-1)[flat]), float(m_grads[worst_leaf].reshape(-1)[flat]),
                                   float(c_grads[worst_leaf].reshape(-1)[flat]),
                                   float(f64_grads[worst_leaf].reshape(-1)[flat])))
            if gerr_m <= GRAD_TOL:
                grad_ok = True
                stats["grad_ok_vs_libm"] += 1
                res["via"] = res.get("via", "") + " (grad: libm exp/log)"
            elif gerr_c <= GRAD_TOL:
                grad_ok = True
                stats["grad_ok_vs_correct"] += 1
                res["via"] = res.get("via", "") + " (grad: rounded exp/log)"
            elif gerr64 <= GRAD_TOL:
                grad_ok = True
                stats["grad_ok_vs_f64"] += 1
                res["via"] = res.get("via", "") + " (grad: float64)"
        res["lerr_eff"] = min(max(lerr), max(lerr_m), max(lerr_c), max(lerr64))
        res["gerr_eff"] = min(gerr, gerr_m, gerr_c, gerr64)
        if not (loss_ok and grad_ok):
            res["ok"] = False
    res.update(lerr=max(lerr), gerr=gerr, maxg=maxg, secs=time.perf_counter() - t0,
               tie_exact=tie_exact, tie_round=tie_round)
    return res


# --------------------------------------------------------------------------

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="20 smaller cases")
    ap.add_argument("--case", type=int, action="append", help="run only these case ids")
    ap.add_argument("-v", "--verbose", action="store_true")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: all cores)")
    ap.add_argument("--isa", metavar="NAME",
                    help="kernels the library uses (sets $YOLOXLOSS_ISA: scalar, avx2, avx512, neon)")
    ap.add_argument("--runner", metavar="CMD",
                    help="run each case with `CMD CASE_FILE OUT_FILE` (run_case) instead of the drop-in")
    ap.add_argument("--preset", choices=("yolox", "mmdet"), default="yolox",
                    help="mmdet: the library's mmdet preset against MMDetection's computation "
                         "(mmdet_reference.py) on the same cases, box corners on a 1/64 px lattice")
    ap.add_argument("--lib-threads", type=int, metavar="N",
                    help="the library's num_threads for every case, instead of the case's own "
                         "(1 under qemu-user, where libgomp hangs with more)")
    args = ap.parse_args(argv)
    if args.isa:
        os.environ["YOLOXLOSS_ISA"] = args.isa  # read by the library when it creates a context
    if args.lib_threads is not None and args.lib_threads < 0:
        ap.error("--lib-threads must be >= 0")
    torch.set_num_threads(args.threads or os.cpu_count() or 1)
    ncases = 20 if args.quick and args.cases == 200 else args.cases
    ids = args.case if args.case else list(range(ncases))

    global yoloxloss, RUNNER
    if args.runner:
        RUNNER = Runner(args.runner)
        print("library: through the runner %s" % args.runner)
    else:
        import yoloxloss as dropin
        yoloxloss = dropin
        pkg_dir = os.path.dirname(os.path.abspath(yoloxloss.__file__))
        repo_python = repo_paths.PYTHON_DIR
        print("yoloxloss from %s" % pkg_dir)
        if not pkg_dir.startswith(repo_python + os.sep):
            print("error: yoloxloss was not imported from this repository (%s)" % repo_python)
            return 2
        if hasattr(yoloxloss, "library_path"):
            print("library %s" % yoloxloss.library_path())
    if args.isa:
        if not RUNNER and not isa_supported(yoloxloss.library_path(), args.isa):
            # ctest's SKIP_RETURN_CODE: reported as "Skipped", never as passed
            print("NOT TESTED: this build or this CPU has no %s kernels" % args.isa)
            return 77
        print("instruction set: %s ($YOLOXLOSS_ISA)" % args.isa)
    if args.lib_threads is not None:
        print("library threads: %d for every case" % args.lib_threads)
    preflight = preflight_error()
    if preflight:
        print("error: the library cannot run a trivial case: %s" % preflight)
        return 2
    print("torch %s, %d threads; seed %d, %d cases%s" % (torch.__version__, torch.get_num_threads(),
                                                         args.seed, len(ids), " (quick)" if args.quick else ""))
    stats = collections.Counter()
    stats["k_hist"] = collections.Counter()
    stats["worst_pred_iou"] = 0.0
    cover = collections.defaultdict(collections.Counter)
    n_pass = n_fail = 0
    worst_l = worst_g = worst_l_eff = worst_g_eff = 0.0
    failed = []
    per_loss = {}  # iou_loss -> [passed, failed, worst loss error, worst gradient error]
    ref_name = "MMDetection" if args.preset == "mmdet" else "YOLOX"
    t_start = time.perf_counter()
    shapes_seen = dict(B=[], C=[], gts=[])
    for i in ids:
        case = make_case(args.seed, i, args.quick)
        if args.preset == "mmdet":
            case = to_mmdet_case(case)
        if args.lib_threads is not None:
            case["num_threads"] = args.lib_threads
        for key in ("regime", "assigner", "iou_loss", "layout", "pmode"):
            cover[key][case[key]] += 1
        cover["l1"]["on" if case["use_l1"] else "off"] += 1
        cover["precision"][case.get("precision", "float32")] += 1
        cover["upstream"]["total" if case["upstream"] == (1.0, 0.0, 0.0, 0.0, 0.0) else "random mix"] += 1
        cover["strides"][str(tuple(case["strides"]))] += 1
        cover["weights"]["default" if case["weights"] == (5.0, 1.0, 1.0, 1.0) else "random"] += 1
        cover["box kinds"].update(case["kinds"])
        cover["img"]["%dx%d" % (case["img"][1], case["img"][0])] += 1
        cover["costs"][cost_constants_name(case)] += 1
        shapes_seen["B"].append(case["B"])
        shapes_seen["C"].append(case["C"])
        shapes_seen["gts"].extend(case["counts"])
        stats["empty_images"] += sum(1 for n in case["counts"] if n == 0)
        try:
            res = check_case(case, stats, args.verbose)
        except Exception as exc:  # a crash of either side is a failure of the case
            import traceback
            traceback.print_exc()
            res = dict(ok=False, notes=["exception: %r" % (exc,)], lerr=float("nan"),
                       gerr=float("nan"), maxg=float("nan"), secs=0.0)
        if res["ok"]:
            n_pass += 1
        else:
            n_fail += 1
            failed.append(i)
        if math.isfinite(res["lerr"]):
            worst_l = max(worst_l, res["lerr"])
        if math.isfinite(res["gerr"]):
            worst_g = max(worst_g, res["gerr"])
        if res["ok"]:
            worst_l_eff = max(worst_l_eff, res.get("lerr_eff", res["lerr"]))
            worst_g_eff = max(worst_g_eff, res.get("gerr_eff", res["gerr"]))
        per = per_loss.setdefault(case["iou_loss"], [0, 0, 0.0, 0.0])
        per[0 if res["ok"] else 1] += 1
        if math.isfinite(res["lerr"]):
            per[2] = max(per[2], res["lerr"])
        if math.isfinite(res["gerr"]):
            per[3] = max(per[3], res["gerr"])
        print("case %3d: %-78s loss %.2e grad %.2e/%.2e %5.2fs %s" % (
            i, describe(case), res["lerr"], res["gerr"] * res["maxg"] if math.isfinite(res["gerr"]) else res["gerr"],
            res["maxg"], res["secs"], ("ok" + res.get("via", "")) if res["ok"] else "FAIL"))
        for note in res["notes"]:
            print("          " + note)
        sys.stdout.flush()
    elapsed = time.perf_counter() - t_start

    print("\n=== coverage ===")
    for key in ("regime", "assigner", "iou_loss", "l1", "layout", "pmode", "strides", "weights", "upstream",
                "box kinds", "img", "costs", "precision"):
        print("%-10s %s" % (key + ":", ", ".join("%s %d" % kv for kv in sorted(cover[key].items()))))
    gts = shapes_seen["gts"]
    print("images per case: %d..%d; classes: %d..%d; boxes per image: %d..%d (%d empty images)" % (
        min(shapes_seen["B"]), max(shapes_seen["B"]), min(shapes_seen["C"]), max(shapes_seen["C"]),
        min(gts), max(gts), stats["empty_images"]))
    kh = stats["k_hist"]
    print("dynamic_k histogram: %s" % ", ".join("%d:%d" % kv for kv in sorted(kh.items())))
    print("anchors taken by several gts: %d (of which given to a gt that had not selected them: %d); "
          "images with no candidate anchor: %d" % (stats["conflicts"], stats["conflict_third_gt"],
                                                   stats["no_cand_images"]))
    print("\n=== results ===")
    print("cases run: %d in %.1f s" % (len(ids), elapsed))
    print("assignment: %d / %d anchors agree (%.6f%%); images with differences explained by exact "
          "ties: %d (%d anchors), by float32-rounding ties: %d (%d anchors); unexplained: %d images" % (
              stats["anchors_agree"], stats["anchors_total"],
              100.0 * stats["anchors_agree"] / max(stats["anchors_total"], 1),
              stats["tie_exact_images"], stats["tie_exact_anchors"], stats["tie_round_images"],
              stats["tie_round_anchors"], stats["unexplained_images"]))
    if stats["k_images_checked"]:
        print("dynamic_k: identical in %d / %d images with gts (%d gts differ; in passing cases "
              "only where the top-IoU sum is within float32 rounding of an integer)" % (
                  stats["k_images_equal"], stats["k_images_checked"], stats["k_diff_gts"]))
    print("pred_iou on agreeing fg anchors: worst |lib - ref| = %.3g" % stats["worst_pred_iou"])
    print("float16/bfloat16 cases equal to the library's float32 run on the same values (losses bitwise, "
          "gradients rounded with torch's .to): %d / %d" % (stats["exact_16_bit_ok"], stats["exact_16_bit_cases"]))
    print("cases whose losses were compared on the library's assignment (ties): %d; "
          "loss comparison skipped (assignment failure): %d" % (stats["forced_cases"], stats["loss_skipped"]))
    print("worst loss error (rel, scale max(|ref|, 0.1)) vs the float32 %s reference: %.3g "
          "(tol %.0e); in passing cases after the second opinions below: %.3g"
          % (ref_name, worst_l, LOSS_TOL, worst_l_eff))
    print("worst gradient error / max |grad| vs the float32 %s reference: %.3g (tol %.0e); "
          "in passing cases after the second opinions below: %.3g" % (ref_name, worst_g, GRAD_TOL, worst_g_eff))
    print("cases passing only against the reference evaluated with libm's expf/logf (torch's "
          "float32 exp/log differ by 1 ulp at a kink): losses %d, gradients %d; with correctly "
          "rounded exp/log: losses %d, gradients %d; only against float64: losses %d, gradients %d"
          % (stats["loss_ok_vs_libm"], stats["grad_ok_vs_libm"], stats["loss_ok_vs_correct"],
             stats["grad_ok_vs_correct"], stats["loss_ok_vs_f64"], stats["grad_ok_vs_f64"]))
    print("per box loss, against the float32 reference (before second opinions): worst loss "
          "error (rel), worst gradient error / max |grad|:")
    for name in sorted(per_loss):
        ok, bad, wl, wg = per_loss[name]
        print("  %-10s %3d cases (%d failed): loss %.3g, gradient %.3g" % (name, ok + bad, bad, wl, wg))
    if failed:
        print("failed cases: %s" % " ".join(str(i) for i in failed))
    if RUNNER is not None:
        RUNNER.close()
    print("%d passed, %d failed" % (n_pass, n_fail))
    return 0 if n_fail == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
