#!/usr/bin/python3
"""Self-tests of the PyTorch reference (ctest reference_selftest).

    /usr/bin/python3 tests/reference/reference_selftest.py

yolox_reference.py is what the library is checked against, so it is checked
itself, without the library, in four ways:
  - against slow_loop_loss, a second implementation written as per-anchor
    Python loops in float64 (float32 only where YOLOX's float32 decides a
    branch), on tiny random cases of both assigners and both IoU losses;
    the assignments must agree up to ties (tie_analysis) and every loss term
    to 2e-5 relative;
  - its autograd gradients against float64 central finite differences, on a
    fixed assignment, for the fused and the split head layouts;
  - tie handling: a lowest-index tie break of constant predictions must be
    explained by tie_analysis.explain_assignment_difference, a made-up
    assignment must not;
  - an image whose gt has no candidate anchor gets no foreground.
Exit code 0 iff all pass; the last line is "self-test passed".
"""

import math
import sys

import torch

from tie_analysis import explain_assignment_difference
from yolox_reference import (ASSIGNERS, IOU_LOSSES, _iou_loss, count_labels, elementwise_iou,
                              flatten_outputs, yolox_loss_reference)


def slow_loop_loss(outputs, labels, strides, assigner, iou_loss, use_l1, weights):
    """Per-anchor Python loops (float64 math, float32 rounding only where
    YOLOX's float32 decides a branch).  Returns (terms [6 floats], matched
    list per image, dynamic_k per image, pair costs dict)."""
    import numpy as np
    f32 = np.float32
    cfg = ASSIGNERS[assigner]
    preds, shapes = flatten_outputs([tuple(t.detach() for t in l) if isinstance(l, (tuple, list))
                                     else l.detach() for l in outputs])
    P = preds.double().numpy()
    P32 = preds.float().numpy()
    B, A, ch = P.shape
    C = ch - 5
    anchors = []
    for (h, w), s in zip(shapes, strides):
        for i in range(h):
            for j in range(w):
                anchors.append((j, i, float(s)))
    lab = labels.float().numpy()
    matched_all, ks_all, costs_all = [], [], []

    def sig(x):
        return 1.0 / (1.0 + math.exp(-x))

    def dec32(b, a):
        j, i, s = anchors[a]
        t = P32[b, a]
        return (f32((t[0] + f32(j)) * f32(s)), f32((t[1] + f32(i)) * f32(s)),
                f32(f32(np.exp(t[2])) * f32(s)), f32(f32(np.exp(t[3])) * f32(s)))

    def iou32(g, pbx):
        # IoU in float32, ops as in bboxes_iou
        tl = [max(f32(g[k] - g[k + 2] / f32(2)), f32(pbx[k] - pbx[k + 2] / f32(2))) for k in (0, 1)]
        br = [min(f32(g[k] + g[k + 2] / f32(2)), f32(pbx[k] + pbx[k + 2] / f32(2))) for k in (0, 1)]
        if not (tl[0] < br[0] and tl[1] < br[1]):
            inter = f32(0)
        else:
            inter = f32(f32(br[0] - tl[0]) * f32(br[1] - tl[1]))
        return f32(inter / f32(f32(f32(g[2] * g[3]) + f32(pbx[2] * pbx[3])) - inter))

    n_fg = 0
    n_gt_tot = 0
    sums = dict(iou=0.0, obj=0.0, cls=0.0, l1=0.0)
    for b in range(B):
        rows = [r for r in lab[b]]
        n = int(sum(1 for r in rows if float(r.sum()) > 0))
        n_gt_tot += n
        gts = [tuple(f32(v) for v in rows[g][1:5]) for g in range(n)]
        gcl = [int(rows[g][0]) for g in range(n)]
        matched = [-1] * A
        ks = []
        cands, geo = [], {}
        for a in range(A):
            j, i, s = anchors[a]
            if cfg["legacy"]:
                xc, yc = f32(f32(f32(j) * f32(s)) + f32(0.5 * s)), f32(f32(f32(i) * f32(s)) + f32(0.5 * s))
            else:
                xc, yc = f32(f32(j + 0.5) * f32(s)), f32(f32(i + 0.5) * f32(s))
            any_in = False
            for g, gb in enumerate(gts):
                d = f32(f32(s) * f32(cfg["radius"]))
                inc = (xc - (gb[0] - d) > 0 and (gb[0] + d) - xc > 0 and
                       yc - (gb[1] - d) > 0 and (gb[1] + d) - yc > 0)
                hw, hh = f32(0.5) * gb[2], f32(0.5) * gb[3]
                inb = (xc - (gb[0] - hw) > 0 and (gb[0] + hw) - xc > 0 and
                       yc - (gb[1] - hh) > 0 and (gb[1] + hh) - yc > 0)
                if cfg["legacy"]:
                    any_in = any_in or inc or inb
                    geo[(g, a)] = inc and inb
                else:
                    any_in = any_in or inc
                    geo[(g, a)] = inc
            if any_in:
                cands.append(a)
        cost = {}
        iou = {}
        if n and cands:
            for g, gb in enumerate(gts):
                for a in cands:
                    pbx = dec32(b, a)
                    v = iou32(gb, pbx)
                    iou[(g, a)] = v
                    po = sig(float(P32[b, a, 4]))
                    c = 0.0
                    for k in range(C):
                        p = math.sqrt(sig(float(P32[b, a, 5 + k])) * po)
                        if k == gcl[g]:
                            c += -max(math.log(p), -100.0) if p > 0 else 100.0
                        else:
                            c += -max(math.log(1 - p), -100.0) if p < 1 else 100.0
                    nopen = f32(c + 3.0 * -math.log(float(v) + 1e-8))
                    cost[(g, a)] = float(f32(nopen + f32(0.0 if geo[(g, a)] else cfg["penalty"])))
            taken = {a: [] for a in cands}
            for g in range(n):
                top = sorted((float(iou[(g, a)]) for a in cands), reverse=True)[:min(10, len(cands))]
                k = max(1, int(np.float32(sum(np.float32(t) for t in top))))
                ks.append(k)
                order = sorted(cands, key=lambda a: (cost[(g, a)], a))
                for a in order[:k]:
                    taken[a].append(g)
            for a in cands:
                if len(taken[a]) == 1:
                    matched[a] = taken[a][0]
                elif len(taken[a]) > 1:
                    matched[a] = min(range(n), key=lambda g: (cost[(g, a)], g))
        else:
            ks = [0] * n
        matched_all.append(matched)
        ks_all.append(ks)
        costs_all.append(cost)
        for a in range(A):
            t = P[b, a]
            g = matched[a]
            x = t[4]
            tobj = 1.0 if g >= 0 else 0.0
            sums["obj"] += max(x, 0) - x * tobj + math.log1p(math.exp(-abs(x)))
            if g < 0:
                continue
            n_fg += 1
            j, i, s = anchors[a]
            px, py = (t[0] + j) * s, (t[1] + i) * s
            pw, ph = math.exp(t[2]) * s, math.exp(t[3]) * s
            gx, gy, gw, gh = (float(v) for v in gts[g])
            tlx, tly = max(px - pw / 2, gx - gw / 2), max(py - ph / 2, gy - gh / 2)
            brx, bry = min(px + pw / 2, gx + gw / 2), min(py + ph / 2, gy + gh / 2)
            inter = (brx - tlx) * (bry - tly) if (tlx < brx and tly < bry) else 0.0
            union = pw * ph + gw * gh - inter
            io = inter / (union + 1e-16)
            if iou_loss == "iou":
                sums["iou"] += 1 - io ** 2
            else:
                cw = max(px + pw / 2, gx + gw / 2) - min(px - pw / 2, gx - gw / 2)
                chh = max(py + ph / 2, gy + gh / 2) - min(py - ph / 2, gy - gh / 2)
                ac = cw * chh
                giou = io - (ac - union) / max(ac, 1e-16)
                sums["iou"] += 1 - min(1.0, max(-1.0, giou))
            piou = float(iou[(g, a)])
            for k in range(C):
                x = t[5 + k]
                tt = piou if k == gcl[g] else 0.0
                sums["cls"] += max(x, 0) - x * tt + math.log1p(math.exp(-abs(x)))
            if use_l1:
                tg = (gx / s - j, gy / s - i, math.log(gw / s + 1e-8), math.log(gh / s + 1e-8))
                sums["l1"] += sum(abs(t[k] - tg[k]) for k in range(4))
    N = float(max(n_fg, 1))
    rw, ow, cw, lw = weights
    terms = [rw * sums["iou"] / N, ow * sums["obj"] / N, cw * sums["cls"] / N,
             (lw * sums["l1"] / N) if use_l1 else 0.0]
    total = sum(terms)
    return [total] + terms + [N / max(n_gt_tot, 1)], matched_all, ks_all, costs_all


