"""Is another implementation's SimOTA assignment a possible outcome of the
reference's, given that torch.topk and torch.min break ties arbitrarily?

SimOTA picks, per gt, the dynamic_k anchors of lowest cost and resolves an
anchor taken by several gts by the lowest cost over all gts.  Two
implementations that compute the same costs can still disagree where costs
are exactly equal (the 1e6 geometry penalty makes that common), and two that
sum the costs in a different order can disagree where costs are within
float32 rounding of each other.  explain_assignment_difference() accepts a
differing assignment only when the reference's own costs of that image show
such a tie at every differing anchor; check_reference.py and
reference_selftest.py use it.

Public functions
----------------
ulp32(x) -> spacing of float32 numbers at |x|
rounding_tolerance(cost_value, cost_nopen_value) -> how far another float32
    implementation's cost of one (gt, anchor) pair may lie from the
    reference's
explain_assignment_difference(info, ref_matched, other_matched, other_k=None,
                              tol_mode="exact") -> (ok, reason) for one image,
    info being that image's entry of yolox_loss_reference(...,
    return_info=True)[1]["images"]
"""

import math

import torch


def ulp32(x):
    """Spacing of float32 numbers at |x| (as a float64)."""
    x = abs(float(x))
    if x == 0.0 or not math.isfinite(x):
        return 2.0 ** -149
    e = math.frexp(x)[1]  # x = m * 2**e, 0.5 <= m < 1
    return 2.0 ** (e - 24)


def rounding_tolerance(cost_value, cost_nopen_value, rel=4e-6, ulps=2):
    """How far another float32 implementation's cost of one (gt, anchor)
    pair may lie from this reference's: relative error of the un-penalised
    part (the class-BCE sum over C is summed in a different order) plus a
    couple of float32 spacings at the cost's own magnitude (adding the 1e6
    penalty rounds to 1/16)."""
    return rel * max(1.0, abs(float(cost_nopen_value))) + ulps * ulp32(cost_value)


