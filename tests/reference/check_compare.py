"""The verdict on one case of check_reference.py, by the pass criteria (a)
to (d) of its docstring: the tolerances, the error measures (loss terms
relative to max(|ref|, 0.1); gradients over the largest reference gradient,
16-bit leaves allowed one step of their dtype), the assignment compared
image by image with differences explained as ties (tie_analysis.py), the
16-bit run against the library's own float32 run, and the second opinions
(libm's and correctly rounded exp/log, float64) a case that misses the
float32 reference gets. check_case returns the case's result and adds to the
run's statistics.
"""

import math
import time

import numpy as np
import torch

from check_cases import is_16_bit, leaf_dtypes
from check_runs import library_assignment, run_library, run_reference
from tie_analysis import explain_assignment_difference

LOSS_TOL = 1e-5
GRAD_TOL = 1e-5
TERM_NAMES = ("total", "iou", "obj", "cls", "l1", "ratio")


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