def tiny_case(gen, B, C, shapes, strides, n_max, trained, dtype=torch.float32):
    """Random head outputs ([B, 5+C, H, W] per level, raw logits pulled
    towards background) and up to n_max random gt boxes per image; with
    trained, the anchors near each gt predict it, as a half-trained head
    does, so that IoUs and dynamic_k are not all tiny."""
    outs = []
    for (h, w) in shapes:
        t = torch.randn(B, 5 + C, h, w, generator=gen, dtype=torch.float64) * 0.5
        t[:, 4:] -= 2.0
        outs.append(t.to(dtype))
    img_h = shapes[0][0] * strides[0]
    img_w = shapes[0][1] * strides[0]
    labels = torch.zeros(B, n_max + 1, 5)
    for b in range(B):
        n = int(torch.randint(0, n_max + 1, (1,), generator=gen))
        for g in range(n):
            cx = float(torch.rand(1, generator=gen)) * img_w
            cy = float(torch.rand(1, generator=gen)) * img_h
            w = 2 + float(torch.rand(1, generator=gen)) * img_w * 0.7
            h = 2 + float(torch.rand(1, generator=gen)) * img_h * 0.7
            c = int(torch.randint(0, C, (1,), generator=gen))
            labels[b, g] = torch.tensor([c, cx, cy, w, h])
            if trained:
                for lvl, ((hh, ww), s) in enumerate(zip(shapes, strides)):
                    for i in range(hh):
                        for j in range(ww):
                            if abs((j + 0.5) * s - cx) < 2 * s and abs((i + 0.5) * s - cy) < 2 * s:
                                o = outs[lvl]
                                o[b, 0, i, j] = cx / s - j + 0.05 * float(torch.randn(1, generator=gen))
                                o[b, 1, i, j] = cy / s - i + 0.05 * float(torch.randn(1, generator=gen))
                                o[b, 2, i, j] = math.log(w / s) + 0.1 * float(torch.randn(1, generator=gen))
                                o[b, 3, i, j] = math.log(h / s) + 0.1 * float(torch.randn(1, generator=gen))
                                o[b, 4, i, j] = 2.0
                                o[b, 5 + c, i, j] = 2.0
    return outs, labels