def explain_assignment_difference(info, ref_matched, other_matched, other_k=None,
                                  tol_mode="exact"):
    """Is other_matched (one image, [A]) a possible SimOTA outcome under the
    reference's own costs of that image, given that torch.topk / torch.min
    break ties arbitrarily?

    tol_mode 'exact': only exact equalities of the reference's float32 costs
    may be broken differently.  'rounding': costs within
    rounding_tolerance() of each other count as ties, and dynamic_k may
    differ by one where the float64 sum of the top IoUs lies within 1e-5 of
    an integer.

    Returns (ok: bool, reason: str)."""
    ref_matched = torch.as_tensor(ref_matched).to(torch.int64)
    other_matched = torch.as_tensor(other_matched).to(torch.int64)
    diff = (ref_matched != other_matched).nonzero()[:, 0]
    ref_k = info.get("dynamic_k")
    k_same = (other_k is None or ref_k is None or
              torch.equal(torch.as_tensor(other_k).to(torch.int64), ref_k.to(torch.int64)))
    if diff.numel() == 0 and k_same:
        return True, "identical"
    if "cost" not in info:
        return False, "no reference costs for this image"
    if info["cost"].numel() == 0 and not k_same:
        return False, "no candidate anchors: reference dynamic_k %s, other %s" % (
            ref_k.tolist(), torch.as_tensor(other_k).tolist())
    cand_idx = info["cand_idx"]
    num_anchors = ref_matched.numel()
    col_of = torch.full((num_anchors,), -1, dtype=torch.int64)
    col_of[cand_idx] = torch.arange(cand_idx.numel())
    # anchors assigned by `other` outside the candidates are never explained
    bad = (other_matched >= 0) & (col_of < 0)
    if bad.any():
        a = int(bad.nonzero()[0, 0])
        return False, "anchor %d assigned to gt %d but is not a candidate" % (a, int(other_matched[a]))
    if cand_idx.numel() == 0:
        return False, "image has no candidates but other assigns anchors"

    cost = info["cost"].double()
    nopen = info["cost_nopen"].double()
    num_gt, n_cand = cost.shape
    rounding = tol_mode == "rounding"
    if rounding:
        tol = torch.empty_like(cost)
        for g in range(num_gt):
            # vectorised rounding_tolerance
            c = cost[g].abs()
            e = torch.floor(torch.log2(torch.clamp(c, min=1e-30))) + 1
            tol[g] = 4e-6 * torch.clamp(nopen[g].abs(), min=1.0) + 2 * torch.pow(2.0, e - 24)
    else:
        tol = torch.zeros_like(cost)

    # per gt: range of k and the thresholds of the k-th smallest cost
    ks = info["dynamic_k"]
    sums = info["topk_iou_sum_f64"]
    must = torch.zeros_like(cost, dtype=torch.bool)
    may = torch.zeros_like(cost, dtype=torch.bool)
    kth = torch.zeros(num_gt, dtype=torch.float64)
    k_amb = [False] * num_gt
    for g in range(num_gt):
        k = int(ks[g])
        k_lo, k_hi = k, k
        if rounding:
            frac_near = abs(float(sums[g]) - round(float(sums[g]))) < 1e-5
            if frac_near:
                r = int(round(float(sums[g])))
                k_lo, k_hi = max(1, min(k, r - 1)), min(n_cand, max(k, r))
        if other_k is not None:
            ok_k = int(other_k[g])
            if ok_k != k and not (k_lo <= ok_k <= k_hi):
                return False, "dynamic_k of gt %d: reference %d (top-IoU sum %.9f), other %d" % (
                    g, k, float(sums[g]), ok_k)
        srt = torch.sort(cost[g]).values
        # must: even if every cost within tol of it ranked before it, the
        # anchor is still among the k_lo smallest.  may: fewer than k_hi
        # anchors are certainly (beyond tol) cheaper than it.
        n_le = torch.searchsorted(srt, cost[g] + tol[g], right=True)
        n_lt = torch.searchsorted(srt, cost[g] - tol[g], right=False)
        must[g] = n_le <= k_lo
        may[g] = n_lt <= k_hi - 1
        kth[g] = srt[k - 1]
        k_amb[g] = k_lo != k_hi
    colmin = cost.min(0).values

    n_exp = 0
    worst_gap = [0.0]  # largest |cost - the value it tied with| over the explained anchors
    n_kround = [0]     # anchors explained by a dynamic_k that differs by rounding

    def gap(value, gts):
        if any(k_amb[g] for g in gts if g >= 0):
            n_kround[0] += 1
        else:
            worst_gap[0] = max(worst_gap[0], float(value))

    for a in diff.tolist():
        c = int(col_of[a])
        if c < 0:
            # ref assigned a non-candidate?  cannot happen
            return False, "reference assigned non-candidate anchor %d" % a
        o = int(other_matched[a])
        r = int(ref_matched[a])
        m_set = must[:, c].nonzero()[:, 0].tolist()
        p_set = may[:, c].nonzero()[:, 0].tolist()
        if o < 0:
            if m_set:
                return False, ("anchor %d (cand %d): other leaves it background but gt(s) %s "
                               "must take it (cost %s)" % (a, c, m_set,
                                                            [float(cost[g, c]) for g in m_set]))
            n_exp += 1
            gap(abs(float(cost[r, c] - kth[r])), [r])
            continue
        if o not in p_set:
            # `o` may still get it through a conflict if two others took it
            if len(p_set) >= 2 and float(cost[o, c]) <= float(colmin[c]) + float(tol[o, c]):
                n_exp += 1
                gap(float(cost[o, c] - colmin[c]), p_set)
                continue
            return False, ("anchor %d (cand %d): other gives gt %d (cost %.9g) which cannot have "
                           "selected it; reference gives %d; k-th cost of gt %d: %.9g" % (
                               a, c, o, float(cost[o, c]), r, o, float(kth[o])))
        others_must = [g for g in m_set if g != o]
        if not others_must:
            n_exp += 1  # o alone may have selected it
            if r >= 0 and o != r and float(cost[o, c]) > float(colmin[c]):
                # r took it in the reference: r's selection or o's was the tie
                gap(min(abs(float(cost[r, c] - kth[r])), abs(float(cost[o, c] - kth[o]))), [r, o])
            else:
                gap(abs(float(cost[o, c] - kth[o])), [o, r])
            continue
        # several selectors: o must be (near) the minimum over all gts
        if float(cost[o, c]) <= float(colmin[c]) + float(tol[o, c]):
            n_exp += 1
            gap(float(cost[o, c] - colmin[c]), m_set)
            continue
        return False, ("anchor %d (cand %d): other gives gt %d (cost %.9g) but gts %s also must "
                       "take it and the column minimum is %.9g (gt %d); reference gives %d" % (
                           a, c, o, float(cost[o, c]), others_must, float(colmin[c]),
                           int(cost[:, c].argmin()), r))
    msg = "%d anchors differ, all explained by %s ties (largest cost gap %.3g" % (
        n_exp, tol_mode, worst_gap[0])
    if n_kround[0]:
        msg += "; %d anchors by a dynamic_k that differs by rounding" % n_kround[0]
    return True, msg + ")"