def check_against_slow_loop(gen):
    """24 tiny cases: the reference and slow_loop_loss agree on the
    assignment (up to ties) and on every loss term."""
    worst = 0.0
    n_tie = 0
    n_cases = 0
    cases = []
    for assigner in ("yolox", "yolox-legacy"):
        for iou_loss in ("iou", "giou"):
            for trained in (False, True):
                for rep in range(3):
                    cases.append((assigner, iou_loss, trained, rep))
    for (assigner, iou_loss, trained, rep) in cases:
        B = 2
        C = 3 + rep
        strides = (8, 16) if rep != 2 else (8, 16, 32)
        shapes = [(6, 5), (3, 3)] if rep != 2 else [(8, 7), (4, 4), (2, 2)]
        outs, labels = tiny_case(gen, B, C, shapes, strides, 4 + 2 * rep, trained)
        use_l1 = rep % 2 == 0
        weights = (5.0, 1.0, 1.0, 1.0) if rep != 1 else (2.0, 0.7, 1.3, 0.5)
        ref, info = yolox_loss_reference(outs, labels, strides, assigner, iou_loss, use_l1,
                                         *weights, return_info=True)
        slow, s_matched, s_ks, _ = slow_loop_loss(outs, labels, strides, assigner, iou_loss,
                                                  use_l1, weights)
        forced = None
        for b in range(B):
            im = info["images"][b]
            sm = torch.tensor(s_matched[b])
            if not torch.equal(sm, im["matched"]):
                ok, why = explain_assignment_difference(im, im["matched"], sm,
                                                        other_k=s_ks[b] if s_ks[b] else None,
                                                        tol_mode="rounding")
                if not ok:
                    raise AssertionError("slow vs reference assignment (%s): %s" % (assigner, why))
                n_tie += 1
                forced = [torch.tensor(s_matched[bb]) for bb in range(B)]
            elif im["num_gt"] and "dynamic_k" in im:
                assert [int(k) for k in im["dynamic_k"]] == list(s_ks[b]), (im["dynamic_k"], s_ks[b])
        if forced is not None:
            ref = yolox_loss_reference(outs, labels, strides, assigner, iou_loss, use_l1,
                                       *weights, forced_matched=forced)
        for k in range(6):
            r, s = float(ref[k]), slow[k]
            err = abs(r - s) / max(abs(s), 1e-3)
            worst = max(worst, err)
            assert err < 2e-5, ("term", k, r, s, assigner, iou_loss, trained, rep)
        n_cases += 1
    print("slow per-anchor loop: %d cases, worst rel loss err %.3g, %d images with tie differences"
          % (n_cases, worst, n_tie))


def check_finite_differences(gen):
    """Autograd gradients against float64 finite differences, with the
    assignment held fixed."""
    for assigner, iou_loss, layout in (("yolox", "iou", "fused"), ("yolox-legacy", "giou", "split"),
                                       ("yolox", "giou", "split")):
        while True:
            outs, labels = tiny_case(gen, 2, 3, [(5, 4), (3, 2)], (8, 16), 3, True, torch.float64)
            if int(count_labels(labels).min()) > 0:
                break
        if layout == "split":
            outs = [(o[:, :4].clone(), o[:, 4:5].clone(), o[:, 5:].clone()) for o in outs]
            leaves = [t for trip in outs for t in trip]
        else:
            leaves = outs
        for t in leaves:
            t.requires_grad_(True)
        _, info = yolox_loss_reference(outs, labels, (8, 16), assigner, iou_loss, True,
                                       return_info=True)
        forced = info["matched"]
        fpiou = info["pred_iou"]
        assert info["num_fg"] > 0
        total = yolox_loss_reference(outs, labels, (8, 16), assigner, iou_loss, True,
                                     forced_matched=forced, forced_pred_iou=fpiou)[0]
        grads = torch.autograd.grad(total, leaves)
        maxg = max(float(g.abs().max()) for g in grads)
        worst_fd = 0.0
        eps = 1e-6
        with torch.no_grad():
            for t, g in zip(leaves, grads):
                flat = t.view(-1)
                for idx in range(flat.numel()):
                    old = float(flat[idx])
                    flat[idx] = old + eps
                    fp = float(yolox_loss_reference(outs, labels, (8, 16), assigner, iou_loss, True,
                                                    forced_matched=forced,
                                                    forced_pred_iou=fpiou)[0])
                    flat[idx] = old - eps
                    fm = float(yolox_loss_reference(outs, labels, (8, 16), assigner, iou_loss, True,
                                                    forced_matched=forced,
                                                    forced_pred_iou=fpiou)[0])
                    flat[idx] = old
                    fd = (fp - fm) / (2 * eps)
                    worst_fd = max(worst_fd, abs(fd - float(g.reshape(-1)[idx])) / maxg)
        # |x - t| has a kink at 0 and IoU terms have max/min kinks; random
        # data keeps away from them, so FD should agree closely
        assert worst_fd < 1e-6, (assigner, iou_loss, worst_fd)
        print("finite differences (%s, %s, %s): worst |fd - autograd| / max|grad| = %.3g"
              % (assigner, iou_loss, layout, worst_fd))


def check_box_losses_finite_differences():
    """Every box loss of _iou_loss: autograd in float64 against central
    differences, on random overlapping, disjoint and nested pairs away from
    the kinks (corner ties, zero centre offsets or size differences); CIoU
    where IoU <= 0.5, as its alpha (held constant by autograd) is 0 there."""
    gen = torch.Generator().manual_seed(4321)
    n = 400
    gt = torch.cat([torch.rand(n, 2, generator=gen, dtype=torch.float64) * 200,
                    5 + torch.rand(n, 2, generator=gen, dtype=torch.float64) * 60], 1)
    shift = (torch.rand(n, 2, generator=gen, dtype=torch.float64) - 0.5) * 1.5 * gt[:, 2:]
    scale = 0.3 + torch.rand(n, 2, generator=gen, dtype=torch.float64) * 2.5
    pred = torch.cat([gt[:, :2] + shift, gt[:, 2:] * scale], 1)
    p1, p2 = pred[:, :2] - pred[:, 2:] / 2, pred[:, :2] + pred[:, 2:] / 2
    g1, g2 = gt[:, :2] - gt[:, 2:] / 2, gt[:, :2] + gt[:, 2:] / 2
    gaps = torch.cat([(p1 - g1).abs(), (p2 - g2).abs(), (p1 - g2).abs(), (p2 - g1).abs(),
                      (pred[:, :2] - gt[:, :2]).abs(), (pred[:, 2:] - gt[:, 2:]).abs()], 1)
    keep = gaps.min(1).values > 0.05
    pred, gt = pred[keep], gt[keep]
    for loss_type in IOU_LOSSES:
        x = pred.clone().requires_grad_(True)
        with torch.no_grad():
            iou = elementwise_iou(gt, pred)
        rows = (iou <= 0.49) if loss_type == "ciou" else torch.ones_like(iou, dtype=torch.bool)
        loss = _iou_loss(x, gt, loss_type)
        grad, = torch.autograd.grad(loss[rows].sum(), x)
        worst, h = 0.0, 1e-6
        with torch.no_grad():
            for k in range(4):
                up, down = pred.clone(), pred.clone()
                up[:, k] += h
                down[:, k] -= h
                fd = (_iou_loss(up, gt, loss_type) - _iou_loss(down, gt, loss_type)) / (2 * h)
                err = (fd - grad[:, k])[rows].abs() / (grad[rows].abs().max(1).values + 1e-12)
                worst = max(worst, float(err.max()))
        assert worst < 1e-5, (loss_type, worst)
        print("box loss %-10s: %d pairs, worst |fd - autograd| / max|grad| = %.3g"
              % (loss_type, int(rows.sum()), worst))


def check_mmdet_reference_agrees_with_yolox_reference(gen_seed=777):
    """mmdet_reference.py, written from MMDetection's code, and this
    project's YOLOX reference with the legacy rule and MMDetection's cost
    constants compute the same thing in a different arithmetic: on boxes
    whose corners are exact, their assignments agree (or differ by an exact
    tie) and their losses agree to float32 rounding."""
    from mmdet_reference import mmdet_loss_reference
    from tie_analysis import explain_assignment_difference as explain
    gen = torch.Generator().manual_seed(gen_seed)
    worst = 0.0
    for rep in range(6):
        outs, labels = tiny_case(gen, 2, 3, [(5, 4), (3, 2)], (8, 16), 3, rep % 2 == 1)
        used = labels.sum(-1) > 0
        labels[..., 1:] = torch.round(labels[..., 1:] * 8) / 8  # corners on the 1/16 px lattice
        labels[..., 3:] = torch.where(used[..., None], labels[..., 3:].clamp(min=0.125), labels[..., 3:])
        m_terms, m_info = mmdet_loss_reference(outs, labels, (8, 16), True, return_info=True)
        y_terms, y_info = yolox_loss_reference(outs, labels, (8, 16), "yolox-legacy", "iou", True,
                                               return_info=True, cost_iou_eps=1e-7, cost_penalty=1e5)
        for b, im in enumerate(y_info["images"]):
            ok, why = explain(im, y_info["matched"][b], m_info["matched"][b], None, "rounding")
            assert ok, (rep, b, why)
        if torch.equal(y_info["matched"], m_info["matched"]):
            for m, y in zip(m_terms, y_terms):
                err = abs(float(m) - float(y)) / max(abs(float(y)), 0.1)
                worst = max(worst, err)
                assert err < 1e-5, (rep, float(m), float(y))
    print("mmdet reference vs YOLOX reference (legacy rule, its constants): assignments agree "
          "up to ties, worst loss difference %.3g" % worst)


def check_tie_explanation():
    """Exact ties: constant predictions make many equal costs; an assignment
    that breaks them by lowest anchor index must be explained, a made-up
    one must not."""
    C = 4
    shapes = [(8, 8), (4, 4)]
    outs = [torch.zeros(1, 5 + C, h, w) for h, w in shapes]
    for o in outs:
        o[:, 4:] = -4.59512
    labels = torch.tensor([[[1, 30.0, 30.0, 20.0, 12.0], [2, 34.0, 30.0, 20.0, 12.0],
                            [0, 31.0, 33.0, 50.0, 40.0]]])
    for assigner in ("yolox", "yolox-legacy"):
        _, info = yolox_loss_reference(outs, labels, (8, 16), assigner, return_info=True)
        im = info["images"][0]
        # deterministic lowest-index tie break on the same costs
        cost = im["cost"].double()
        G, n = cost.shape
        sel = torch.zeros_like(cost, dtype=torch.bool)
        for g in range(G):
            order = sorted(range(n), key=lambda c: (float(cost[g, c]), c))
            sel[g, order[:int(im["dynamic_k"][g])]] = True
        det = torch.full_like(im["matched"], -1)
        for c in range(n):
            takers = sel[:, c].nonzero()[:, 0].tolist()
            if len(takers) == 1:
                det[im["cand_idx"][c]] = takers[0]
            elif takers:
                det[im["cand_idx"][c]] = min(range(G), key=lambda g: (float(cost[g, c]), g))
        ok, why = explain_assignment_difference(im, im["matched"], det, tol_mode="exact")
        assert ok, why
        nd = int((det != im["matched"]).sum())
        # a wrong assignment: move one fg anchor to a gt with clearly higher cost
        wrong = im["matched"].clone()
        fgs = (wrong >= 0).nonzero()[:, 0]
        a = int(fgs[0])
        col = int((im["cand_idx"] == a).nonzero()[0, 0])
        gbad = int(cost[:, col].argmax())
        wrong[a] = gbad
        ok2, why2 = explain_assignment_difference(im, im["matched"], wrong, tol_mode="rounding")
        assert not ok2, "made-up assignment was accepted"
        # dropping a must-take anchor must fail too
        wrong = im["matched"].clone()
        wrong[a] = -1
        ok3, _ = explain_assignment_difference(im, im["matched"], wrong, tol_mode="rounding")
        must_take = float(cost[int(im["matched"][a]), col]) < float(
            torch.sort(cost[int(im["matched"][a])]).values[int(im["dynamic_k"][int(im["matched"][a])]) - 1])
        assert (not ok3) or (not must_take)
        print("ties (%s): lowest-index tie break differs on %d anchors, explained: %s; "
              "wrong assignment rejected: %s" % (assigner, nd, why, why2))


def check_no_candidate_image():
    """No candidate anchors (the gt lies far outside the grid): no
    foreground and dynamic_k 0."""
    outs = [torch.zeros(1, 6, 4, 4)]
    labels = torch.tensor([[[0, 500.0, 500.0, 4.0, 4.0]]])
    res, info = yolox_loss_reference(outs, labels, (8,), "yolox", return_info=True)
    assert info["num_fg"] == 0 and int(info["images"][0]["dynamic_k"][0]) == 0
    print("no-candidate image: no fg, N = 1, total = %.6f" % float(res[0]))


def main():
    """Runs every check; an AssertionError ends it with a non-zero exit."""
    torch.manual_seed(0)
    # one generator for both random sections, drawn in this order, so the
    # cases are the same as when the self-test was a single function
    gen = torch.Generator().manual_seed(1234)
    check_against_slow_loop(gen)
    check_finite_differences(gen)
    check_box_losses_finite_differences()
    check_mmdet_reference_agrees_with_yolox_reference()
    check_tie_explanation()
    check_no_candidate_image()
    print("self-test passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
